"""The CPU demo: SSD + CFSAM on the built-in shapes dataset, end to end.

Writes the built-in dataset to disk in COCO format (once; reused by later
runs), trains with ``model.fit``, evaluates with pycocotools, exports a
SavedModel and TFLite files (float32 and int8), scores the TFLite files too,
predicts on validation images and writes ``OUT/report.md``.

    python recipes/demo.py --out runs/demo

Chosen for a 2-core CPU without ImageNet weights (all of it is the demo's
choice, not SSD's): the small VGG-style backbone from scratch at 192 x 192
(``small_vgg``: source maps at strides 8 .. 256, as SSD300's), BatchNorm
statistics that follow the weights closely (momentum 0.9), a 64-wide CFSAM
whose keys and values are pooled to 4 x 4 per level (the efficient variant:
docs/results.md has the training-step cost of full attention over the 770 tokens),
COCO default-box sizes (the smaller preset), zoom-out up to 2x instead of SSD's 4x
(the SSD paper notes that the 4x expansion needs a longer schedule than a CPU
allows), AdamW with warm-up and cosine decay instead of SSD's SGD schedule.
"""

import json
import os
import sys
import time

DEFAULTS = dict(
    attention="cfsam",
    backbone="small_vgg",
    alpha=0.35,
    input_size=192,
    backbone_weights=None,
    bn_momentum=0.9,
    data_dir="data/shapes",
    max_expand=2.0,
    epochs=16,
    steps_per_epoch=None,
    batch_size=16,
    optimizer="adamw",
    lr=2e-3,
    reference_batch=16,
    schedule="cosine",
    decay_epochs=None,
    warmup_epochs=1.0,
    weight_decay=5e-4,
    clipnorm=10.0,
    out="runs/demo",
    strategy="auto",
    eval_every=4,
    eval_images=0,
    seed=0,
)
# The model settings for a CPU (see the module docstring).
ANCHOR_PRESET = "coco"
BACKBONE_KWARGS = {
    "small_vgg": {"widths": (24, 48, 96, 192)},
    "mobilenet_v2": {"extra_channels": (128, 128, 64, 64)},  # with --alpha
}
ATTENTION_KWARGS = {"cfsam": {"embed_dim": 64, "num_heads": 4, "kv_pool_size": 4}}


def parser():
    from cfsam_keras.training.recipe import recipe_parser

    p = recipe_parser(__doc__.split("\n\n")[0], DEFAULTS, prog="demo")
    g = p.add_argument_group("demo")
    g.add_argument("--train-images", type=int, default=2000, help="images in the generated train split")
    g.add_argument("--val-images", type=int, default=300, help="images in the generated val split")
    g.add_argument("--image-size", type=int, default=192, help="side of the generated images")
    g.add_argument("--predict-images", type=int, default=6, help="validation images drawn in the report")
    g.add_argument("--no-augment", action="store_true", help="resize only, no SSD augmentation")
    g.add_argument("--skip-export", action="store_true", help="do not export (SavedModel, TFLite)")
    return p


def builtin_dataset(data_dir, train, val, image_size, seed):
    """Writes the built-in dataset once; later runs with the same settings reuse it."""
    from cfsam_keras.data import write_builtin_dataset

    wanted = {"train": train, "val": val, "image_size": image_size, "seed": seed}
    stamp = os.path.join(data_dir, "demo-dataset.json")
    if os.path.exists(stamp):
        with open(stamp) as f:
            if json.load(f) == wanted:
                return {s: (os.path.join(data_dir, f"instances_{s}.json"), os.path.join(data_dir, s)) for s in ("train", "val")}
    paths = write_builtin_dataset(data_dir, train=train, val=val, seed=seed, image_size=image_size)
    with open(stamp, "w") as f:
        json.dump(wanted, f)
    return paths


def main(argv=None):
    args = parser().parse_args(argv)
    timings = {}
    start = time.perf_counter()

    from cfsam_keras import data, training
    from cfsam_keras.training import recipe

    # The strategy first: MultiWorkerMirroredStrategy must exist before any TF op runs.
    strategy, run_dir = recipe.setup(args)
    t = time.perf_counter()
    paths = builtin_dataset(args.data_dir, args.train_images, args.val_images, args.image_size, args.seed)
    train_source, val_source = data.coco(*paths["train"]), data.coco(*paths["val"])
    num_classes = train_source.num_classes
    timings["dataset"] = time.perf_counter() - t
    steps = args.steps_per_epoch or data.steps_per_epoch(train_source, args.batch_size)
    with strategy.scope():
        model = recipe.build_model(
            args, num_classes, ANCHOR_PRESET,
            attention_kwargs=ATTENTION_KWARGS.get(args.attention),
            backbone_kwargs=BACKBONE_KWARGS.get(args.backbone),
        )
        recipe.compile_model(model, args, steps, num_classes)
    train_data = recipe.train_data(strategy, args, train_source, model, augment=not args.no_augment)
    callbacks = training.build_callbacks(
        run_dir, recipe.evaluation_callback(args, val_source, run_dir), monitor="val_AP50"
    )
    t = time.perf_counter()
    with recipe.fit_scope(model, strategy, train_data):
        model.fit(train_data, epochs=args.epochs, steps_per_epoch=steps, callbacks=callbacks,
                  shuffle=False)  # train_pipeline shuffles; fit cannot shuffle a tf.data stream
    timings["training"] = time.perf_counter() - t
    if not training.is_chief():
        return 0

    # The model after the last epoch, on the whole val split.
    from cfsam_keras.models import detector

    det = detector(model)
    t = time.perf_counter()
    metrics = validation_metrics(det, val_source)
    timings["evaluation"] = time.perf_counter() - t
    notes = []
    if not args.skip_export:
        t = time.perf_counter()
        tflite_ap50 = export_and_score(model, run_dir.root, train_source, val_source, args.input_size)
        metrics.update(tflite_ap50)
        notes.append(
            "Exports: a TF Serving SavedModel in `export/1` and TFLite files "
            "`export/demo_float32.tflite` and `export/demo_int8.tflite` (int8 calibrated on "
            "100 training images); their AP50 on the val split is in the metrics table."
        )
        timings["export and TFLite scoring"] = time.perf_counter() - t
    with open(os.path.join(run_dir.root, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)

    t = time.perf_counter()
    images = draw_predictions(det, val_source, args.predict_images, args.input_size, run_dir.root)
    timings["prediction"] = time.perf_counter() - t
    timings["total (after install)"] = time.perf_counter() - start

    settings = {k: v for k, v in vars(args).items()
                if v is not None and k != "run" and not (k == "alpha" and args.backbone != "mobilenet_v2")}
    settings.update(
        anchor_preset=ANCHOR_PRESET, backbone_kwargs=BACKBONE_KWARGS.get(args.backbone),
        attention_kwargs=ATTENTION_KWARGS.get(args.attention), parameters=model.count_params(),
        steps_per_epoch=steps,
    )
    report = training.write_report(
        run_dir.root, "cfsam-keras demo: SSD + CFSAM on the built-in shapes dataset",
        metrics, settings=settings, images=images, timings=timings, notes=notes,
    )
    print(f"COCO AP50 {metrics['AP50']:.3f}, AP {metrics['AP']:.3f}; report: {report}")
    return 0


def validation_metrics(det, val_source):
    """COCO AP numbers and VOC07 mAP of the detector ``det`` on the val split."""
    from cfsam_keras.evaluation import evaluate_detector

    results = evaluate_detector(det, val_source, batch_size=16)
    metrics = {k: float(results["coco"][k]) for k in ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")}
    metrics["VOC07 mAP"] = float(results["voc_map"])
    return metrics


def export_and_score(model, root, train_source, val_source, input_size):
    """Exports the SavedModel and float32 / int8 TFLite files; the TFLite files' AP50."""
    from cfsam_keras.data import eval_pipeline
    from cfsam_keras.evaluation import evaluate_detector
    from cfsam_keras.export import batch_detector, export_saved_model, export_tflite, load_predictor

    folder = os.path.join(root, "export")
    export_saved_model(model, folder, class_names=train_source.class_names)
    scores = {}
    for quantization, title in ((None, "float32"), ("int8", "int8")):
        path = export_tflite(
            model, os.path.join(folder, f"demo_{title}.tflite"), quantization=quantization,
            class_names=train_source.class_names,
            representative_data=eval_pipeline(train_source, input_size, 1) if quantization else None,
        )
        predictor = batch_detector(load_predictor("tflite", path))
        result = evaluate_detector(predictor, val_source, batch_size=16, input_size=input_size)
        scores[f"AP50 TFLite {title}"] = float(result["coco"]["AP50"])
    return scores


def draw_predictions(det, val_source, count, input_size, root):
    """Draws the detector ``det``'s boxes on the first ``count`` val images; their paths."""
    import numpy as np

    from cfsam_keras import data, training

    images = []
    for i, example in enumerate(val_source.dataset().take(count)):
        resized = data.pipeline.resize_example(example, input_size)["images"][None]
        out = det(resized)
        k = int(out["num_detections"][0])
        images.append(
            training.draw_detections(
                example["image"].numpy(), np.asarray(out["boxes"][0, :k]),
                np.asarray(out["classes"][0, :k]), np.asarray(out["scores"][0, :k]),
                val_source.class_names, os.path.join(root, "predictions", f"val_{i + 1}.png"),
            )
        )
    return images


if __name__ == "__main__":
    from cfsam_keras.training.recipe import run_recipe

    sys.exit(run_recipe(main))
