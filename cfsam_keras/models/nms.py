"""Per-class non-maximum suppression, as SSD's (TensorFlow backend only)."""

import keras

from cfsam_keras.defaults import MAX_DETECTIONS
from cfsam_keras.defaults import NMS_IOU_THRESHOLD
from cfsam_keras.defaults import PRE_NMS_TOP_K
from cfsam_keras.defaults import SCORE_THRESHOLD
from cfsam_keras.validation import number
from cfsam_keras.validation import positive_int

#: ``"combined"``: ``tf.image.combined_non_max_suppression`` (fast on CPU and GPU).
#: ``"class_offset"``: one ``NonMaxSuppressionV5`` per image over boxes shifted apart by
#: class, which keeps classes apart exactly as per-class NMS does and maps to TFLite's
#: builtin NON_MAX_SUPPRESSION_V5 op (the TFLite export uses it).
NMS_METHODS = ("combined", "class_offset")


@keras.saving.register_keras_serializable(package="cfsam_keras")
class PerClassNMS(keras.layers.Layer):
    """Per-class NMS of decoded SSD boxes: boxes of different classes never suppress each other.

    For every object class, the ``pre_nms_top_k`` best-scoring boxes above
    ``score_threshold`` are kept greedily in score order unless they overlap a kept box
    of that class by more than ``iou_threshold``; of all kept boxes the
    ``max_detections`` best are returned. This is the inference of the SSD reference
    (``cfsam_keras.defaults``). Both methods give the same result; the layer runs on
    the TensorFlow backend only.

    Args:
        score_threshold: float, minimum class probability of a detection.
        iou_threshold: float, IoU above which a lower-scored box of the same class is
            dropped.
        max_detections: int, detections kept per image (K).
        method: ``"combined"`` or ``"class_offset"`` (see ``NMS_METHODS``).
        clip_boxes: bool, clip returned boxes to [0, 1].
        pre_nms_top_k: int or ``None``: per class, only this many best-scoring boxes
            enter NMS (SSD's ``top_k``); ``None`` lets every box in.

    Call arguments:
        boxes: float ``[B, A, 4]`` rel_xyxy.
        scores: float ``[B, A, num_classes + 1]``, class probabilities with column 0 =
            background (ignored).

    Returns:
        Tuple ``(boxes [B, K, 4] rel_xyxy, scores [B, K], classes [B, K] int32 0-based,
        num_detections [B] int32)``; rows past ``num_detections`` are zeros.

    Example:
    >>> nms = PerClassNMS(score_threshold=0.3, max_detections=10)
    >>> boxes, scores, classes, num = nms(decoded_boxes, probabilities)
    """

    def __init__(
        self,
        score_threshold=SCORE_THRESHOLD,
        iou_threshold=NMS_IOU_THRESHOLD,
        max_detections=MAX_DETECTIONS,
        method="combined",
        clip_boxes=True,
        pre_nms_top_k=PRE_NMS_TOP_K,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.score_threshold = number(score_threshold, "score_threshold", 0.0, 1.0, high_open=True)
        self.iou_threshold = number(iou_threshold, "iou_threshold", 0.0, 1.0, low_open=True)
        self.max_detections = positive_int(max_detections, "max_detections")
        self.pre_nms_top_k = positive_int(pre_nms_top_k, "pre_nms_top_k", allow_none=True)
        if method not in NMS_METHODS:
            raise ValueError(f"Unknown NMS method {method!r}; expected one of {list(NMS_METHODS)}")
        self.method = method
        self.clip_boxes = bool(clip_boxes)

    def call(self, boxes, scores):
        if keras.backend.backend() != "tensorflow":
            raise RuntimeError(
                "PerClassNMS needs the TensorFlow backend (KERAS_BACKEND=tensorflow); the "
                f"current backend is {keras.backend.backend()!r}. The SSD300 model itself "
                "runs on every backend."
            )
        import tensorflow as tf  # noqa: PLC0415 (model code imports without TensorFlow)

        boxes = tf.cast(boxes, tf.float32)
        scores = tf.cast(scores, tf.float32)[..., 1:]  # drop the background column
        yxyx = tf.gather(boxes, [1, 0, 3, 2], axis=-1)
        # Candidates per class: scores [B, C, n] and boxes [B, C, n, 4] (the top k of
        # each class) or [B, 1, A, 4] (all A boxes, shared by the classes).
        class_scores = tf.transpose(scores, [0, 2, 1])
        k, num_boxes = self.pre_nms_top_k, boxes.shape[1]
        if k is None or (num_boxes is not None and k >= num_boxes):
            class_boxes = yxyx[:, None]
        else:
            class_scores, index = tf.math.top_k(class_scores, k=k, sorted=False)
            class_boxes = tf.gather(yxyx, index, batch_dims=1)
        if self.method == "combined":
            out = self._combined(tf, class_boxes, class_scores)
        else:
            out = self._class_offset(tf, class_boxes, class_scores)
        out_boxes, out_scores, out_classes, num = out
        out_boxes = tf.gather(out_boxes, [1, 0, 3, 2], axis=-1)  # back to xyxy
        if self.clip_boxes:
            out_boxes = tf.clip_by_value(out_boxes, 0.0, 1.0)
        return out_boxes, out_scores, tf.cast(out_classes, tf.int32), tf.cast(num, tf.int32)

    def _combined(self, tf, class_boxes, class_scores):
        # Boxes [B, n, C or 1, 4], scores [B, n, C]. A class can hold every one of the
        # max_detections slots, as in the reference.
        return tf.image.combined_non_max_suppression(
            tf.transpose(class_boxes, [0, 2, 1, 3]),
            tf.transpose(class_scores, [0, 2, 1]),
            max_output_size_per_class=self.max_detections,
            max_total_size=self.max_detections,
            iou_threshold=self.iou_threshold,
            score_threshold=self.score_threshold,
            pad_per_class=False,
            clip_boxes=False,
        )

    def _class_offset(self, tf, class_boxes, class_scores):
        k = self.max_detections

        def one_image(inputs):
            boxes, scores = inputs  # [C or 1, n, 4], [C, n]
            shape = tf.shape(scores)
            boxes = tf.reshape(tf.broadcast_to(boxes, tf.concat([shape, [4]], 0)), [-1, 4])
            classes = tf.reshape(tf.broadcast_to(tf.range(shape[0])[:, None], shape), [-1])
            scores = tf.reshape(scores, [-1])
            # Shift each class by more than the span of all boxes so classes never overlap.
            span = tf.reduce_max(boxes) - tf.reduce_min(boxes) + 1.0
            shifted = boxes + (tf.cast(classes, tf.float32) * span)[:, None]
            selected, selected_scores, valid = tf.raw_ops.NonMaxSuppressionV5(
                boxes=shifted,
                scores=scores,
                max_output_size=k,
                iou_threshold=self.iou_threshold,
                score_threshold=self.score_threshold,
                soft_nms_sigma=0.0,
                pad_to_max_output_size=True,
            )
            mask = tf.range(k) < valid
            out_boxes = tf.where(mask[:, None], tf.gather(boxes, selected), 0.0)
            out_scores = tf.where(mask, selected_scores, 0.0)
            out_classes = tf.where(mask, tf.gather(classes, selected), 0)
            return out_boxes, out_scores, out_classes, valid

        if class_boxes.shape[0] == 1:
            # One image (the TFLite export): no loop, so only builtin TFLite ops.
            return tuple(t[None] for t in one_image((class_boxes[0], class_scores[0])))
        return tf.map_fn(
            one_image,
            (class_boxes, class_scores),
            fn_output_signature=(
                tf.TensorSpec([k, 4], tf.float32),
                tf.TensorSpec([k], tf.float32),
                tf.TensorSpec([k], tf.int32),
                tf.TensorSpec([], tf.int32),
            ),
        )

    def compute_output_spec(self, boxes, scores):
        batch, k = boxes.shape[0], self.max_detections
        return (
            keras.KerasTensor((batch, k, 4), dtype="float32"),
            keras.KerasTensor((batch, k), dtype="float32"),
            keras.KerasTensor((batch, k), dtype="int32"),
            keras.KerasTensor((batch,), dtype="int32"),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "score_threshold": self.score_threshold,
                "iou_threshold": self.iou_threshold,
                "max_detections": self.max_detections,
                "method": self.method,
                "clip_boxes": self.clip_boxes,
                "pre_nms_top_k": self.pre_nms_top_k,
            }
        )
        return config
