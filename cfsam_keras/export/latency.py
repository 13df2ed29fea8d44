"""Single-image latency of a detector in each of its runtimes (Keras, SavedModel, TFLite)."""

import functools
import os
import statistics
import tempfile
import time

import numpy as np

#: Runtimes measured, in table order: (column title, predictor kind, TFLite quantization).
RUNTIMES = (
    ("Keras", "keras", None),
    ("SavedModel", "saved_model", None),
    ("TFLite fp32", "tflite", None),
    ("TFLite fp16", "tflite", "float16"),
    ("TFLite int8", "tflite", "int8"),
)


#: The entry of a `benchmark_model` result that times a float32 matrix product in
#: the same rounds as the runtimes: the machine's peak under the same load.
PEAK = "float32 matmul"
#: Side of that square matrix product.
PEAK_SIZE = 2048


def measure_latency(calls, runs=30, warmup=3):
    """Median wall time of each of several calls, in milliseconds, taking turns.

    Every round times each call once, so a burst of load on a shared machine
    slows all of them in the same round instead of whichever happened to be
    running, and their ratios stay comparable.

    Args:
        calls: dict title -> zero-argument callable (one single-image
            prediction, say).
        runs: timed rounds (>= 1).
        warmup: untimed rounds first.

    Returns:
        dict title -> dict with ``median_ms``, ``min_ms`` and ``runs``.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0, got {runs} and {warmup}")
    for _ in range(warmup):
        for call in calls.values():
            call()
    times = {title: [] for title in calls}
    for _ in range(runs):
        for title, call in calls.items():
            start = time.perf_counter()
            call()
            times[title].append((time.perf_counter() - start) * 1000.0)
    return {
        title: {"median_ms": statistics.median(t), "min_ms": min(t), "runs": runs}
        for title, t in times.items()
    }


def calibration_images(input_size, count=8, seed=0):
    """Eval-pipeline images of the built-in dataset, for int8 calibration.

    Writes ``count`` validation images to a temporary folder and reads them back
    through ``cfsam_keras.data.eval_pipeline``.

    Returns:
        A list of float32 ``[S, S, 3]`` arrays.
    """
    from cfsam_keras.data import coco
    from cfsam_keras.data import eval_pipeline
    from cfsam_keras.data import write_builtin_dataset

    with tempfile.TemporaryDirectory() as tmp:
        paths = write_builtin_dataset(tmp, train=0, val=count, seed=seed, image_size=320)
        source = coco(*paths["val"])
        return [
            image
            for batch in eval_pipeline(source, input_size, batch_size=count)
            for image in batch["images"].numpy()
        ]


def benchmark_model(
    name, model, out_dir, runtimes=RUNTIMES, runs=30, warmup=3, num_threads=None, log=None,
    peak_size=PEAK_SIZE,
):
    """Exports ``model`` to every runtime and measures each one's latency.

    Args:
        name: a label for the model (file names and the table).
        model: an SSD Keras model.
        out_dir: where the SavedModel and TFLite files are written.
        runtimes: subset of `RUNTIMES`.
        runs, warmup: as for `measure_latency` (the runtimes take turns).
        num_threads: TFLite interpreter threads (default: every core).
        log: optional callable taking a progress line.
        peak_size: side of the float32 matrix product timed in the same rounds
            (`PEAK`).

    Returns:
        dict: column title -> its `measure_latency` entry (``median_ms``,
        ``min_ms``, ``runs``; TFLite ones also the interpreter's ``threads``),
        and `PEAK` -> the matrix product's entry with its ``gflop_per_s``.
    """
    from cfsam_keras.export.common import model_input_size
    from cfsam_keras.export.predictors import load_predictor
    from cfsam_keras.export.saved_model import export_saved_model
    from cfsam_keras.export.tflite import export_tflite
    from cfsam_keras.flops import matmul_product

    log = log or (lambda line: None)
    size = model_input_size(model)
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    predictors = {}
    for title, kind, quantization in runtimes:
        log(f"{name}: {title}: exporting")
        if kind == "keras":
            predictors[title] = load_predictor("keras", model)
        elif kind == "saved_model":
            path = export_saved_model(model, os.path.join(out_dir, name))
            predictors[title] = load_predictor("saved_model", path)
        else:
            path = os.path.join(out_dir, f"{name}_{quantization or 'float32'}.tflite")
            data = calibration_images(size) if quantization == "int8" else None
            export_tflite(model, path, quantization=quantization, representative_data=data)
            predictors[title] = load_predictor("tflite", path, num_threads=num_threads)
    # Preprocessing (the resize) happens once, outside the timed calls; decoding
    # and NMS are inside them.
    calls = {
        title: functools.partial(p.predict_preprocessed, p.preprocess(image))
        for title, p in predictors.items()
    }
    calls[PEAK], peak_flops = matmul_product(peak_size)
    log(f"{name}: timing {runs} rounds of {', '.join(calls)}")
    results = measure_latency(calls, runs=runs, warmup=warmup)
    results[PEAK]["gflop_per_s"] = peak_flops / results[PEAK]["median_ms"] / 1e6
    for title, predictor in predictors.items():
        if predictor.kind == "tflite":
            results[title]["threads"] = predictor.num_threads
    return results


def latency_table(results):
    """A Markdown table of `benchmark_model` results, with ratios to Keras.

    Args:
        results: dict model name -> dict column title -> latency result.
    """
    titles = [t for t, _, _ in RUNTIMES if any(t in r for r in results.values())]
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


#: Issue targets: TFLite latency as a fraction of the Keras latency of the same model.
LATENCY_TARGETS = (("TFLite fp32", 0.7), ("TFLite int8", 0.5))


def latency_targets(results):
    """One sentence per model saying which latency targets its measured ratios meet.

    Args:
        results: dict model name -> dict column title -> latency result.
    """
    sentences = []
    for name, row in results.items():
        keras_ms = row.get("Keras", {}).get("median_ms")
        parts = []
        for title, limit in LATENCY_TARGETS:
            if keras_ms and title in row:
                ratio = row[title]["median_ms"] / keras_ms
                verdict = "meets" if ratio <= limit else "misses"
                parts.append(f"{title} {ratio:.2f}x Keras ({verdict} <= {limit}x)")
        if parts:
            sentences.append(f"{name}: " + ", ".join(parts) + ".")
    return " ".join(sentences)


_INTEGER_RUNTIMES = {title for title, _, quantization in RUNTIMES if quantization == "int8"}


def latency_roofline(results, gflops):
    """One sentence per model: the compute rate each runtime's latency implies.

    The rate is the model's forward-pass FLOPs over the whole single-image
    latency (decoding and NMS included), next to the float32 matrix product
    timed in the same rounds (`PEAK`); the last clause is the rate TFLite
    float32 would need to meet its latency target. It shows whether a runtime
    could still be made faster or is already bound by arithmetic. int8
    runtimes are left out: their arithmetic is not float32, so the float32 peak
    does not bound them.

    Args:
        results: dict model name -> `benchmark_model` result.
        gflops: dict model name -> GFLOPs of one forward pass at batch 1.
    """
    limit = dict(LATENCY_TARGETS)["TFLite fp32"]
    sentences = []
    for name, row in results.items():
        if name not in gflops or PEAK not in row:
            continue
        flops, peak = gflops[name], row[PEAK]["gflop_per_s"]

        def rate(gflop_per_s):
            return f"{gflop_per_s:.0f} ({gflop_per_s / peak:.0%})"

        parts = [
            f"{title} {rate(flops / (r['median_ms'] / 1000.0))}"
            for title, r in row.items() if title not in _INTEGER_RUNTIMES and title != PEAK
        ]
        sentence = (
            f"{name}: {flops:.1f} GFLOPs a forward pass; GFLOP/s (share of the float32 "
            f"matmul peak, {peak:.0f} GFLOP/s in the same rounds): " + ", ".join(parts)
        )
        keras_ms = row.get("Keras", {}).get("median_ms")
        if keras_ms:
            needed = flops / (limit * keras_ms / 1000.0)
            sentence += f"; TFLite fp32 at {limit}x Keras would need {rate(needed)}"
        sentences.append(sentence + ".")
    return " ".join(sentences)
