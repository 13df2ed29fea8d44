"""SSD300-VGG16's convolutions, forward + backward, in TensorFlow and in JAX, taking turns.

    python benchmarks/conv_backends.py [--out docs/results] [--batch-size 2] [--rounds 2]
        [--warmup 1] [--quick] [--layers block4_conv3,fc6] [--forward-only]

Why the JAX backend trains slower than TensorFlow on a CPU: every Conv2D of
SSD300-VGG16 (its shapes read from the built model) is timed alone, forward and
the gradients of its input and kernel, in TensorFlow's kernels (``tf.nn.convolution``
under ``tf.function``, what Keras runs under TensorFlow) and in XLA's
(``jax.lax.conv_general_dilated`` under ``jax.jit``, what Keras runs under JAX),
both in one process, in interleaved rounds (``harness.interleaved_rounds``).
The first layer's input gradient is not taken (training never needs it).
``--forward-only`` times the forward convolution alone. Writes
OUT/conv_backends.json and .md (``conv_backends_forward.*`` with ``--forward-only``).
"""

import argparse
import os
import shlex
import sys
import time

import cost
import harness
import numpy as np
from train_step import TRAIN_FLOPS_PER_FORWARD

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

#: Batch, rounds and model of a full run and of ``--quick`` (a small VGG16 input).
COUNTS = {
    False: dict(batch_size=2, rounds=2, warmup=1, input_size=300),
    True: dict(batch_size=1, rounds=1, warmup=1, input_size=268),
}


def conv_layers(input_size=300):
    """Every Conv2D of SSD300-VGG16 (no attention), with its input shape.

    Returns:
        list of dicts: ``name``, ``input`` ``(H, W, C)``, ``kernel`` ``(kh, kw)``,
        ``filters``, ``strides``, ``dilation``, ``padding``, ``output`` ``(H, W)``.
    """
    from cfsam_keras.models import SSD300

    model = SSD300(20, backbone="vgg16", attention="none", input_size=input_size)
    layers = []
    for layer in model._flatten_layers(include_self=False):
        if type(layer).__name__ != "Conv2D":
            continue
        layers.append(
            {
                "name": layer.name,
                "input": tuple(int(d) for d in layer.input.shape[1:]),
                "kernel": tuple(layer.kernel_size),
                "filters": int(layer.filters),
                "strides": tuple(layer.strides),
                "dilation": tuple(layer.dilation_rate),
                "padding": layer.padding.upper(),
                "output": tuple(int(d) for d in layer.output.shape[1:3]),
            }
        )
    return layers


def conv_flops(layer, batch_size, backward=True):
    """FLOPs of ``layer``'s forward, x3 with the backward (no bias)."""
    (h, w), (kh, kw) = layer["output"], layer["kernel"]
    forward = cost.conv2d_flops(h, w, 1, layer["input"][2] * kh * kw, layer["filters"], False)
    return (TRAIN_FLOPS_PER_FORWARD if backward else 1) * batch_size * forward


def _arrays(layer, batch_size):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch_size,) + layer["input"]).astype(np.float32)
    w = rng.normal(size=layer["kernel"] + (layer["input"][2], layer["filters"])) * 0.01
    return x, w.astype(np.float32)


def tensorflow_call(layer, batch_size, backward=True):
    """Forward (+ gradients) of one convolution in TensorFlow (``tf.function``, no XLA)."""
    import tensorflow as tf

    x, w = (tf.constant(a) for a in _arrays(layer, batch_size))
    wrt_input = layer["input"][2] > 3

    def loss(x, w):
        y = tf.nn.convolution(x, w, layer["strides"], layer["padding"], dilations=layer["dilation"])
        return tf.reduce_sum(y)

    if not backward:
        forward = tf.function(loss, jit_compile=False, autograph=False)
        return lambda: forward(x, w).numpy()

    @tf.function(jit_compile=False, autograph=False)
    def grads(x, w):
        with tf.GradientTape() as tape:
            tape.watch([x, w] if wrt_input else [w])
            value = loss(x, w)
        return tape.gradient(value, [x, w] if wrt_input else [w])

    return lambda: [g.numpy() for g in grads(x, w)]


def jax_call(layer, batch_size, backward=True):
    """Forward (+ gradients) of one convolution in JAX (``jax.jit``, XLA's CPU kernels)."""
    import jax

    x, w = (jax.numpy.asarray(a) for a in _arrays(layer, batch_size))

    def loss(x, w):
        y = jax.lax.conv_general_dilated(
            x,
            w,
            layer["strides"],
            layer["padding"],
            rhs_dilation=layer["dilation"],
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        return y.sum()

    if not backward:
        forward = jax.jit(loss)
        return lambda: np.asarray(forward(x, w))
    grads = jax.jit(jax.grad(loss, argnums=(0, 1) if layer["input"][2] > 3 else (1,)))
    return lambda: [np.asarray(g) for g in grads(x, w)]


def conv_benchmark(batch_size, rounds, warmup, input_size, log, names=None, backward=True):
    """Times every layer (or those ``names``) in both backends; returns the record."""
    started, load_before = time.perf_counter(), harness.load_average()
    layers = conv_layers(input_size)
    if names:
        unknown = sorted(set(names) - {layer["name"] for layer in layers})
        if unknown:
            raise ValueError(f"--layers: unknown {unknown}; known: {[x['name'] for x in layers]}")
        layers = [layer for layer in layers if layer["name"] in names]
    calls = {}
    for layer in layers:
        calls[layer["name"] + " tensorflow"] = tensorflow_call(layer, batch_size, backward)
        calls[layer["name"] + " jax"] = jax_call(layer, batch_size, backward)
    log(f"{len(layers)} convolutions; timing {rounds} round(s) after {warmup} warm-up")
    timed = harness.interleaved_rounds(calls, runs=rounds, warmup=warmup)
    rows = []
    for layer in layers:
        row = dict(layer, gflops=conv_flops(layer, batch_size, backward) / 1e9)
        for backend in ("tensorflow", "jax"):
            seconds = timed[f"{layer['name']} {backend}"]["median_s"]
            row[f"{backend}_ms"] = 1000 * seconds
            row[f"{backend}_gflops_per_s"] = row["gflops"] / seconds
        row["jax_over_tensorflow"] = row["jax_ms"] / row["tensorflow_ms"]
        rows.append(row)
    totals = {f"{b}_ms": sum(r[f"{b}_ms"] for r in rows) for b in ("tensorflow", "jax")}
    totals["gflops"] = sum(r["gflops"] for r in rows)
    totals["jax_over_tensorflow"] = totals["jax_ms"] / totals["tensorflow_ms"]
    return {
        "rows": rows,
        "totals": totals,
        "settings": dict(
            batch_size=batch_size,
            rounds=rounds,
            warmup=warmup,
            input_size=input_size,
            backward=backward,
        ),
        "machine": harness.machine(load_before),
        "seconds": time.perf_counter() - started,
    }


def conv_table(record):
    """The record as a Markdown table with its note."""
    s, m, t = record["settings"], record["machine"], record["totals"]
    what = "fwd+bwd" if s["backward"] else "fwd"
    lines = [
        f"| layer | input | kernel, dilation | filters | GFLOPs {what} | TensorFlow (ms) "
        "| JAX (ms) | JAX / TF | TF GFLOP/s | JAX GFLOP/s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in record["rows"]:
        shape = "x".join(map(str, r["input"]))
        kernel = f"{r['kernel'][0]}x{r['kernel'][1]}, {r['dilation'][0]}"
        if r["strides"] != (1, 1) and list(r["strides"]) != [1, 1]:
            kernel += f", stride {r['strides'][0]}"
        lines.append(
            f"| {r['name']} | {shape} | {kernel} | {r['filters']} | {r['gflops']:.2f} "
            f"| {r['tensorflow_ms']:.1f} | {r['jax_ms']:.1f} | {r['jax_over_tensorflow']:.2f} "
            f"| {r['tensorflow_gflops_per_s']:.0f} | {r['jax_gflops_per_s']:.0f} |"
        )
    lines.append(
        f"| all | | | | {t['gflops']:.1f} | {t['tensorflow_ms']:.0f} | {t['jax_ms']:.0f} "
        f"| {t['jax_over_tensorflow']:.2f} | | |"
    )
    load = harness.load_text(m)
    versions = ", ".join(f"{k} {m[k]}" for k in harness.LIBRARIES if k in m)
    note = (
        f"Every Conv2D of SSD300-VGG16 at {s['input_size']} x {s['input_size']}, batch "
        f"{s['batch_size']}, float32: "
        + (
            "forward and the gradients of input and kernel (kernel only for the first layer)"
            if s["backward"]
            else "forward only"
        )
        + f"; median of {s['rounds']} round(s) after {s['warmup']} "
        f"warm-up, TensorFlow and JAX taking turns in one process. {m['cores']} CPU cores "
        f"({m['cpu']}), 1-minute load average {load} (before/after); {versions}."
    )
    return "\n".join(lines) + "\n\n" + note + "\n\nCommand: `" + record["command"] + "`\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join("docs", "results"), help="results folder")
    p.add_argument("--quick", action="store_true", help="batch 1 at 268 x 268, one round")
    for key, value in COUNTS[False].items():
        p.add_argument("--" + key.replace("_", "-"), type=int, help=f"default {value}")
    p.add_argument("--layers", help="comma-separated Conv2D names (default: all)")
    p.add_argument("--forward-only", action="store_true", help="time the forward alone")
    args = p.parse_args(argv)
    harness.fill_counts(p, args, COUNTS[args.quick])
    counts = {key: getattr(args, key) for key in COUNTS[False]}
    names = [n.strip() for n in args.layers.split(",") if n.strip()] if args.layers else None
    try:
        record = conv_benchmark(
            log=lambda line: print(line, file=sys.stderr, flush=True),
            names=names,
            backward=not args.forward_only,
            **counts,
        )
    except ValueError as e:
        p.error(str(e))
    record["command"] = "python benchmarks/conv_backends.py " + shlex.join(argv)
    stem = "conv_backends" + ("_forward" if args.forward_only else "")
    harness.write_results(args.out, stem, record, conv_table(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
