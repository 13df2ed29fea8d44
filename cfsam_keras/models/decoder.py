"""Decoding SSD predictions into boxes and class probabilities (``keras.ops``, any backend)."""

import copy

import keras
from keras import ops
from keras.utils import bounding_boxes

from cfsam_keras.anchors import default_boxes
from cfsam_keras.defaults import VARIANCES


def decode(offsets, anchors, variances=VARIANCES):
    """Boxes from SSD offsets: the inverse of ``cfsam_keras.targets.encode``.

    ``cx = a_cx + o_0 v0 a_w``, ``cy = a_cy + o_1 v0 a_h``,
    ``w = a_w exp(o_2 v1)``, ``h = a_h exp(o_3 v1)``, via
    ``keras.utils.bounding_boxes.decode_deltas_to_boxes``. Boxes are not
    clipped to the image. Computed in float32 whatever the input dtype.

    Args:
        offsets: float ``[..., A, 4]`` encoded offsets (e.g. the first four
            columns of the model output).
        anchors: float ``[A, 4]`` default boxes, normalised ``(cx, cy, w, h)``.
        variances: ``(centre, size)`` variances of the SSD encoding.

    Returns:
        float32 ``[..., A, 4]`` normalised ``(xmin, ymin, xmax, ymax)``.

    Example:
    >>> anchors = ssd300_default_boxes("voc")
    >>> boxes = decode(model_output[..., :4], anchors)
    """
    centre, size = (float(v) for v in variances)
    offsets = ops.cast(offsets, "float32")
    anchors = ops.cast(anchors, "float32")
    return bounding_boxes.decode_deltas_to_boxes(
        anchors,
        offsets,
        anchor_format="rel_center_xywh",
        box_format="rel_xyxy",
        encoded_format="center_xywh",
        variance=[centre, centre, size, size],
        image_shape=(1, 1, 3),
    )


@keras.saving.register_keras_serializable(package="cfsam_keras")
class DecodePredictions(keras.layers.Layer):
    """Turns SSD's raw output into boxes and per-class probabilities.

    Box offsets are decoded against the model's default boxes with
    `decode`; class logits go through a softmax. Written in
    ``keras.ops``, so it runs on every backend.

    Args:
        anchor_config: dict from ``cfsam_keras.anchors.anchor_config`` (a model's is in
            ``cfsam_keras.models.model_config(model)["anchor_config"]``).
        variances: pair of floats, the centre and size variances of the box encoding.

    Call arguments:
        predictions: tensor ``[B, A, 4 + num_classes + 1]`` from an SSD300 model.

    Returns:
        Tuple ``(boxes, scores)``: ``boxes [B, A, 4]`` float32 rel_xyxy (not clipped)
        and ``scores [B, A, num_classes + 1]`` softmax probabilities in the layer's
        compute dtype, column 0 = background.

    Example:
    >>> model = SSD300(20, attention="none")
    >>> decode = DecodePredictions(model_config(model)["anchor_config"])
    >>> boxes, scores = decode(model(images))
    """

    def __init__(self, anchor_config, variances=VARIANCES, **kwargs):
        super().__init__(**kwargs)
        if len(variances) != 2 or min(variances) <= 0:
            raise ValueError(f"variances must be two positive floats; got {variances!r}")
        self.anchor_config = copy.deepcopy(anchor_config)
        self.variances = tuple(float(v) for v in variances)
        self._anchors = default_boxes(**self.anchor_config)

    def build(self, input_shape):
        num_boxes = input_shape[1]
        if num_boxes is not None and num_boxes != len(self._anchors):
            raise ValueError(
                f"predictions have {num_boxes} boxes but anchor_config gives "
                f"{len(self._anchors)} default boxes"
            )
        if input_shape[-1] is not None and input_shape[-1] < 6:
            raise ValueError(
                f"predictions must have 4 offsets + at least 2 logits; got {input_shape}"
            )
        self.built = True

    def call(self, predictions):
        anchors = ops.convert_to_tensor(self._anchors, dtype=self.compute_dtype)
        predictions = ops.cast(predictions, self.compute_dtype)
        boxes = decode(predictions[..., :4], anchors, self.variances)
        scores = ops.softmax(predictions[..., 4:], axis=-1)
        return boxes, scores

    def compute_output_spec(self, predictions):
        batch, num_boxes, channels = predictions.shape
        return (
            keras.KerasTensor((batch, num_boxes, 4), dtype="float32"),
            keras.KerasTensor((batch, num_boxes, channels - 4), dtype=self.compute_dtype),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {"anchor_config": copy.deepcopy(self.anchor_config), "variances": list(self.variances)}
        )
        return config
