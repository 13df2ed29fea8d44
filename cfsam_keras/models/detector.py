"""The inference detector: SSD model, decoding and per-class NMS in one keras.Model."""

import keras

from cfsam_keras.models.decoder import DecodePredictions
from cfsam_keras.models.nms import PerClassNMS
from cfsam_keras.models.ssd import model_config


def detector(
    model,
    score_threshold=0.01,
    iou_threshold=0.45,
    max_detections=200,
    nms_method="combined",
    variances=(0.1, 0.2),
    pre_nms_top_k=400,
):
    """Wraps an SSD model with box decoding and per-class NMS for inference.

    The defaults are SSD's inference settings (score 0.01, top 400 per class, IoU 0.45,
    top 200). Runs on the TensorFlow backend only (the NMS is TensorFlow's); the wrapped
    model shares its weights with ``model``.

    Args:
        model: a model from ``cfsam_keras.models.SSD300`` (freshly built or reloaded).
        score_threshold: float, minimum class probability of a detection.
        iou_threshold: float, per-class NMS IoU threshold.
        max_detections: int, detections per image (K).
        nms_method: ``"combined"`` (``tf.image.combined_non_max_suppression``) or
            ``"class_offset"`` (one ``NonMaxSuppressionV5`` per image, TFLite builtin);
            both give the same detections.
        variances: the box-encoding variances the model was trained with.
        pre_nms_top_k: per class, only this many best-scoring boxes enter NMS (SSD's
            ``top_k: 400``); ``None`` for all.

    Returns:
        A ``keras.Model``: input images float32 ``[B, S, S, 3]`` RGB in [0, 255]; output a
        dict with ``boxes [B, K, 4]`` (rel_xyxy, clipped to [0, 1]), ``scores [B, K]``,
        ``classes [B, K]`` (int32, object classes 0 .. num_classes - 1) and
        ``num_detections [B]`` (int32); rows past ``num_detections`` are zeros.

    Example:
    >>> model = SSD300(20, attention="none")
    >>> outputs = detector(model, score_threshold=0.3)(images)
    >>> outputs["boxes"][0, : outputs["num_detections"][0]]
    """
    config = model_config(model)
    images = keras.Input(shape=model.input_shape[1:], name="images")
    predictions = model(images)
    boxes, scores = DecodePredictions(config["anchor_config"], variances, name="decode")(
        predictions
    )
    boxes, scores, classes, num_detections = PerClassNMS(
        score_threshold=score_threshold,
        iou_threshold=iou_threshold,
        max_detections=max_detections,
        method=nms_method,
        pre_nms_top_k=pre_nms_top_k,
        name="nms",
    )(boxes, scores)
    outputs = {
        "boxes": boxes,
        "scores": scores,
        "classes": classes,
        "num_detections": num_detections,
    }
    return keras.Model(images, outputs, name=f"{model.name}_detector")
