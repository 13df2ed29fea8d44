"""The CPU demo: SSD + CFSAM on the built-in shapes dataset, end to end.

Writes the built-in dataset to disk in COCO format (once; reused by later runs),
trains with ``model.fit``, evaluates with pycocotools, exports a SavedModel and
TFLite files (float32 and int8), scores the TFLite files too, predicts on
validation images and writes ``OUT/report.md``.

    python recipes/demo.py --out runs/demo

Chosen for a 2-core CPU without ImageNet weights (configs.DEMO_MODEL and
configs.DEMO; all of it is the demo's choice, not SSD's): the small VGG-style
backbone from scratch (``small_vgg``: source maps at strides 8 .. 256, as
SSD300's), BatchNorm statistics that follow the weights closely (momentum 0.9),
a 64-wide CFSAM whose keys and values are pooled to 4 x 4 per level (the
efficient variant; docs/results.md has the training-step cost of full attention),
COCO default-box sizes (the smaller preset), zoom-out up to 2x instead of SSD's 4x
(the SSD paper notes that the 4x expansion needs a longer schedule than a CPU
allows), AdamW with warm-up and cosine decay instead of SSD's SGD schedule.
"""

import json
import os
import sys
import time

import common
import configs
import run_report

from cfsam_keras import data
from cfsam_keras import training
from cfsam_keras.evaluation import evaluate_detector
from cfsam_keras.export import batch_detector
from cfsam_keras.export import export_onnx
from cfsam_keras.export import export_saved_model
from cfsam_keras.export import export_tflite
from cfsam_keras.export import load_predictor
from cfsam_keras.models import detector
from cfsam_keras.validation import flag
from cfsam_keras.validation import non_negative_int
from cfsam_keras.validation import positive_int

#: COCO numbers the report lists.
REPORTED_COCO = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")


def parser():
    p = common.recipe_parser(__doc__.split("\n\n")[0], configs.DEMO, prog="demo")
    g = p.add_argument_group("demo")
    sizes = configs.DEMO_DATASET
    g.add_argument(
        "--train-images",
        type=flag(positive_int),
        default=sizes["train"],
        help="images in the generated train split",
    )
    g.add_argument(
        "--val-images",
        type=flag(positive_int),
        default=sizes["val"],
        help="images in the generated val split",
    )
    g.add_argument(
        "--image-size",
        type=flag(positive_int),
        default=sizes["image_size"],
        help="side of the generated images",
    )
    g.add_argument(
        "--predict-images",
        type=flag(non_negative_int),
        default=6,
        help="validation images drawn in the report",
    )
    g.add_argument("--no-augment", action="store_true", help="resize only, no SSD augmentation")
    g.add_argument(
        "--skip-export", action="store_true", help="do not export (SavedModel, TFLite, ONNX)"
    )
    return p


def main(argv=None):
    args = common.parse_args(parser(), argv)
    common.require_tensorflow_backend("the demo's evaluation and exports")
    timings = {}
    start = time.perf_counter()
    # The strategy first: MultiWorkerMirroredStrategy must exist before any TF op runs.
    strategy, run_dir = common.setup(args)
    t = time.perf_counter()
    train_source, val_source = common.builtin_dataset(
        args.data_dir,
        args.train_images,
        args.val_images,
        args.image_size,
        configs.DEMO_DATASET["seed"],
    )
    timings["dataset"] = time.perf_counter() - t
    steps = args.steps_per_epoch or data.steps_per_epoch(train_source, args.batch_size)
    model_settings = configs.DEMO_MODEL
    with strategy.scope():
        model = common.build_model(
            args,
            train_source.class_names,
            model_settings["anchor_preset"],
            attention_kwargs=model_settings["attention_kwargs"],
            backbone_kwargs=model_settings["backbone_kwargs"]
            if args.backbone == "small_vgg"
            else None,
        )
        common.compile_model(
            model, args, args.epochs * steps, warmup_steps=round(args.warmup_epochs * steps)
        )
    train_data = common.train_data(strategy, args, train_source, model, augment=not args.no_augment)
    evaluation = common.evaluation_callback(args, val_source, run_dir)
    callbacks = training.build_callbacks(
        run_dir,
        evaluation,
        monitor="val_AP50",
        train_source=train_source,
    )
    load_averages = {"at the start of training": os.getloadavg()}
    t = time.perf_counter()
    with training.fit_scope(model, strategy, train_data):
        model.fit(
            train_data,
            epochs=args.epochs,
            steps_per_epoch=steps,
            callbacks=callbacks,
            shuffle=False,
        )  # train_pipeline shuffles; fit cannot shuffle a tf.data stream
    timings["training"] = time.perf_counter() - t
    load_averages["at its end"] = os.getloadavg()
    if not training.is_chief():
        return 0

    det = detector(model)
    notes = [run_report.machine_note(load_averages)]
    t = time.perf_counter()
    results, reused = final_evaluation(evaluation, args, det, val_source)
    if reused:
        notes.append(
            f"The final metrics are the evaluation after epoch {args.epochs}, made during "
            "training (its time is in the training's), not repeated."
        )
    else:
        timings["evaluation"] = time.perf_counter() - t
    metrics = validation_metrics(results)
    if not args.skip_export:
        t = time.perf_counter()
        metrics.update(export_and_score(model, run_dir.root, train_source, val_source))
        notes.append(
            "Exports: a TF Serving SavedModel in `export/1`, TFLite files "
            "`export/demo_float32.tflite` and `export/demo_int8.tflite` (int8 calibrated on "
            "100 training images) and `export/demo.onnx` (run with ONNX Runtime); the AP50 "
            "of the files on the val split is in the metrics table."
        )
        timings["export and scoring of the exports"] = time.perf_counter() - t
    with open(os.path.join(run_dir.root, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)

    t = time.perf_counter()
    images = draw_predictions(det, val_source, args.predict_images, args.input_size, run_dir.root)
    timings["prediction"] = time.perf_counter() - t
    timings["total (after install)"] = time.perf_counter() - start

    settings = {k: v for k, v in vars(args).items() if v is not None}
    settings.update(
        anchor_preset=model_settings["anchor_preset"],
        backbone_kwargs=model_settings["backbone_kwargs"],
        attention_kwargs=model_settings["attention_kwargs"],
        parameters=model.count_params(),
        steps_per_epoch=steps,
    )
    path = run_report.write_report(
        run_dir.root,
        "cfsam-keras demo: SSD + CFSAM on the built-in shapes dataset",
        metrics,
        settings=settings,
        images=images,
        timings=timings,
        notes=notes,
    )
    print(f"COCO AP50 {metrics['AP50']:.3f}, AP {metrics['AP']:.3f}; report: {path}")
    return 0


def final_evaluation(evaluation, args, det, val_source):
    """The final weights' ``evaluate_detector`` result on the whole val split, and whether
    it is the evaluation callback's of the last epoch (same detector settings) rather
    than a pass made now."""
    if evaluation and evaluation.last_epoch == args.epochs - 1 and not args.eval_images:
        return evaluation.last_results, True
    return evaluate_detector(det, val_source, batch_size=16), False


def validation_metrics(results):
    """COCO AP numbers and VOC07 mAP of an ``evaluate_detector`` result."""
    metrics = {k: float(results["coco"][k]) for k in REPORTED_COCO}
    metrics["VOC07 mAP"] = float(results["voc_map"])
    return metrics


def export_and_score(model, root, train_source, val_source):
    """Exports the SavedModel, float32 / int8 TFLite files and an ONNX file; the files' AP50."""
    folder = os.path.join(root, "export")
    export_saved_model(model, folder)
    input_size = model.input_shape[1]
    scores = {}
    for quantization, title in ((None, "float32"), ("int8", "int8")):
        calibration = data.eval_pipeline(train_source, input_size, 1) if quantization else None
        path = export_tflite(
            model,
            os.path.join(folder, f"demo_{title}.tflite"),
            quantization=quantization,
            representative_data=calibration,
        )
        predictor = batch_detector(load_predictor("tflite", path))
        result = evaluate_detector(predictor, val_source, batch_size=16, input_size=input_size)
        scores[f"AP50 TFLite {title}"] = float(result["coco"]["AP50"])
    path = export_onnx(model, os.path.join(folder, "demo.onnx"))
    predictor = batch_detector(load_predictor("onnx", path))
    result = evaluate_detector(predictor, val_source, batch_size=16, input_size=input_size)
    scores["AP50 ONNX"] = float(result["coco"]["AP50"])
    return scores


def draw_predictions(det, val_source, count, input_size, root):
    """Draws the detector ``det``'s boxes on the first ``count`` val images; their paths."""
    images = []
    for i, example in enumerate(val_source.dataset().take(count)):
        resized = data.pipeline.resize_example(example, input_size)["images"][None]
        out = det(resized)
        k = int(out["num_detections"][0])
        detections = {key: out[key][0, :k].numpy() for key in ("boxes", "scores", "classes")}
        path = os.path.join(root, "predictions", f"val_{i + 1}.png")
        images.append(
            run_report.draw_prediction(
                example["image"].numpy(), detections, val_source.class_names, path
            )
        )
    return images


if __name__ == "__main__":
    sys.exit(common.run(main))
