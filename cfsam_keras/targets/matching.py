"""Matching ground-truth boxes to default boxes, in TensorFlow ops.

TensorFlow rather than ``keras.ops`` on purpose: matching runs inside
``tf.data.Dataset.map``, which traces TensorFlow graphs whatever the Keras
backend is.
"""

import tensorflow as tf


def center_to_corners(boxes):
    """``(cx, cy, w, h)`` -> ``(xmin, ymin, xmax, ymax)``, TensorFlow ops."""
    centre, size = boxes[..., :2], boxes[..., 2:]
    return tf.concat([centre - size / 2.0, centre + size / 2.0], axis=-1)


def corners_to_center(boxes):
    """``(xmin, ymin, xmax, ymax)`` -> ``(cx, cy, w, h)``, TensorFlow ops."""
    low, high = boxes[..., :2], boxes[..., 2:]
    return tf.concat([(low + high) / 2.0, high - low], axis=-1)


def valid_boxes(boxes):
    """bool ``[N]``: finite boxes with positive width and height."""
    finite = tf.reduce_all(tf.math.is_finite(boxes), axis=-1)
    positive = tf.logical_and(boxes[..., 2] > boxes[..., 0], boxes[..., 3] > boxes[..., 1])
    return tf.logical_and(finite, positive)


def pairwise_iou_tf(boxes1, boxes2):
    """IoU of every box of ``boxes1 [N, 4]`` with every box of ``boxes2 [M, 4]``.

    Both in corner format. Returns ``[N, M]``; 0 (never NaN) where the union
    is empty.
    """
    b1 = boxes1[:, None, :]
    b2 = boxes2[None, :, :]
    low = tf.maximum(b1[..., :2], b2[..., :2])
    high = tf.minimum(b1[..., 2:], b2[..., 2:])
    inter_wh = tf.maximum(high - low, 0.0)
    intersection = inter_wh[..., 0] * inter_wh[..., 1]
    area1 = tf.maximum(b1[..., 2] - b1[..., 0], 0.0) * tf.maximum(b1[..., 3] - b1[..., 1], 0.0)
    area2 = tf.maximum(b2[..., 2] - b2[..., 0], 0.0) * tf.maximum(b2[..., 3] - b2[..., 1], 0.0)
    union = area1 + area2 - intersection
    return tf.math.divide_no_nan(intersection, union)


def match(gt_boxes, anchors, iou_threshold=0.5):
    """Index of the ground truth each default box is assigned to (SSD matching).

    As the SSD reference code: every default box takes the ground truth it
    overlaps most if that IoU is at least ``iou_threshold``; then every ground
    truth takes its best default box whatever the IoU, and this forced
    assignment wins over the threshold one. Ties are broken deterministically:
    the lowest index wins an IoU tie, and when several ground truths force the
    same default box the last one wins (the reference code's loop order).
    Degenerate ground truths (non-finite, zero width or height) match nothing,
    nor does a ground truth that overlaps no default box at all (only possible
    for a box outside the image; the reference code would force it onto
    default box 0).

    Args:
        gt_boxes: float ``[N, 4]`` ground truth, normalised
            ``(xmin, ymin, xmax, ymax)``; N may be 0.
        anchors: float ``[A, 4]`` default boxes, normalised ``(cx, cy, w, h)``.
        iou_threshold: float, the IoU at which a default box becomes positive.

    Returns:
        int32 ``[A]``: the index into ``gt_boxes`` of each default box's
        ground truth, -1 for background.

    Example:
    >>> anchors = ssd300_default_boxes("voc")
    >>> match(tf.constant([[0.1, 0.1, 0.5, 0.6]]), anchors).shape
    TensorShape([8732])
    """
    gt_boxes = tf.convert_to_tensor(gt_boxes, tf.float32)
    anchors = tf.convert_to_tensor(anchors, tf.float32)
    num_gt = tf.shape(gt_boxes)[0]
    num_anchors = tf.shape(anchors)[0]

    valid = valid_boxes(gt_boxes)
    iou = pairwise_iou_tf(center_to_corners(anchors), gt_boxes)  # [A, N]
    iou = tf.where(valid[None, :], iou, -1.0)

    gt_index = tf.range(num_gt)
    anchor_index = tf.range(num_anchors)

    # Best ground truth of each default box (lowest index on ties).
    best_iou = tf.reduce_max(iou, axis=1)  # -inf when N == 0
    best_gt = tf.reduce_min(
        tf.where(tf.equal(iou, best_iou[:, None]), gt_index[None, :], num_gt), axis=1
    )
    matched = tf.where(best_iou >= iou_threshold, best_gt, -1)

    # Best default box of each ground truth (lowest index on ties).
    gt_best_iou = tf.reduce_max(iou, axis=0)  # [N]
    gt_best_anchor = tf.reduce_min(
        tf.where(tf.equal(iou, gt_best_iou[None, :]), anchor_index[:, None], num_anchors),
        axis=0,
    )
    forces = tf.logical_and(valid, gt_best_iou > 0.0)
    # Ground truths that force nothing go to a spare segment, dropped below.
    segment = tf.where(forces, gt_best_anchor, num_anchors)
    forced = tf.math.unsorted_segment_max(gt_index, segment, num_anchors + 1)[:-1]
    # Empty segments hold the lowest int32, so forced >= 0 marks a forced box.
    return tf.where(forced >= 0, forced, matched)
