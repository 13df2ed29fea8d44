"""Inference: decoding and per-class NMS after an SSD model, built in one place.

``postprocessor`` is the one decode + NMS stage; ``detector`` (Keras), the TF
Serving SavedModel, the TFLite file and the ONNX file all run it.
"""

import keras

from cfsam_keras.defaults import MAX_DETECTIONS
from cfsam_keras.defaults import NMS_IOU_THRESHOLD
from cfsam_keras.defaults import PRE_NMS_TOP_K
from cfsam_keras.defaults import SCORE_THRESHOLD
from cfsam_keras.models.decoder import DecodePredictions
from cfsam_keras.models.nms import PerClassNMS
from cfsam_keras.models.ssd import model_config


def postprocessor(
    model,
    score_threshold=SCORE_THRESHOLD,
    iou_threshold=NMS_IOU_THRESHOLD,
    max_detections=MAX_DETECTIONS,
    pre_nms_top_k=PRE_NMS_TOP_K,
    nms_method="combined",
):
    """The decode + per-class NMS stage for the raw output of an SSD model.

    The defaults are SSD's inference settings (``cfsam_keras.defaults``); the default
    boxes and variances are the model's own (``model_config``).

    Args:
        model: a model from ``cfsam_keras.models.SSD300`` (freshly built or reloaded).
        score_threshold: float, minimum class probability of a detection.
        iou_threshold: float, per-class NMS IoU threshold.
        max_detections: int, detections per image (K).
        pre_nms_top_k: per class, only this many best-scoring boxes enter NMS;
            ``None`` for all.
        nms_method: one of ``cfsam_keras.models.NMS_METHODS``; all give the same
            detections, each maps to the ops of one runtime.

    Returns:
        A function: raw predictions ``[B, A, 4 + num_classes + 1]`` (tensors or Keras
        tensors) -> dict with ``boxes [B, K, 4]`` (rel_xyxy, clipped to [0, 1]),
        ``scores [B, K]``, ``classes [B, K]`` (int32, object classes) and
        ``num_detections [B]`` (int32); rows past ``num_detections`` are zeros.
    """
    config = model_config(model)
    decode = DecodePredictions(config["anchor_config"], config["variances"], dtype="float32")
    nms = PerClassNMS(
        score_threshold=score_threshold,
        iou_threshold=iou_threshold,
        max_detections=max_detections,
        method=nms_method,
        pre_nms_top_k=pre_nms_top_k,
        name="nms",
    )

    def run(predictions):
        boxes, scores, classes, num_detections = nms(*decode(predictions))
        return {
            "boxes": boxes,
            "scores": scores,
            "classes": classes,
            "num_detections": num_detections,
        }

    return run


def detector(model, **settings):
    """Wraps an SSD model with box decoding and per-class NMS for inference.

    Runs on the TensorFlow backend only (the NMS is TensorFlow's); the wrapped model
    shares its weights with ``model``.

    Args:
        model: a model from ``cfsam_keras.models.SSD300`` (freshly built or reloaded).
        **settings: ``postprocessor``'s arguments (``score_threshold``,
            ``iou_threshold``, ``max_detections``, ``pre_nms_top_k``,
            ``nms_method``); SSD's inference settings when left out.

    Returns:
        A ``keras.Model``: input images float32 ``[B, S, S, 3]`` RGB in [0, 255]; output
        the dict of ``postprocessor``.

    Example:
    >>> model = SSD300(20, attention="none")
    >>> outputs = detector(model, score_threshold=0.3)(images)
    >>> outputs["boxes"][0, : outputs["num_detections"][0]]
    """
    images = keras.Input(shape=model.input_shape[1:], name="images")
    outputs = postprocessor(model, **settings)(model(images))
    return keras.Model(images, outputs, name=f"{model.name}_detector")
