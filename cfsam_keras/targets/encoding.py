"""SSD training targets: matched default boxes, encoded offsets, classes."""

import tensorflow as tf

from cfsam_keras.defaults import MATCH_IOU_THRESHOLD
from cfsam_keras.defaults import VARIANCES
from cfsam_keras.targets.matching import anchor_rows
from cfsam_keras.targets.matching import corners_to_center
from cfsam_keras.targets.matching import match_rows


def encode(gt_boxes, gt_classes, anchors, iou_threshold=MATCH_IOU_THRESHOLD, variances=VARIANCES):
    """SSD training targets of one image, in TensorFlow ops.

    Traceable in ``tf.data.Dataset.map`` whatever the Keras backend, for any
    number of ground truths including zero. Default boxes are matched with
    `cfsam_keras.targets.match`; degenerate ground truths (zero width or
    height) are ignored. The offsets of a positive default box ``a`` matched
    to ground truth ``g`` (both as centre, size) are
    ``((g_cx - a_cx) / (v0 a_w), (g_cy - a_cy) / (v0 a_h),
    log(g_w / a_w) / v1, log(g_h / a_h) / v1)``; background rows are all zero.

    Args:
        gt_boxes: float ``[N, 4]`` normalised ``(xmin, ymin, xmax, ymax)``.
        gt_classes: int ``[N]`` object classes, 0-based.
        anchors: float ``[A, 4]`` default boxes, normalised ``(cx, cy, w, h)``.
        iou_threshold: float, IoU at which a default box becomes positive.
        variances: ``(centre, size)`` variances of the SSD encoding.

    Returns:
        float32 ``[A, 5]``: four offsets, then the class index (0 is
        background, object class ``c`` is ``c + 1``).

    Example:
    >>> anchors = ssd300_default_boxes("voc")
    >>> targets = encode([[0.1, 0.2, 0.4, 0.6]], [3], anchors)
    >>> targets.shape
    TensorShape([8732, 5])
    """
    centre_variance, size_variance = _check_variances(variances)
    if not 0.0 < float(iou_threshold) <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1]; received {iou_threshold!r}.")
    gt_boxes = tf.convert_to_tensor(gt_boxes, tf.float32)
    gt_classes = tf.cast(tf.convert_to_tensor(gt_classes), tf.int32)
    _check_rank_and_width(gt_boxes, "gt_boxes", rank=2, width=4)
    _check_rank_and_width(gt_classes, "gt_classes", rank=1)
    _check_rank_and_width(tf.convert_to_tensor(anchors, tf.float32), "anchors", rank=2, width=4)
    corner_rows, centre_rows = anchor_rows(anchors)
    checks = [
        tf.debugging.assert_equal(
            tf.shape(gt_boxes)[0],
            tf.shape(gt_classes)[0],
            message="encode: gt_boxes and gt_classes must have the same length",
        ),
        tf.debugging.assert_non_negative(
            gt_classes, message="encode: gt_classes must be 0-based (>= 0)"
        ),
    ]
    with tf.control_dependencies(checks):
        matched = match_rows(gt_boxes, corner_rows, iou_threshold)
    positive = matched >= 0

    # One gather of (cx, cy, w, h, class + 1) per default box, then [5, A]
    # rows so every op runs along A. A spare last row (class 0) keeps the
    # gather valid when there is no ground truth and serves background boxes;
    # their offsets are zeroed below.
    table = tf.concat(
        [corners_to_center(gt_boxes), tf.cast(gt_classes, tf.float32)[:, None] + 1.0], axis=1
    )
    table = tf.concat([table, [[0.5, 0.5, 1.0, 1.0, 0.0]]], axis=0)
    index = tf.where(positive, matched, tf.shape(gt_boxes)[0])
    rows = tf.transpose(tf.gather(table, index))  # [5, A]

    offsets = tf.concat(
        [
            (rows[:2] - centre_rows[:2]) / (centre_variance * centre_rows[2:]),
            tf.math.log(rows[2:4] / centre_rows[2:]) / size_variance,
        ],
        axis=0,
    )
    offsets = tf.where(positive[None, :], offsets, 0.0)
    return tf.transpose(tf.concat([offsets, rows[4:]], axis=0))


def _check_variances(variances):
    try:
        centre, size = (float(v) for v in variances)
    except (TypeError, ValueError):
        raise ValueError(
            f"variances must be two numbers (centre, size); received {variances!r}."
        ) from None
    if centre <= 0 or size <= 0:
        raise ValueError(f"variances must be positive; received {variances!r}.")
    return centre, size


def _check_rank_and_width(tensor, name, rank, width=None):
    shape = tensor.shape
    if shape.rank is not None and shape.rank != rank:
        raise ValueError(f"{name} must have rank {rank}; received shape {shape}.")
    if width is not None and shape.rank is not None and shape[-1] not in (None, width):
        raise ValueError(f"{name} must have shape [..., {width}]; received shape {shape}.")
