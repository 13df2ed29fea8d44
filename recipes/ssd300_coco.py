"""SSD300 (+ CFSAM) on COCO train2017, tested on val2017.

    python recipes/ssd300_coco.py --data-dir ~/data/coco --out runs/coco

--data-dir holds annotations/instances_{train,val}2017.json and the
train2017/ and val2017/ image folders; --tfds reads coco/2017 through
TensorFlow Datasets. The schedule is SSD300's COCO one (the reference Caffe
code): SGD, momentum 0.9, L2 5e-4, lr 1e-3 at batch 32 (scaled linearly to
--batch-size), 400k iterations with the rate x0.1 at 280k and 360k (in
epochs of train2017's 118,287 images: 108 epochs, decay at 76 and 97), COCO
default-box sizes (21 .. 315), plus a one-epoch warm-up and gradient clipping
at norm 20 (not in SSD's reference).
"""

import os
import sys

DEFAULTS = dict(
    attention="cfsam",
    backbone="vgg16",
    alpha=1.0,
    input_size=300,
    backbone_weights="imagenet",
    data_dir="data/coco",
    epochs=108,
    steps_per_epoch=None,
    batch_size=32,
    optimizer="sgd",
    lr=1e-3,
    reference_batch=32,
    schedule="step",
    decay_epochs=[76, 97],
    warmup_epochs=1.0,
    weight_decay=5e-4,
    clipnorm=20.0,
    out="runs/ssd300_coco",
    strategy="auto",
    eval_every=4,
    eval_images=0,
    seed=0,
)
ANCHOR_PRESET = "coco"


def load_data(args):
    from cfsam_keras import data

    if args.tfds:
        return (
            data.tfds_source("coco/2017", "train", args.tfds_dir),
            data.tfds_source("coco/2017", "validation", args.tfds_dir),
        )
    annotations = os.path.join(args.data_dir, "annotations")
    return (
        data.coco(os.path.join(annotations, "instances_train2017.json"), os.path.join(args.data_dir, "train2017")),
        data.coco(os.path.join(annotations, "instances_val2017.json"), os.path.join(args.data_dir, "val2017")),
    )


def main(argv=None):
    from cfsam_keras import data, training
    from cfsam_keras.training import recipe

    args = recipe.recipe_parser(__doc__.split("\n\n")[0], DEFAULTS, prog="ssd300_coco").parse_args(argv)
    strategy, run_dir = recipe.setup(args)
    train_source, val_source = load_data(args)
    num_classes = train_source.num_classes
    steps = args.steps_per_epoch or data.steps_per_epoch(train_source, args.batch_size)
    with strategy.scope():
        model = recipe.build_model(args, num_classes, ANCHOR_PRESET)
        recipe.compile_model(model, args, steps, num_classes)
    train_data = recipe.train_data(strategy, args, train_source, model)
    callbacks = training.build_callbacks(
        run_dir, recipe.evaluation_callback(args, val_source, run_dir), monitor="val_AP"
    )
    with recipe.fit_scope(model, strategy, train_data):
        model.fit(train_data, epochs=args.epochs, steps_per_epoch=steps, callbacks=callbacks,
                  shuffle=False)  # train_pipeline shuffles; fit cannot shuffle a tf.data stream
    return 0


if __name__ == "__main__":
    from cfsam_keras.training.recipe import run_recipe

    sys.exit(run_recipe(main))
