"""Detection data: sources in one example format, SSD augmentation, tf.data pipelines.

Sources (each yields dicts ``image`` uint8 [H, W, 3] RGB, ``boxes`` float32
[N, 4] rel_xyxy, ``classes`` int32 [N] 0-based, ``image_id`` int64,
``difficult`` / ``is_crowd`` bool [N]; class names in ``source.class_names``):

- `coco(annotation_file, image_dir)`: COCO-format folders (pycocotools).
- `voc(devkit_dir, year, split)`: PASCAL VOC devkits.
- `tfds_source(name, split)`: TFDS ``voc/*`` and ``coco/*``.
- `write_builtin_dataset(out_dir, train, val, seed)`: the built-in shapes
  dataset, written as COCO files (then read with `coco`).
- `concatenate(*sources)` (or ``a + b``): e.g. VOC07+12 trainval.

Pipelines: `train_pipeline` (augmentation + target encoding), `eval_pipeline`
(resize only, ids and original sizes kept), `steps_per_epoch`.
"""

from cfsam_keras.data.augment import CROP_MIN_IOUS
from cfsam_keras.data.augment import SSD_MEAN_RGB
from cfsam_keras.data.augment import crop_resize_window
from cfsam_keras.data.augment import photometric_distortion
from cfsam_keras.data.augment import sample_expand
from cfsam_keras.data.augment import sample_min_iou_crop
from cfsam_keras.data.augment import ssd_augment
from cfsam_keras.data.builtin import BUILTIN_CLASSES
from cfsam_keras.data.builtin import builtin_manifest
from cfsam_keras.data.builtin import generate_image
from cfsam_keras.data.builtin import write_builtin_dataset
from cfsam_keras.data.coco import CocoSource
from cfsam_keras.data.coco import coco
from cfsam_keras.data.image_check import check_image
from cfsam_keras.data.pipeline import eval_pipeline
from cfsam_keras.data.pipeline import steps_per_epoch
from cfsam_keras.data.pipeline import train_pipeline
from cfsam_keras.data.report import BadInputError
from cfsam_keras.data.report import InputReport
from cfsam_keras.data.source import Source
from cfsam_keras.data.source import concatenate
from cfsam_keras.data.source import decode_record
from cfsam_keras.data.source import undecodable_images
from cfsam_keras.data.tfds_source import TfdsSource
from cfsam_keras.data.tfds_source import tfds_source
from cfsam_keras.data.voc import VOC_CLASSES
from cfsam_keras.data.voc import VocSource
from cfsam_keras.data.voc import voc

__all__ = [
    "BUILTIN_CLASSES",
    "BadInputError",
    "CROP_MIN_IOUS",
    "CocoSource",
    "InputReport",
    "SSD_MEAN_RGB",
    "Source",
    "TfdsSource",
    "VOC_CLASSES",
    "VocSource",
    "check_image",
    "coco",
    "concatenate",
    "crop_resize_window",
    "decode_record",
    "eval_pipeline",
    "generate_image",
    "photometric_distortion",
    "sample_expand",
    "sample_min_iou_crop",
    "ssd_augment",
    "steps_per_epoch",
    "tfds_source",
    "train_pipeline",
    "undecodable_images",
    "voc",
    "builtin_manifest",
    "write_builtin_dataset",
]
