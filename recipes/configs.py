"""Every recipe setting, in one place.

The recipes (``demo.py``, ``ssd300.py``, ``compare_attention.py``,
``finetune_attention.py``) and the benchmarks import their settings from here
instead of copying them.

- ``SSD300_VOC`` and ``SSD300_COCO``: SSD300's published schedules, stated in
  iterations at the reference batch of 32, as the paper states them.
  ``IterationSchedule.at_batch`` converts one to another global batch size
  (the one place that does).
- ``DEMO_MODEL`` and ``DEMO``: the CPU demo's model and training flags. They
  are the demo's choices, not SSD's (``demo.py`` says why each one).
"""

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class IterationSchedule:
    """An SGD step schedule as the SSD paper states it.

    Attributes:
        iterations: optimizer steps of the whole run at ``batch_size``.
        decay_at: steps (at ``batch_size``) after which the rate is
            multiplied by ``decay_factor``.
        batch_size: the batch the schedule is published for.
        learning_rate: the rate at ``batch_size``.
        decay_factor: the multiplier at each step of ``decay_at``.
    """

    iterations: int
    decay_at: tuple
    batch_size: int = 32
    learning_rate: float = 1e-3
    decay_factor: float = 0.1

    def at_batch(self, batch_size):
        """The same schedule for another global batch size.

        The number of images seen stays the same: every step count is scaled by
        ``self.batch_size / batch_size``. (The learning rate is scaled by the
        recipes, with ``cfsam_keras.optimizers.scale_learning_rate``.)

        Returns:
            ``(total_steps, decay_steps)``.
        """
        scale = self.batch_size / batch_size
        return math.ceil(self.iterations * scale), [round(s * scale) for s in self.decay_at]


#: SSD300 on VOC07+12 trainval (Liu et al., 2016, and its Caffe model zoo
#: script): 120k iterations at batch 32, lr 1e-3, x0.1 at 80k and 100k.
SSD300_VOC = IterationSchedule(iterations=120_000, decay_at=(80_000, 100_000))

#: SSD300 on COCO as the paper publishes it (section 3.4): 160k iterations at
#: lr 1e-3, then 40k at 1e-4 and 40k at 1e-5, batch 32. (The ssd.caffe script
#: ``ssd_coco.py`` trains 400k iterations with decay at 280k and 360k instead.)
SSD300_COCO = IterationSchedule(iterations=240_000, decay_at=(160_000, 200_000))

#: The flag defaults of ``ssd300.py``: SSD300's published training (VGG16 from
#: ImageNet, SGD with momentum 0.9 and L2 5e-4, lr 1e-3 at batch 32, no warm-up and
#: no gradient clipping), whatever the dataset.
SSD300 = dict(
    attention="cfsam",
    backbone="vgg16",
    input_size=300,
    backbone_weights="imagenet",
    batch_size=32,
    optimizer="sgd",
    lr=1e-3,
    reference_batch=32,
    schedule="step",
    weight_decay=5e-4,
    warmup_epochs=0.0,
    clipnorm=0.0,
    eval_every=10,
)

#: Per dataset: its schedule, default-box sizes, folder and the metric that picks
#: ``best.keras``.
SSD300_DATASETS = {
    "voc": dict(
        schedule=SSD300_VOC, anchor_preset="voc", data_dir="data/VOCdevkit", monitor="val_voc_map"
    ),
    "coco": dict(
        schedule=SSD300_COCO, anchor_preset="coco", data_dir="data/coco", monitor="val_AP"
    ),
}

#: Images of the training sets SSD300's schedules are published for (an epoch
#: is one pass over them).
DATASET_IMAGES = {"VOC07+12 trainval": 16_551, "COCO train2017": 118_287}

#: The demo's model: the small VGG-style backbone from scratch, COCO default-box
#: sizes, a 64-wide CFSAM whose keys and values are pooled to 4 x 4 per level.
DEMO_MODEL = dict(
    backbone="small_vgg",
    input_size=192,
    anchor_preset="coco",
    backbone_kwargs={"widths": (24, 48, 96, 192)},
    attention="cfsam",
    attention_kwargs={"embed_dim": 64, "num_heads": 4, "kv_pool_size": 4},
)

#: The demo's flag defaults (``python recipes/demo.py --help`` lists them all).
DEMO = dict(
    attention=DEMO_MODEL["attention"],
    backbone=DEMO_MODEL["backbone"],
    input_size=DEMO_MODEL["input_size"],
    backbone_weights=None,
    bn_momentum=0.9,
    data_dir="data/shapes",
    max_expand=2.0,
    epochs=16,
    batch_size=16,
    optimizer="adamw",
    lr=2e-3,
    reference_batch=16,
    schedule="cosine",
    warmup_epochs=1.0,
    weight_decay=5e-4,
    clipnorm=10.0,
    out="runs/demo",
    eval_every=4,
)

#: The built-in dataset the demo writes (``cfsam_keras.data.write_builtin_dataset``).
DEMO_DATASET = dict(train=2000, val=300, image_size=192, seed=0)

#: What ``finetune_attention.py`` changes in a dataset's flags (``compare_attention``'s
#: defaults): a short continuation of an already trained detector at a tenth of the
#: rate it was trained with, cosine to zero, no warm-up, both arms alike. Ours, not the
#: paper's (its schedule is not public).
FINETUNE = {
    "builtin": dict(epochs=2, lr=DEMO["lr"] / 10, schedule="cosine", warmup_epochs=0.0),
    "ssd300": dict(epochs=12, lr=SSD300["lr"] / 10, schedule="cosine", warmup_epochs=0.0),
}
