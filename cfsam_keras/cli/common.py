"""What the sub-commands share: the one-line error, loading the runtime and models."""

import json
import os

from cfsam_keras import defaults
from cfsam_keras.validation import flag
from cfsam_keras.validation import number
from cfsam_keras.validation import positive_int


class CLIError(Exception):
    """An error reported to the user as one line, without a traceback."""


def load_runtime():
    """Imports TensorFlow (quietly, with its pooled CPU allocator) and the library's
    Keras classes."""
    from cfsam_keras import register_keras_objects
    from cfsam_keras.runtime import import_tensorflow_quietly
    from cfsam_keras.runtime import pool_cpu_memory

    pool_cpu_memory()
    import_tensorflow_quietly(probe_devices=True)
    register_keras_objects()


def load_keras_model(path, flag="--model"):
    """Loads a ``.keras`` file saved by this library, or raises a one-line CLIError."""
    import keras

    if not str(path).endswith(".keras"):
        raise CLIError(f"{flag} must be a .keras file (model.save('x.keras')), got {path}")
    if not os.path.isfile(path):
        raise CLIError(f"{flag}: no such file: {path}")
    try:
        return keras.saving.load_model(path)
    except Exception as e:  # noqa: BLE001 (load_model raises many types; the user needs one line)
        text = str(e).strip().splitlines()
        raise CLIError(
            f"{flag}: cannot load {path}: {type(e).__name__}: {text[0] if text else ''}"
        ) from None


def read_class_names_arg(path, flag="--class-names"):
    """Class names from a text file (one a line) or a COCO annotation file, or ``None``."""
    if path is None:
        return None
    if not os.path.isfile(path):
        raise CLIError(f"{flag}: no such file: {path}")
    if path.endswith(".json"):
        try:
            with open(path, encoding="utf-8") as f:
                categories = json.load(f)["categories"]
            return [c["name"] for c in sorted(categories, key=lambda c: c["id"])]
        except (ValueError, KeyError, TypeError) as e:
            raise CLIError(f"{flag}: {path} is not a COCO annotation file ({e})") from None
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def add_inference_flags(parser):
    """The inference-setting flags of ``export`` and ``evaluate`` (SSD's by default)."""
    group = parser.add_argument_group("inference (SSD's settings by default)")
    group.add_argument(
        "--score-threshold",
        type=flag(number, low=0.0, high=1.0, high_open=True),
        default=defaults.SCORE_THRESHOLD,
        help="minimum detection score (default %(default)s)",
    )
    group.add_argument(
        "--iou-threshold",
        type=flag(number, low=0.0, high=1.0, low_open=True),
        default=defaults.NMS_IOU_THRESHOLD,
        help="per-class NMS IoU (default %(default)s)",
    )
    group.add_argument(
        "--max-detections",
        type=flag(positive_int),
        default=defaults.MAX_DETECTIONS,
        help="detections kept per image (default %(default)s)",
    )
    group.add_argument(
        "--pre-nms-top-k",
        type=flag(positive_int),
        default=defaults.PRE_NMS_TOP_K,
        help="per class, the best boxes that enter NMS (default %(default)s)",
    )


def inference_settings(args):
    """The ``postprocessor`` settings of `add_inference_flags`' flags."""
    return {
        "score_threshold": args.score_threshold,
        "iou_threshold": args.iou_threshold,
        "max_detections": args.max_detections,
        "pre_nms_top_k": args.pre_nms_top_k,
    }
