"""SSD300 (+ CFSAM) on PASCAL VOC07+12 or COCO, with SSD's published schedule.

    python recipes/ssd300.py --dataset voc --data-dir ~/data/VOCdevkit --out runs/voc
    python recipes/ssd300.py --dataset coco --tfds --strategy mirrored --out runs/coco

voc: trains on VOC07+12 trainval and evaluates on VOC07 test; --data-dir is the
VOCdevkit folder holding VOC2007 (trainval + test) and VOC2012. coco: train2017 and
val2017; --data-dir holds annotations/instances_{train,val}2017.json and the
train2017/ and val2017/ folders. --tfds reads either through TensorFlow Datasets.
The schedule is SSD300's (configs.SSD300_VOC, configs.SSD300_COCO), stated in
iterations at batch 32 and converted to --batch-size: the same number of images,
the learning rate scaled linearly, the decay steps scaled with the iterations.
"""

import math
import sys

import common
import configs

from cfsam_keras import data
from cfsam_keras import training
from cfsam_keras.validation import flag
from cfsam_keras.validation import positive_int


def parser():
    p = common.recipe_parser(__doc__.split("\n\n")[0], configs.SSD300, prog="ssd300", epochs=False)
    g = p.add_argument_group("SSD300")
    g.add_argument("--dataset", choices=tuple(configs.SSD300_DATASETS), default="voc")
    g.add_argument(
        "--iterations",
        type=flag(positive_int),
        help="optimizer steps in all (default: the dataset's schedule at --batch-size)",
    )
    return p


def main(argv=None):
    args = common.parse_args(parser(), argv)
    settings = configs.SSD300_DATASETS[args.dataset]
    args.data_dir = args.data_dir or settings["data_dir"]
    args.out = args.out or f"runs/ssd300_{args.dataset}"
    strategy, run_dir = common.setup(args)
    train_source, val_source = common.load_sources(args.dataset, args)
    total, decay = settings["schedule"].at_batch(args.batch_size)
    if args.iterations:
        decay = [round(d * args.iterations / total) for d in decay]
        total = args.iterations
    steps = args.steps_per_epoch or data.steps_per_epoch(train_source, args.batch_size)
    epochs = math.ceil(total / steps)
    with strategy.scope():
        model = common.build_model(args, train_source.class_names, settings["anchor_preset"])
        common.compile_model(model, args, total, decay, round(args.warmup_epochs * steps))
    train_data = common.train_data(strategy, args, train_source, model)
    callbacks = training.build_callbacks(
        run_dir,
        common.evaluation_callback(args, val_source, run_dir),
        monitor=settings["monitor"],
        train_source=train_source,
    )
    callbacks.append(training.StopAtStep(total))
    with training.fit_scope(model, strategy, train_data):
        model.fit(
            train_data, epochs=epochs, steps_per_epoch=steps, callbacks=callbacks, shuffle=False
        )  # train_pipeline shuffles; fit cannot shuffle a tf.data stream
    return 0


if __name__ == "__main__":
    sys.exit(common.run(main))
