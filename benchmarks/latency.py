"""Single-image latency of a detector in each runtime: Keras, SavedModel, TFLite, ONNX Runtime.

    python benchmarks/latency.py [--out docs/results] [--quick] [--runs 30] [--warmup 3]
        [--threads N] [--peak-size 2048] [--runtimes "Keras,TFLite fp32"] [--export-dir DIR]

Exports each model (random weights; speed does not depend on them) to every
runtime and times one prediction of each, and a float32 matmul, in
interleaved rounds (``harness.interleaved_rounds``). Writes OUT/latency.json
and OUT/latency.md (the table and what the numbers imply about the compute
rate, measured numbers only); ``python benchmarks/report.py`` puts them into
docs/results.md.
"""

import argparse
import dataclasses
import functools
import json
import os
import shlex
import sys
import tempfile
import time

import harness
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _keras(model, folder):
    return model


def _saved_model(model, folder):
    from cfsam_keras.export import export_saved_model

    return export_saved_model(model, os.path.join(folder, "saved_model"))


def _tflite(quantization, model, folder):
    from cfsam_keras.export import export_tflite
    from cfsam_keras.models import model_config

    data = calibration_images(model_config(model)["input_size"]) if quantization == "int8" else None
    path = os.path.join(folder, f"{quantization or 'float32'}.tflite")
    return export_tflite(model, path, quantization=quantization, representative_data=data)


def _onnx(model, folder):
    from cfsam_keras.export import export_onnx

    return export_onnx(model, os.path.join(folder, "model.onnx"), batch_size=1)


@dataclasses.dataclass(frozen=True)
class Runtime:
    """One column of the latency table.

    Attributes:
        title: the column title.
        kind: the ``cfsam_keras.export.load_predictor`` kind that runs it.
        export: ``f(model, folder)`` -> what ``load_predictor(kind, ...)`` loads
            (the model itself, a SavedModel folder, a file), written under ``folder``.
        float32: whether it computes in float32, so that the float32 matmul
            peak bounds its rate (the roofline sentence leaves the others out).
        threaded: whether its predictor takes ``num_threads`` (``--threads``).
    """

    title: str
    kind: str
    export: object
    float32: bool = True
    threaded: bool = False


#: The runtimes, in table order. float16 weights are widened to float32 on a CPU.
RUNTIMES = (
    Runtime("Keras", "keras", _keras),
    Runtime("SavedModel", "saved_model", _saved_model),
    Runtime("TFLite fp32", "tflite", functools.partial(_tflite, None), threaded=True),
    Runtime("TFLite fp16", "tflite", functools.partial(_tflite, "float16"), threaded=True),
    Runtime(
        "TFLite int8", "tflite", functools.partial(_tflite, "int8"), float32=False, threaded=True
    ),
    Runtime("ONNX Runtime", "onnx", _onnx, threaded=True),
)
#: ``--quick``: the runtimes it times.
QUICK_RUNTIMES = ("Keras", "TFLite fp32", "ONNX Runtime")
#: Timed rounds, warm-up rounds and matmul size of a full run and of ``--quick``.
COUNTS = {
    False: dict(runs=30, warmup=3, peak_size=harness.PEAK_SIZE),
    True: dict(runs=3, warmup=1, peak_size=128),
}


def latency_models(quick=False):
    """(name, builder) pairs; builders, so that only one model is alive at a time."""
    from cfsam_keras.models import SSD300

    if quick:
        return [
            (
                "ssd64_small_vgg_tiny",
                lambda: SSD300(
                    3,
                    backbone="small_vgg",
                    attention="none",
                    input_size=64,
                    anchor_preset="coco",
                    backbone_kwargs={"widths": (8, 8, 16, 16)},
                ),
            )
        ]
    return [
        ("ssd300_vgg16", lambda: SSD300(20, backbone="vgg16", attention="none")),
        ("ssd300_vgg16_cfsam", lambda: SSD300(20, backbone="vgg16", attention="cfsam")),
        ("ssd300_mobilenet_v2", lambda: SSD300(20, backbone="mobilenet_v2", attention="none")),
    ]


def calibration_images(input_size, count=8, seed=0):
    """Eval-pipeline images of the built-in dataset, for int8 calibration.

    Returns:
        A list of float32 ``[S, S, 3]`` arrays.
    """
    from cfsam_keras.data import coco
    from cfsam_keras.data import eval_pipeline
    from cfsam_keras.data import write_builtin_dataset

    with tempfile.TemporaryDirectory() as tmp:
        paths = write_builtin_dataset(tmp, train=0, val=count, seed=seed, image_size=320)
        return [
            image
            for batch in eval_pipeline(coco(*paths["val"]), input_size, count)
            for image in batch["images"].numpy()
        ]


def benchmark_model(
    name,
    model,
    folder,
    runtimes=RUNTIMES,
    runs=30,
    warmup=3,
    num_threads=None,
    peak_size=harness.PEAK_SIZE,
    log=None,
):
    """Exports ``model`` to every runtime and times one prediction of each, taking turns.

    Preprocessing (the resize) happens once, outside the timed calls; decoding
    and NMS are inside them.

    Args:
        name: a label for the model (progress lines).
        model: an SSD Keras model.
        folder: where the exported files are written.
        runtimes: list of `Runtime`.
        runs, warmup: timed and untimed rounds.
        num_threads: threads of the threaded runtimes (default: every core).
        peak_size: side of the float32 matrix product timed in the same rounds.
        log: optional callable taking a progress line.

    Returns:
        dict: runtime title -> ``median_ms``, ``min_ms``, ``times_ms`` (and
        ``threads`` for the threaded ones); ``harness.PEAK`` -> the matmul's
        entry with its ``gflop_per_s``.
    """
    from cfsam_keras.export import load_predictor
    from cfsam_keras.models import model_config

    log = log or (lambda line: None)
    os.makedirs(folder, exist_ok=True)
    size = model_config(model)["input_size"]
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    predictors = {}
    for runtime in runtimes:
        log(f"{name}: {runtime.title}: exporting")
        options = {"num_threads": num_threads} if runtime.threaded else {}
        exported = runtime.export(model, os.path.join(folder, name))
        predictors[runtime.title] = load_predictor(runtime.kind, exported, **options)
    calls = {
        title: functools.partial(p.predict_preprocessed, p.preprocess(image))
        for title, p in predictors.items()
    }
    calls[harness.PEAK], peak_flops = harness.matmul_peak(peak_size)
    log(f"{name}: timing {runs} rounds of {', '.join(calls)}")
    timed = harness.interleaved_rounds(calls, runs=runs, warmup=warmup)
    results = {
        title: {
            "median_ms": 1000 * t["median_s"],
            "min_ms": 1000 * t["min_s"],
            "times_ms": [1000 * s for s in t["times_s"]],
        }
        for title, t in timed.items()
    }
    results[harness.PEAK]["gflop_per_s"] = peak_flops / timed[harness.PEAK]["median_s"] / 1e9
    for runtime in runtimes:
        if runtime.threaded:
            results[runtime.title]["threads"] = predictors[runtime.title].num_threads
    return results


def latency_table(record):
    """A Markdown table of a latency record's medians, with ratios to Keras.

    Args:
        record: the dict `main` writes to latency.json (its ``results``: model
            name -> runtime title -> entry).
    """
    results = record["results"]
    titles = [r.title for r in RUNTIMES if any(r.title in row for row in results.values())]
    lines = [
        "| model | " + " | ".join(f"{t} (ms)" for t in titles) + " |",
        "|---|" + "---:|" * len(titles),
    ]
    for name, row in results.items():
        keras_ms = row.get("Keras", {}).get("median_ms")
        cells = []
        for title in titles:
            if title not in row:
                cells.append("")
                continue
            ms = row[title]["median_ms"]
            ratio = f" ({ms / keras_ms:.2f}x)" if keras_ms and title != "Keras" else ""
            cells.append(f"{ms:.1f}{ratio}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def latency_roofline(record):
    """One sentence per model: the compute rate each float32 runtime's latency implies.

    The rate is the model's forward-pass FLOPs over the whole single-image
    latency (decoding and NMS included), next to the float32 matrix product
    timed in the same rounds: how far a runtime is from being bound by
    arithmetic. Runtimes that do not compute in float32 (int8) are left out.
    """
    float32 = {r.title for r in RUNTIMES if r.float32}
    sentences = []
    for name, row in record["results"].items():
        if name not in record["gflops"] or harness.PEAK not in row:
            continue
        gflops, peak = record["gflops"][name], row[harness.PEAK]["gflop_per_s"]
        rates = []
        for title, entry in row.items():
            if title in float32:
                rate = gflops / (entry["median_ms"] / 1000.0)
                rates.append(f"{title} {rate:.0f} ({rate / peak:.0%})")
        sentences.append(
            f"{name}: {gflops:.3g} GFLOPs a forward pass; GFLOP/s (share of the float32 "
            f"matmul peak, {peak:.0f} GFLOP/s in the same rounds): " + ", ".join(rates) + "."
        )
    return " ".join(sentences)


def latency_note(record):
    """How the numbers of a latency record were taken, and the roofline sentences."""
    s, m = record["settings"], record["machine"]
    threads = sorted(
        {
            entry["threads"]
            for row in record["results"].values()
            for entry in row.values()
            if "threads" in entry
        }
    )
    load = "/".join(
        f"{v:.1f}" if v is not None else "n/a"
        for v in (m.get("load_average_1min_before"), m.get("load_average_1min_after"))
    )
    text = (
        f"Median of {s['runs']} single-image runs after {s['warmup']} warm-up rounds, a "
        f"model's runtimes and a {s['peak_size']} x {s['peak_size']} float32 matmul taking "
        f"turns (one run each per round); {m['cores']} CPU cores ({m['cpu']})"
        + (f", threaded runtimes on {'/'.join(map(str, threads))} thread(s)" if threads else "")
        + f"; random weights, score threshold {s['score_threshold']}, at most "
        f"{s['max_detections']} detections; 1-minute load average {load} (before/after)."
    )
    return text + "\n\n" + latency_roofline(record)


def command_for(record, out):
    """The command that times the models of ``record`` again with its settings."""
    s = record["settings"]
    argv = ["--out", out] + (["--quick"] if s["quick"] else [])
    argv += ["--runs", s["runs"], "--warmup", s["warmup"], "--peak-size", s["peak_size"]]
    if s.get("threads_flag") is not None:
        argv += ["--threads", s["threads_flag"]]
    if s["runtimes"] != _default_runtimes(s["quick"]):
        argv += ["--runtimes", ",".join(s["runtimes"])]
    return "python benchmarks/latency.py " + shlex.join(str(a) for a in argv)


def _default_runtimes(quick):
    return list(QUICK_RUNTIMES) if quick else [r.title for r in RUNTIMES]


def parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--out",
        default=os.path.join("docs", "results"),
        help="folder of latency.json and latency.md (default docs/results)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"one tiny model, {' and '.join(QUICK_RUNTIMES)}, few rounds",
    )
    counts = COUNTS[False]
    p.add_argument("--runs", type=int, help=f"timed rounds (default {counts['runs']})")
    p.add_argument("--warmup", type=int, help=f"untimed rounds first (default {counts['warmup']})")
    p.add_argument(
        "--peak-size",
        type=int,
        help=f"side of the float32 matmul peak (default {counts['peak_size']})",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="TFLite interpreter threads (default: every CPU core, as Keras and "
        "the SavedModel use)",
    )
    p.add_argument(
        "--runtimes",
        default=None,
        help=f"comma-separated column titles (default: all; --quick: {','.join(QUICK_RUNTIMES)})",
    )
    p.add_argument(
        "--export-dir",
        default=None,
        help="keep the exported files here (default: a temporary folder)",
    )
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    counts = dict(COUNTS[args.quick])
    for key in counts:
        if getattr(args, key) is not None:
            counts[key] = getattr(args, key)
    if counts["runs"] < 1 or counts["warmup"] < 0 or counts["peak_size"] < 1:
        raise SystemExit("error: --runs and --peak-size must be >= 1 and --warmup >= 0")
    if args.threads is not None and args.threads < 1:
        raise SystemExit(f"error: --threads must be >= 1; got {args.threads}")
    titles = (
        [t.strip() for t in args.runtimes.split(",") if t.strip()]
        if args.runtimes
        else _default_runtimes(args.quick)
    )
    known = [r.title for r in RUNTIMES]
    unknown = [t for t in titles if t not in known]
    if unknown or not titles:
        raise SystemExit(f"error: --runtimes: unknown {unknown}; known: {known}")
    runtimes = [r for r in RUNTIMES if r.title in titles]

    import keras

    from cfsam_keras import defaults
    from cfsam_keras.flops import count_flops
    from cfsam_keras.models import model_config

    started, load_before = time.perf_counter(), harness.load_average()
    results, gflops = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, build in latency_models(args.quick):
            keras.utils.set_random_seed(0)
            model = build()
            size = model_config(model)["input_size"]
            gflops[name] = count_flops(model, [(1, size, size, 3)]) / 1e9
            results[name] = benchmark_model(
                name,
                model,
                args.export_dir or tmp,
                runtimes,
                num_threads=args.threads,
                log=lambda line: print(line, file=sys.stderr, flush=True),
                **counts,
            )
            del model
            keras.backend.clear_session()
    record = {
        "results": results,
        "gflops": gflops,
        "settings": dict(
            counts,
            quick=args.quick,
            runtimes=[r.title for r in runtimes],
            threads_flag=args.threads,
            score_threshold=defaults.SCORE_THRESHOLD,
            max_detections=defaults.MAX_DETECTIONS,
        ),
        "machine": harness.machine(load_before),
        "seconds": time.perf_counter() - started,
    }
    record["command"] = command_for(record, args.out)
    table, note = latency_table(record), latency_note(record)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "latency.json"), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
    with open(os.path.join(args.out, "latency.md"), "w", encoding="utf-8") as f:
        f.write(table + "\n\n" + note + "\n")
    print(table + "\n\n" + note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
