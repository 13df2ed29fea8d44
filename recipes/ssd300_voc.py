"""SSD300 (+ CFSAM) on PASCAL VOC07+12 trainval, tested on VOC07 test.

    python recipes/ssd300_voc.py --data-dir ~/data/VOCdevkit --out runs/voc

--data-dir is the VOCdevkit folder holding VOC2007 (trainval + test) and
VOC2012; --tfds reads voc/2007 and voc/2012 through TensorFlow Datasets.
The schedule is SSD300's (Liu et al., 2016): SGD, momentum 0.9, L2 5e-4,
lr 1e-3 at batch 32 (scaled linearly to --batch-size), 120k iterations with
the rate x0.1 at 80k and 100k (here in epochs of VOC07+12's 16,551 images:
232 epochs, decay at 155 and 194), plus a one-epoch warm-up and gradient
clipping at norm 20 (not in SSD's reference; guards its early instability).
"""

import sys

DEFAULTS = dict(
    attention="cfsam",
    backbone="vgg16",
    alpha=1.0,
    input_size=300,
    backbone_weights="imagenet",
    data_dir="data/VOCdevkit",
    epochs=232,
    steps_per_epoch=None,
    batch_size=32,
    optimizer="sgd",
    lr=1e-3,
    reference_batch=32,
    schedule="step",
    decay_epochs=[155, 194],
    warmup_epochs=1.0,
    weight_decay=5e-4,
    clipnorm=20.0,
    out="runs/ssd300_voc",
    strategy="auto",
    eval_every=10,
    eval_images=0,
    seed=0,
)
ANCHOR_PRESET = "voc"


def load_data(args):
    from cfsam_keras import data

    if args.tfds:
        train = data.tfds_source("voc/2007", "train+validation", args.tfds_dir) + data.tfds_source(
            "voc/2012", "train+validation", args.tfds_dir
        )
        return train, data.tfds_source("voc/2007", "test", args.tfds_dir)
    train = data.voc(args.data_dir, "2007", "trainval") + data.voc(args.data_dir, "2012", "trainval")
    return train, data.voc(args.data_dir, "2007", "test")


def main(argv=None):
    from cfsam_keras import data, training
    from cfsam_keras.training import recipe

    args = recipe.recipe_parser(__doc__.split("\n\n")[0], DEFAULTS, prog="ssd300_voc").parse_args(argv)
    strategy, run_dir = recipe.setup(args)
    train_source, val_source = load_data(args)
    num_classes = train_source.num_classes
    steps = args.steps_per_epoch or data.steps_per_epoch(train_source, args.batch_size)
    with strategy.scope():
        model = recipe.build_model(args, num_classes, ANCHOR_PRESET)
        recipe.compile_model(model, args, steps, num_classes)
    train_data = recipe.train_data(strategy, args, train_source, model)
    callbacks = training.build_callbacks(
        run_dir, recipe.evaluation_callback(args, val_source, run_dir), monitor="val_voc_map"
    )
    with recipe.fit_scope(model, strategy, train_data):
        model.fit(train_data, epochs=args.epochs, steps_per_epoch=steps, callbacks=callbacks,
                  shuffle=False)  # train_pipeline shuffles; fit cannot shuffle a tf.data stream
    return 0


if __name__ == "__main__":
    from cfsam_keras.training.recipe import run_recipe

    sys.exit(run_recipe(main))
