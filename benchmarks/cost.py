"""What each attention module costs: parameters, FLOPs, CPU times, as ratios to its baseline.

    python benchmarks/cost.py [--out docs/results] [--quick] [--runs 5] [--batch-runs 5]
        [--train-runs 2] [--warmup 1] [--peak-size 2048]
        [--measure latency,throughput,train_step] [--variants "vgg16 none,vgg16 cfsam"]

Writes OUT/cost.json and OUT/cost.md and prints the table; ``python
benchmarks/report.py`` then puts it into docs/results.md.

Every variant is built once and kept alive; each measurement (batch-1 latency,
batch-8 throughput, training step) then times all of them in interleaved
rounds (``harness.interleaved_rounds``), with the float32 matmul peak as one
more call of every round, so a change of load hits every variant and the peak
alike and the ratios to the baseline stay meaningful on a shared machine. Each
number is the median of its rounds. FLOPs are counted by TensorFlow's graph
profiler (``cfsam_keras.flops.count_flops``); ``conv2d_flops`` and
``cfsam_matmul_flops`` give the analytic counts it is cross-checked against.
"""

import argparse
import dataclasses
import json
import os
import shlex
import sys
import time

import harness
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
configs = harness.recipe_configs()

#: The small MobileNetV2 model (alpha 0.35, 192 x 192, slim extra blocks, COCO
#: box sizes, 5 classes) and its 64-wide CFSAM.
MOBILENET_MODEL = dict(
    backbone="mobilenet_v2",
    input_size=192,
    num_classes=5,
    anchor_preset="coco",
    backbone_kwargs={"alpha": 0.35, "extra_channels": (128, 128, 64, 64)},
)
MOBILENET_CFSAM_KWARGS = {"embed_dim": 64, "num_heads": 4}

#: The efficient CFSAM of the SSD300-VGG16 rows: keys / values pooled to 5 x 5
#: and a 64-wide local 3x3 convolution.
EFFICIENT_CFSAM_KWARGS = {"kv_pool_size": 5, "local_channels": 64}

#: The timings a run can take, in the order they are taken.
MEASUREMENTS = ("latency", "throughput", "train_step")
#: Batch of the throughput and training-step timings.
BATCH_SIZE = 8
#: Timed rounds and matmul size of a full run and of ``--quick``.
COUNTS = {
    False: dict(runs=5, batch_runs=5, train_runs=2, warmup=1, peak_size=harness.PEAK_SIZE),
    True: dict(runs=2, batch_runs=2, train_runs=1, warmup=1, peak_size=128),
}


@dataclasses.dataclass(frozen=True)
class Variant:
    """One model of the cost table.

    Attributes:
        name: row name.
        group: a row's ratios refer to the row of its group whose
            ``attention`` is ``"none"``.
        attention: ``attention`` argument of ``SSD300``.
        attention_kwargs: its ``attention_kwargs``.
        model_kwargs: the other ``SSD300`` arguments (``num_classes``,
            ``backbone``, ``input_size``, ...); ``num_classes`` None means the
            classes of the built-in dataset (the demo's).
    """

    name: str
    group: str
    attention: str
    attention_kwargs: dict
    model_kwargs: dict

    def build(self):
        from cfsam_keras.models import SSD300

        kwargs = dict(self.model_kwargs)
        del kwargs["num_classes"]
        return SSD300(
            self.num_classes,
            attention=self.attention,
            attention_kwargs=self.attention_kwargs or None,
            **kwargs,
        )

    @property
    def input_size(self):
        return int(self.model_kwargs.get("input_size", 300))

    @property
    def num_classes(self):
        if self.model_kwargs["num_classes"] is None:
            from cfsam_keras.data import BUILTIN_CLASSES

            return len(BUILTIN_CLASSES)
        return int(self.model_kwargs["num_classes"])


def _vgg_variants():
    group, model = "SSD300-VGG16", {"num_classes": 20, "backbone": "vgg16"}
    return [
        Variant(name, group, attention, kwargs, model)
        for name, attention, kwargs in (
            ("vgg16 none", "none", {}),
            ("vgg16 cfsam", "cfsam", {}),
            ("vgg16 cfsam kv5 local64", "cfsam", EFFICIENT_CFSAM_KWARGS),
            ("vgg16 se", "se", {}),
            ("vgg16 cbam", "cbam", {}),
            ("vgg16 eca", "eca", {}),
        )
    ]


def _mobilenet_variants():
    return [
        Variant("mobilenet_v2 none", "MobileNetV2 small", "none", {}, MOBILENET_MODEL),
        Variant(
            "mobilenet_v2 cfsam",
            "MobileNetV2 small",
            "cfsam",
            MOBILENET_CFSAM_KWARGS,
            MOBILENET_MODEL,
        ),
    ]


#: The group of the demo-model rows.
DEMO_GROUP = "small VGG demo"


def _demo_variants():
    """Every module on the demo's model (``configs.DEMO_MODEL``, the built-in classes).

    The demo's CFSAM, the same CFSAM with full attention (keys and values not
    pooled) and SE, CBAM and ECA: the modules the comparison recipe trains.
    """
    demo = configs.DEMO_MODEL
    model = {
        key: demo[key] for key in ("backbone", "input_size", "anchor_preset", "backbone_kwargs")
    }
    model["num_classes"] = None
    prefix, kwargs = f"demo {demo['backbone']}", dict(demo["attention_kwargs"])
    rows = [
        ("none", "none", {}),
        ("cfsam", "cfsam", {k: v for k, v in kwargs.items() if k != "kv_pool_size"}),
    ]
    if "kv_pool_size" in kwargs:
        rows.append((f"cfsam kv{kwargs['kv_pool_size']}", "cfsam", kwargs))
    rows += [(name, name, {}) for name in ("se", "cbam", "eca")]
    return [
        Variant(f"{prefix} {name}", DEMO_GROUP, attention, kw, model)
        for name, attention, kw in rows
    ]


def demo_variant():
    """The demo's own model (``configs.DEMO_MODEL``) among the demo-model rows."""
    kwargs = configs.DEMO_MODEL["attention_kwargs"]
    return next(v for v in _demo_variants() if v.attention_kwargs == kwargs)


def _quick_variants():
    """Two tiny small-VGG models, with and without CFSAM, at 64 x 64."""
    model = dict(
        backbone="small_vgg",
        input_size=64,
        num_classes=3,
        anchor_preset="coco",
        backbone_kwargs={"widths": (8, 8, 16, 16)},
    )
    return [
        Variant("tiny none", "tiny small VGG", "none", {}, model),
        Variant("tiny cfsam", "tiny small VGG", "cfsam", {"embed_dim": 16, "num_heads": 2}, model),
    ]


def cost_variants(quick=False, names=None):
    """The variants of the cost table.

    Args:
        quick: the two tiny models instead of the full table (SSD300-VGG16 with
            every module, the small MobileNetV2 model, the demo's model with
            every module).
        names: optional list of row names to keep (in table order).

    Returns:
        list of `Variant`.
    """
    variants = (
        _quick_variants() if quick else _vgg_variants() + _mobilenet_variants() + _demo_variants()
    )
    if names:
        known = [v.name for v in variants]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"--variants: unknown {unknown}; known: {known}")
        variants = [v for v in variants if v.name in names]
    return variants


def conv2d_flops(output_height, output_width, kernel_size, in_channels, out_channels, bias=True):
    """Analytic FLOPs of a Conv2D, the profiler's convention (multiply-add = 2).

    Example:
    >>> conv2d_flops(38, 38, 3, 512, 512)  # SSD300's conv4_3
    6814386176
    """
    flops = 2 * output_height * output_width * kernel_size**2 * in_channels * out_channels
    if bias:
        flops += output_height * output_width * out_channels
    return int(flops)


def cfsam_matmul_flops(
    feature_shapes,
    embed_dim=256,
    mlp_ratio=4.0,
    num_layers=1,
    local_channels=None,
    kv_pool_size=None,
    fusion="residual",
):
    """Analytic FLOPs of CFSAM's convolutions and matrix products at batch 1.

    Counts every multiply-add as 2 and nothing else (no bias, norm, softmax,
    GELU or residual additions), so it is a lower bound of the counted FLOPs;
    the difference is the element-wise work.

    Args:
        feature_shapes: list of ``(H_i, W_i, C_i)``.
        embed_dim, mlp_ratio, num_layers, local_channels, kv_pool_size, fusion:
            as in ``cfsam_keras.layers.CFSAM``.

    Returns:
        dict: ``local``, ``qkv_out`` (query / key / value / output
        projections), ``attention`` (scores and weighted sum), ``mlp``,
        ``fusion`` and ``total``, in FLOPs.

    Example:
    >>> cfsam_matmul_flops([(38, 38, 512), (19, 19, 1024)])["total"] > 0
    True
    """
    c = embed_dim
    local_c = local_channels or c
    tokens = sum(h * w for h, w, _ in feature_shapes)
    if kv_pool_size is None:
        kv_tokens = tokens
    else:
        kv_tokens = sum(min(h, kv_pool_size) * min(w, kv_pool_size) for h, w, _ in feature_shapes)
    local = sum(2 * h * w * (9 * ci * local_c + local_c * c) for h, w, ci in feature_shapes)
    qkv_out = num_layers * 2 * c * c * (2 * tokens + 2 * kv_tokens)
    attention = num_layers * 2 * 2 * tokens * kv_tokens * c
    mlp = num_layers * 2 * 2 * tokens * c * int(mlp_ratio * c)
    if fusion == "concat":
        fuse = sum(2 * h * w * (c * ci + 2 * ci * ci) for h, w, ci in feature_shapes)
    else:
        fuse = sum(2 * h * w * c * ci for h, w, ci in feature_shapes)
    parts = dict(local=local, qkv_out=qkv_out, attention=attention, mlp=mlp, fusion=fuse)
    parts["total"] = sum(parts.values())
    return {k: int(v) for k, v in parts.items()}


class _Timers:
    """A built model with its three timed callables."""

    def __init__(self, variant, batch_size, seed=0):
        import keras
        import tensorflow as tf

        from cfsam_keras.losses import MultiBoxLoss

        keras.utils.set_random_seed(seed)
        self.model = model = variant.build()
        size = variant.input_size
        rng = np.random.default_rng(seed)
        self.image = rng.uniform(0, 255, (1, size, size, 3)).astype("float32")
        self.batch = rng.uniform(0, 255, (batch_size, size, size, 3)).astype("float32")
        # Targets with some positives, so the loss's mining and box terms run.
        targets = np.zeros((batch_size, model.output_shape[1], 5), "float32")
        targets[:, ::50, 4] = rng.integers(1, variant.num_classes + 1, targets[:, ::50, 4].shape)
        targets[:, ::50, :4] = rng.normal(0, 1, targets[:, ::50, :4].shape)
        self.targets = targets
        forward = tf.function(lambda x: model(x, training=False), autograph=False)
        self.forward = lambda x: forward(x).numpy()
        model.compile(
            optimizer=keras.optimizers.SGD(1e-6, momentum=0.9),
            loss=MultiBoxLoss(variant.num_classes),
        )

    def latency(self):
        self.forward(self.image)

    def throughput(self):
        self.forward(self.batch)

    def train_step(self):
        self.model.train_on_batch(self.batch, self.targets)


def cost_benchmark(
    variants,
    runs=5,
    batch_runs=None,
    train_runs=2,
    warmup=1,
    peak_size=harness.PEAK_SIZE,
    measurements=MEASUREMENTS,
    log=None,
):
    """Measures every variant in one run.

    Args:
        variants: list of `Variant` (``cost_variants()``).
        runs: timed rounds of the batch-1 latency.
        batch_runs: timed rounds of the batch-`BATCH_SIZE` throughput
            (default ``runs``).
        train_runs: timed rounds of the training step (forward + backward +
            SGD update, ``model.train_on_batch`` with ``MultiBoxLoss``).
        warmup: untimed rounds of each measurement first (tracing happens here).
        peak_size: side of the square matmul timed in every round.
        measurements: which timings to take, a subset of `MEASUREMENTS`; the
            others are ``None`` in the rows.
        log: optional ``f(str)`` for progress lines.

    Returns:
        dict: ``rows`` (one per variant: name, group, attention,
        attention_kwargs, model, params, flops (batch 1), latency_ms,
        throughput_ips, train_step_ms, the GFLOP/s achieved at batch 1 and
        batch `BATCH_SIZE` and their fraction of the peak timed in the same
        rounds, every timed round in ms, and ``*_ratio`` to the group's
        baseline), ``peak_gflops`` (measurement -> the matmul's GFLOP/s in
        its rounds), ``cross_check`` (the profiler against the analytic
        count on one Conv2D and on the CFSAM module of every CFSAM row),
        ``settings``, ``machine`` and ``seconds``.
    """
    import keras
    import tensorflow as tf

    from cfsam_keras.flops import count_flops

    unknown = sorted(set(measurements) - set(MEASUREMENTS))
    if unknown:
        raise ValueError(f"measurements: unknown {unknown}; expected a subset of {MEASUREMENTS}")
    batch_runs = batch_runs or runs
    log = log or (lambda line: None)
    started, load_before = time.perf_counter(), harness.load_average()
    # Every variant traces its own forward function once per input shape, which
    # TensorFlow's retracing warning would report as excessive.
    logger_level = tf.get_logger().level
    tf.get_logger().setLevel("ERROR")
    try:
        timers, rows = [], []
        for variant in variants:
            t = time.perf_counter()
            timers.append(_Timers(variant, BATCH_SIZE))
            model, size = timers[-1].model, variant.input_size
            rows.append(
                {
                    "name": variant.name,
                    "group": variant.group,
                    "attention": variant.attention,
                    "attention_kwargs": variant.attention_kwargs,
                    "model": dict(variant.model_kwargs, num_classes=variant.num_classes),
                    "params": int(model.count_params()),
                    "flops": int(count_flops(model, [(1, size, size, 3)])),
                }
            )
            log(
                f"built {variant.name}: {rows[-1]['params']:,} parameters, "
                f"{rows[-1]['flops'] / 1e9:.2f} GFLOPs ({time.perf_counter() - t:.0f} s)"
            )
        peak, peak_flops = harness.matmul_peak(peak_size)
        medians, peaks = {}, {}
        for measure, n in zip(MEASUREMENTS, (runs, batch_runs, train_runs)):
            if measure not in measurements:
                continue
            t = time.perf_counter()
            calls = {v.name: getattr(timer, measure) for v, timer in zip(variants, timers)}
            calls[harness.PEAK] = peak
            timed = harness.interleaved_rounds(calls, runs=n, warmup=warmup)
            peaks[measure] = peak_flops / timed.pop(harness.PEAK)["median_s"] / 1e9
            for row in rows:
                row[f"{measure}_rounds_ms"] = [1000 * s for s in timed[row["name"]]["times_s"]]
            medians[measure] = {name: r["median_s"] for name, r in timed.items()}
            log(
                f"timed {measure} ({time.perf_counter() - t:.0f} s); "
                f"float32 matmul {peaks[measure]:.1f} GFLOP/s in its rounds"
            )
        cross_check = _cross_check(variants, timers)
    finally:
        tf.get_logger().setLevel(logger_level)
    del timers
    keras.backend.clear_session()
    for row in rows:
        _timings(row, {m: medians[m][row["name"]] for m in medians}, peaks)
    _ratios(rows)
    return {
        "rows": rows,
        "peak_gflops": peaks,
        "cross_check": cross_check,
        "settings": {
            "runs": runs,
            "batch_runs": batch_runs,
            "train_runs": train_runs,
            "warmup": warmup,
            "measurements": [m for m in MEASUREMENTS if m in measurements],
            "batch_size": BATCH_SIZE,
            "peak_matmul_size": peak_size,
        },
        "machine": harness.machine(load_before),
        "seconds": time.perf_counter() - started,
    }


def _timings(row, seconds, peaks):
    """Fills a row's times, rates and fractions of the peak from its median seconds."""
    latency, batch, train = (seconds.get(m) for m in MEASUREMENTS)
    row["latency_ms"] = None if latency is None else 1000 * latency
    row["throughput_ips"] = None if batch is None else BATCH_SIZE / batch
    row["train_step_ms"] = None if train is None else 1000 * train
    row["gflops_per_s_b1"] = None if latency is None else row["flops"] / latency / 1e9
    row["peak_fraction_b1"] = None if latency is None else row["gflops_per_s_b1"] / peaks["latency"]
    row["gflops_per_s"] = None if batch is None else BATCH_SIZE * row["flops"] / batch / 1e9
    row["peak_fraction"] = None if batch is None else row["gflops_per_s"] / peaks["throughput"]


#: The row quantities with a ratio to the group's baseline.
RATIO_KEYS = ("params", "flops", "latency_ms", "throughput_ips", "train_step_ms")


def _ratios(rows):
    """Adds ``<key>_ratio``: each quantity over the same of its group's ``none`` row."""
    baselines = {r["group"]: r for r in rows if r["attention"] == "none"}
    for row in rows:
        base = baselines.get(row["group"])
        for key in RATIO_KEYS:
            ok = base is not None and row[key] is not None and base[key]
            row[f"{key}_ratio"] = row[key] / base[key] if ok else None


def _cross_check(variants, timers):
    """The profiler's count against the analytic one, on a Conv2D and on every CFSAM."""
    import keras

    from cfsam_keras.flops import count_flops

    conv = keras.layers.Conv2D(512, 3, padding="same")
    checks = [
        {
            "what": "Conv2D 3x3, 38x38x512 -> 512 (SSD300 conv4_3)",
            "counted": int(count_flops(conv, [(1, 38, 38, 512)])),
            "analytic": conv2d_flops(38, 38, 3, 512, 512),
        }
    ]
    for variant, timer in zip(variants, timers):
        if variant.attention != "cfsam":
            continue
        layer = next(x for x in timer.model.layers if type(x).__name__ == "CFSAM")
        shapes = [tuple(int(d) for d in t.shape[1:]) for t in layer.input]
        counted = int(
            count_flops(
                lambda *xs: layer(list(xs), training=False),  # noqa: B023 (called here)
                [(1,) + s for s in shapes],
            )
        )
        config = layer.get_config()
        analytic = cfsam_matmul_flops(
            shapes,
            **{
                k: config[k]
                for k in (
                    "embed_dim",
                    "mlp_ratio",
                    "num_layers",
                    "local_channels",
                    "kv_pool_size",
                    "fusion",
                )
            },
        )
        checks.append(
            {
                "what": f"CFSAM module of '{variant.name}' (analytic: matmuls and convs only)",
                "counted": counted,
                "analytic": analytic["total"],
                "analytic_parts": analytic,
                "feature_shapes": [list(s) for s in shapes],
            }
        )
    return checks


def _ratio(value):
    return "" if value is None else f"x{value:.2f}"


def _achieved(row, key, fraction):
    if row.get(key) is None:
        return "not run"
    return f"{row[key]:.1f} ({100 * row[fraction]:.0f}%)"


def cost_table(results):
    """The cost results as a Markdown table, one row per variant.

    Args:
        results: the dict `cost_benchmark` returns (or its JSON).

    Returns:
        str.
    """
    lines = [
        "| model | params (M) | GFLOPs (b1) | FLOPs vs base | latency b1 (ms) | vs base "
        "| throughput b8 (img/s) | vs base | train step b8 (ms) | vs base "
        "| GFLOP/s b1 (of peak) | GFLOP/s b8 (of peak) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["rows"]:

        def num(key, fmt, r=r):
            return "not run" if r.get(key) is None else format(r[key], fmt)

        lines.append(
            f"| {r['name']} | {r['params'] / 1e6:.2f} | {r['flops'] / 1e9:.2f} "
            f"| {_ratio(r['flops_ratio'])} | {num('latency_ms', '.0f')} "
            f"| {_ratio(r['latency_ms_ratio'])} "
            f"| {num('throughput_ips', '.2f')} | {_ratio(r['throughput_ips_ratio'])} "
            f"| {num('train_step_ms', '.0f')} | {_ratio(r['train_step_ms_ratio'])} "
            f"| {_achieved(r, 'gflops_per_s_b1', 'peak_fraction_b1')} "
            f"| {_achieved(r, 'gflops_per_s', 'peak_fraction')} |"
        )
    return "\n".join(lines)


def command_for(results, out):
    """The command that measures the rows of ``results`` again with its settings.

    Args:
        results: a `cost_benchmark` result (or its JSON).
        out: the ``--out`` folder to name.
    """
    s = results["settings"]
    names = [r["name"] for r in results["rows"]]
    quick = all(name in {v.name for v in _quick_variants()} for name in names)
    argv = ["--out", out] + (["--quick"] if quick else [])
    argv += [
        "--runs",
        s["runs"],
        "--batch-runs",
        s.get("batch_runs", s["runs"]),
        "--train-runs",
        s["train_runs"],
        "--warmup",
        s["warmup"],
        "--peak-size",
        s["peak_matmul_size"],
    ]
    measured = s.get("measurements", list(MEASUREMENTS))
    if list(measured) != list(MEASUREMENTS):
        argv += ["--measure", ",".join(measured)]
    if names != [v.name for v in cost_variants(quick)]:
        argv += ["--variants", ",".join(names)]
    return "python benchmarks/cost.py " + shlex.join(str(a) for a in argv)


def write_cost_results(results, out_dir):
    """Writes ``cost.json`` (the results) and ``cost.md`` (`cost_table`) into ``out_dir``.

    Returns:
        The Markdown table.
    """
    table = cost_table(results)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "cost.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(out_dir, "cost.md"), "w", encoding="utf-8") as f:
        f.write(table + "\n")
    return table


def parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--out",
        default=os.path.join("docs", "results"),
        help="folder of cost.json and cost.md (default docs/results)",
    )
    p.add_argument(
        "--quick", action="store_true", help="two tiny models and few rounds (a smoke run)"
    )
    counts = COUNTS[False]
    p.add_argument(
        "--runs", type=int, help=f"timed rounds of the batch-1 latency (default {counts['runs']})"
    )
    p.add_argument(
        "--batch-runs",
        type=int,
        help=f"timed rounds of the batch-{BATCH_SIZE} throughput (default --runs)",
    )
    p.add_argument(
        "--train-runs",
        type=int,
        help=f"timed rounds of the training step (default {counts['train_runs']})",
    )
    p.add_argument("--warmup", type=int, help=f"untimed rounds first (default {counts['warmup']})")
    p.add_argument(
        "--peak-size",
        type=int,
        help=f"side of the float32 matmul peak (default {counts['peak_size']})",
    )
    p.add_argument(
        "--measure",
        default=",".join(MEASUREMENTS),
        help="comma-separated timings to take (default: all)",
    )
    p.add_argument("--variants", default=None, help="comma-separated row names (default: all)")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    counts = dict(COUNTS[args.quick])
    if args.runs is not None:
        counts.update(runs=args.runs, batch_runs=args.runs)
    for key in ("batch_runs", "train_runs", "warmup", "peak_size"):
        if getattr(args, key) is not None:
            counts[key] = getattr(args, key)
    for key, value in counts.items():
        if value < (0 if key == "warmup" else 1):
            flag = "--" + key.replace("_", "-")
            raise SystemExit(f"error: {flag} must be >= {0 if key == 'warmup' else 1}; got {value}")
    measurements = [m.strip() for m in args.measure.split(",") if m.strip()]
    unknown = [m for m in measurements if m not in MEASUREMENTS]
    if unknown or not measurements:
        raise SystemExit(f"error: --measure: unknown {unknown}; choose from {MEASUREMENTS}")
    names = [n.strip() for n in args.variants.split(",") if n.strip()] if args.variants else None
    try:
        variants = cost_variants(args.quick, names)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    results = cost_benchmark(
        variants,
        measurements=measurements,
        log=lambda line: print(line, file=sys.stderr, flush=True),
        **counts,
    )
    results["command"] = command_for(results, args.out)
    print(write_cost_results(results, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
