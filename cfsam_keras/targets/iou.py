"""Pairwise IoU in the library's box convention, in ``keras.ops``."""

from keras.utils import bounding_boxes


def pairwise_iou(boxes1, boxes2):
    """IoU of every box of ``boxes1`` with every box of ``boxes2``.

    A thin wrapper over ``keras.utils.bounding_boxes.compute_iou`` for
    normalised ``(xmin, ymin, xmax, ymax)`` boxes (it needs an image shape
    even for relative boxes). Runs on every Keras backend; inside
    ``tf.data`` use `cfsam_keras.targets.matching.pairwise_iou_tf` instead.

    Args:
        boxes1: float ``[N, 4]`` or ``[B, N, 4]``, ``rel_xyxy``.
        boxes2: float ``[M, 4]`` or ``[B, M, 4]``, ``rel_xyxy``.

    Returns:
        ``[N, M]`` (or ``[B, N, M]``) IoU.

    Example:
    >>> pairwise_iou([[0.0, 0.0, 0.5, 0.5]], [[0.0, 0.0, 0.5, 1.0]])  # [[0.5]]
    """
    return bounding_boxes.compute_iou(
        boxes1, boxes2, bounding_box_format="rel_xyxy", image_shape=(1, 1, 3)
    )
