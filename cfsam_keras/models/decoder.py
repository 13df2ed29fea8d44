"""Decoding SSD predictions into boxes and class probabilities."""

import copy

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="cfsam_keras")
class DecodePredictions(keras.layers.Layer):
    """Turns SSD's raw output into boxes and per-class probabilities.

    Box offsets are decoded against the model's default boxes with
    ``cfsam_keras.targets.decode``; class logits go through a softmax. Written in
    ``keras.ops``, so it runs on every backend.

    Args:
        anchor_config: dict from ``cfsam_keras.anchors.anchor_config`` (a model's is in
            ``cfsam_keras.models.model_config(model)["anchor_config"]``).
        variances: pair of floats, the centre and size variances of the box encoding.

    Call arguments:
        predictions: tensor ``[B, A, 4 + num_classes + 1]`` from an SSD300 model.

    Returns:
        Tuple ``(boxes, scores)``: ``boxes [B, A, 4]`` rel_xyxy (not clipped) and
        ``scores [B, A, num_classes + 1]`` softmax probabilities, column 0 = background.

    Example:
    >>> model = SSD300(20, attention="none")
    >>> decode = DecodePredictions(model_config(model)["anchor_config"])
    >>> boxes, scores = decode(model(images))
    """

    def __init__(self, anchor_config, variances=(0.1, 0.2), **kwargs):
        super().__init__(**kwargs)
        from cfsam_keras.anchors import default_boxes

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
        from cfsam_keras.targets import decode

        anchors = ops.convert_to_tensor(self._anchors, dtype=self.compute_dtype)
        predictions = ops.cast(predictions, self.compute_dtype)
        boxes = decode(predictions[..., :4], anchors, self.variances)
        scores = ops.softmax(predictions[..., 4:], axis=-1)
        return boxes, scores

    def compute_output_shape(self, input_shape):
        batch, num_boxes, channels = input_shape
        return (batch, num_boxes, 4), (batch, num_boxes, channels - 4)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"anchor_config": copy.deepcopy(self.anchor_config), "variances": list(self.variances)}
        )
        return config
