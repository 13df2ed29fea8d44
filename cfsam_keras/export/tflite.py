"""TFLite export with decoding and per-class NMS inside, built-in ops only.

The TFLite model takes one RGB image, ``images`` uint8 ``[1, S, S, 3]`` (S the
model's input size; resize before), and returns

- ``detection_boxes`` float32 ``[1, K, 4]``: normalised ``(ymin, xmin, ymax, xmax)``;
- ``detection_scores`` float32 ``[1, K]``;
- ``detection_classes`` int32 ``[1, K]``: 0-based object class ids;
- ``num_detections`` int32 ``[1]``;
- ``raw_predictions`` float32 ``[1, A, 4 + num_classes + 1]``: the Keras model's
  own output (offsets, then logits), for custom post-processing.

Decoding and NMS are the Keras detector's own layers (``DecodePredictions`` and
``PerClassNMS`` with ``method="class_offset"``) traced into the graph: per class
the ``pre_nms_top_k`` best boxes (``TOPK_V2``), shifted apart by class and passed
to one builtin ``NON_MAX_SUPPRESSION_V5``, so the TFLite model runs the same
post-processing as ``cfsam_keras.models.detector`` and needs no Flex (Select TF)
or custom ops.
"""

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from cfsam_keras.export.common import check_tensorflow_backend
from cfsam_keras.export.common import detection_function
from cfsam_keras.export.common import float32_model
from cfsam_keras.export.common import write_class_names
from cfsam_keras.export.common import write_file
from cfsam_keras.export.saved_model import resize_images
from cfsam_keras.models import check_class_names
from cfsam_keras.models import model_config

QUANTIZATIONS = (None, "float16", "dynamic", "int8")


def class_names_path(tflite_path):
    """Where `export_tflite` writes the class names beside ``tflite_path``."""
    root, _ = os.path.splitext(tflite_path)
    return root + ".labels.txt"


def _build_archive(model, input_size, settings):
    # One NON_MAX_SUPPRESSION_V5 per image: a TFLite builtin.
    detect = detection_function(model, **settings)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        detect,
        input_signature=[tf.TensorSpec([1, input_size, input_size, 3], tf.uint8, name="images")],
    )
    return archive


def _representative_images(representative_data, input_size, limit):
    """Yields float32 [1, S, S, 3] calibration images from arrays or a dataset."""
    count = 0
    for item in representative_data:
        if isinstance(item, dict):
            item = item["images"] if "images" in item else item["image"]
        elif isinstance(item, (tuple, list)):
            item = item[0]
        batch = np.asarray(item)
        if batch.ndim == 3:
            batch = batch[None]
        if batch.ndim != 4 or batch.shape[-1] != 3:
            raise ValueError(
                "representative_data must give RGB images [H, W, 3] or batches "
                f"[B, H, W, 3], got shape {batch.shape}"
            )
        for image in batch:
            if image.shape[:2] != (input_size, input_size):
                image = resize_images(image[None], input_size).numpy()[0]
            image = np.clip(np.round(image), 0, 255).astype(np.uint8)
            yield [image[None]]
            count += 1
            if count >= limit:
                return
    if count == 0:
        raise ValueError("representative_data gave no images")


def _convert(converter, quantization, representative_data, input_size, num_calibration_images):
    # Built-in ops only: a model that would need Flex ops fails to convert here.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        converter.representative_dataset = lambda: _representative_images(
            representative_data, input_size, num_calibration_images
        )
    return converter.convert()


def export_tflite(
    model,
    path,
    quantization=None,
    representative_data=None,
    class_names=None,
    num_calibration_images=100,
    **settings,
):
    """Converts an SSD model to a TFLite file with decoding and NMS inside.

    Args:
        model: an SSD Keras model from ``cfsam_keras.models.SSD300``.
        path: the ``.tflite`` file to write. The class names go beside it, one a
            line, in ``<path without .tflite>.labels.txt``.
        quantization: ``None`` (float32), ``"float16"`` (float16 weights),
            ``"dynamic"`` (int8 weights, float activations) or ``"int8"`` (int8
            weights and activations, calibrated on ``representative_data``; ops
            without an int8 kernel stay float).
        representative_data: for ``"int8"``: an iterable of RGB images
            ``[H, W, 3]`` or batches ``[B, H, W, 3]`` (0..255, resized to the
            model's input size here), or of ``eval_pipeline`` dicts (their
            ``images``) or ``(images, ...)`` tuples.
        class_names: list of ``num_classes`` names; default: the model's own
            (``cfsam_keras.models.model_config``).
        num_calibration_images: at most this many images are used for ``"int8"``.
        **settings: the inference settings of ``cfsam_keras.models.postprocessor``
            (``score_threshold``, ``iou_threshold``, ``max_detections``,
            ``pre_nms_top_k``); SSD's when left out.

    Returns:
        ``path``.

    Example:

    >>> export_tflite(model, "exports/ssd300/ssd300_fp16.tflite", quantization="float16")
    """
    check_tensorflow_backend("export_tflite")
    model = float32_model(model)
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    if quantization == "int8" and representative_data is None:
        raise ValueError(
            'quantization="int8" needs representative_data (e.g. images of the eval split)'
        )
    config = model_config(model)
    input_size = config["input_size"]
    class_names = check_class_names(class_names, config["num_classes"]) or config["class_names"]
    archive = _build_archive(model, input_size, settings)
    # Through a SavedModel, as Keras' own LiteRT export does: it freezes the
    # Keras variables into constants.
    with tempfile.TemporaryDirectory() as saved_model_dir:
        archive.write_out(saved_model_dir, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
        flatbuffer = _convert(
            converter, quantization, representative_data, input_size, num_calibration_images
        )

    write_file(path, flatbuffer)
    write_class_names(class_names_path(path), class_names)
    return path
