"""Decoding SSD offsets back to boxes, in ``keras.ops`` (any backend)."""

from keras import ops
from keras.utils import bounding_boxes


def decode(offsets, anchors, variances=(0.1, 0.2)):
    """Boxes from SSD offsets: the inverse of `cfsam_keras.targets.encode`.

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
