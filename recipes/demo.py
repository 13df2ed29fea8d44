"""The CPU demo: SSD + CFSAM on the built-in shapes dataset, end to end.

Writes the built-in dataset to disk in COCO format (once; reused by later
runs), trains with ``model.fit``, evaluates with pycocotools, exports a
SavedModel, predicts on validation images and writes ``OUT/report.md``.

    python recipes/demo.py --out runs/demo

Chosen for a 2-core CPU without ImageNet weights (all of it is the demo's
choice, not SSD's): MobileNetV2 (alpha 0.35) from scratch at 192 x 192,
slimmer extra blocks and a 64-wide CFSAM, COCO default-box sizes (the smaller
preset), AdamW with warm-up and cosine decay instead of SSD's SGD schedule.
"""

import functools
import json
import os
import sys
import time

DEFAULTS = dict(
    attention="cfsam",
    backbone="mobilenet_v2",
    alpha=0.35,
    input_size=192,
    backbone_weights=None,
    data_dir="data/shapes",
    epochs=8,
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
    eval_every=2,
    eval_images=0,
    seed=0,
)
# The model settings for a CPU (see the module docstring).
ANCHOR_PRESET = "coco"
BACKBONE_KWARGS = {"extra_channels": (128, 128, 64, 64)}
ATTENTION_KWARGS = {"cfsam": {"embed_dim": 64, "num_heads": 4}}


def parser():
    from cfsam_keras.training.recipe import recipe_parser

    p = recipe_parser(__doc__.split("\n\n")[0], DEFAULTS, prog="demo")
    g = p.add_argument_group("demo")
    g.add_argument("--train-images", type=int, default=2000, help="images in the generated train split")
    g.add_argument("--val-images", type=int, default=300, help="images in the generated val split")
    g.add_argument("--image-size", type=int, default=192, help="side of the generated images")
    g.add_argument("--predict-images", type=int, default=6, help="validation images drawn in the report")
    g.add_argument("--no-augment", action="store_true", help="resize only, no SSD augmentation")
    g.add_argument("--skip-export", action="store_true", help="do not export a SavedModel")
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

    import numpy as np

    from cfsam_keras import data, training
    from cfsam_keras.models import detector, model_default_boxes
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
            backbone_kwargs=BACKBONE_KWARGS if args.backbone == "mobilenet_v2" else None,
        )
        recipe.compile_model(model, args, steps, num_classes)
    train_data = recipe.distribute(
        strategy,
        lambda batch, context: data.train_pipeline(
            train_source, model_default_boxes(model), args.input_size, batch,
            seed=args.seed, augment=not args.no_augment, input_context=context,
        ),
        args.batch_size,
    )
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

    # Final evaluation of the model after the last epoch, on the whole val split.
    from cfsam_keras.evaluation import evaluate_detector

    t = time.perf_counter()
    det = detector(model)
    results = evaluate_detector(det, val_source, batch_size=16)
    timings["evaluation"] = time.perf_counter() - t
    coco = results["coco"]
    metrics = {k: float(coco[k]) for k in ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")}
    metrics["VOC07 mAP"] = float(results["voc_map"])
    with open(os.path.join(run_dir.root, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)

    notes = []
    if not args.skip_export:
        t = time.perf_counter()
        try:
            from cfsam_keras.export import export_saved_model
        except ImportError:
            notes.append("Export skipped: cfsam_keras.export is not available.")
        else:
            folder = export_saved_model(model, os.path.join(run_dir.root, "export"), class_names=train_source.class_names)
            notes.append(f"SavedModel for TF Serving: `{os.path.relpath(folder, run_dir.root)}`.")
        timings["export"] = time.perf_counter() - t

    t = time.perf_counter()
    images = []
    examples = list(val_source.dataset().take(args.predict_images))
    for i, example in enumerate(examples):
        image = example["image"].numpy()
        resized = data.pipeline.resize_example(example, args.input_size)["images"][None]
        out = det(resized)
        k = int(out["num_detections"][0])
        images.append(
            training.draw_detections(
                image, np.asarray(out["boxes"][0, :k]), np.asarray(out["classes"][0, :k]),
                np.asarray(out["scores"][0, :k]), train_source.class_names,
                os.path.join(run_dir.root, "predictions", f"val_{i + 1}.png"),
            )
        )
    timings["prediction"] = time.perf_counter() - t
    timings["total (after install)"] = time.perf_counter() - start

    settings = {k: v for k, v in vars(args).items() if v is not None}
    settings.update(anchor_preset=ANCHOR_PRESET, backbone_kwargs=BACKBONE_KWARGS, attention_kwargs=ATTENTION_KWARGS.get(args.attention), parameters=model.count_params(), steps_per_epoch=steps)
    report = training.write_report(
        run_dir.root, "cfsam-keras demo: SSD + CFSAM on the built-in shapes dataset",
        metrics, settings=settings, images=images, timings=timings, notes=notes,
    )
    print(f"COCO AP50 {metrics['AP50']:.3f}, AP {metrics['AP']:.3f}; report: {report}")
    return 0


if __name__ == "__main__":
    from cfsam_keras.training.recipe import run_recipe

    sys.exit(run_recipe(main))
