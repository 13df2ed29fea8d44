"""Single-image latency of a detector in each of its runtimes (Keras, SavedModel, TFLite)."""

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


def measure_latency(predictor, image, runs=30, warmup=3):
    """Median wall time of ``predictor.predict`` on one image, in milliseconds.

    Preprocessing (resize) is done once outside the timed loop; decoding and
    NMS are inside it.

    Args:
        predictor: from ``cfsam_keras.export.load_predictor``.
        image: RGB uint8 ``[H, W, 3]``.
        runs: timed runs (>= 1).
        warmup: untimed runs first.

    Returns:
        dict with ``median_ms``, ``min_ms`` and ``runs``.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0, got {runs} and {warmup}")
    batch = predictor.preprocess(image)
    for _ in range(warmup):
        predictor.predict_preprocessed(batch)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        predictor.predict_preprocessed(batch)
        times.append((time.perf_counter() - start) * 1000.0)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "runs": runs}


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
):
    """Exports ``model`` to every runtime and measures each one's latency.

    Args:
        name: a label for the model (file names and the table).
        model: an SSD Keras model.
        out_dir: where the SavedModel and TFLite files are written.
        runtimes: subset of `RUNTIMES`.
        runs, warmup: as for `measure_latency`.
        num_threads: TFLite interpreter threads (default: every core).
        log: optional callable taking a progress line.

    Returns:
        dict: column title -> `measure_latency` result.
    """
    from cfsam_keras.export.common import model_input_size
    from cfsam_keras.export.predictors import load_predictor
    from cfsam_keras.export.saved_model import export_saved_model
    from cfsam_keras.export.tflite import export_tflite

    log = log or (lambda line: None)
    size = model_input_size(model)
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    results = {}
    for title, kind, quantization in runtimes:
        log(f"{name}: {title}: exporting")
        if kind == "keras":
            predictor = load_predictor("keras", model)
        elif kind == "saved_model":
            path = export_saved_model(model, os.path.join(out_dir, name))
            predictor = load_predictor("saved_model", path)
        else:
            path = os.path.join(out_dir, f"{name}_{quantization or 'float32'}.tflite")
            data = calibration_images(size) if quantization == "int8" else None
            export_tflite(model, path, quantization=quantization, representative_data=data)
            predictor = load_predictor("tflite", path, num_threads=num_threads)
        log(f"{name}: {title}: timing {runs} runs")
        results[title] = measure_latency(predictor, image, runs=runs, warmup=warmup)
        del predictor
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
