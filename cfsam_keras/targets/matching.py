"""Matching ground-truth boxes to default boxes, in TensorFlow ops.

TensorFlow rather than ``keras.ops`` on purpose: matching runs inside
``tf.data.Dataset.map``, which traces TensorFlow graphs whatever the Keras
backend is.
"""

import numpy as np
import tensorflow as tf

from cfsam_keras.defaults import MATCH_IOU_THRESHOLD


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


def _iou_rows(boxes, columns):
    """IoU ``[..., N, M]`` of ``boxes [..., N, 4]`` with ``columns [4, M]`` (both corners).

    The second set comes as four rows so that every broadcast runs along the
    long, contiguous axis: ``[N, 1]`` against ``[1, M]`` is several times
    faster in TensorFlow's CPU kernels than ``[N, 1, 2]`` against ``[1, M, 2]``.
    """
    x0, y0, x1, y1 = (boxes[..., i : i + 1] for i in range(4))
    cx0, cy0, cx1, cy1 = (columns[i] for i in range(4))
    inter_w = tf.maximum(tf.minimum(x1, cx1) - tf.maximum(x0, cx0), 0.0)
    inter_h = tf.maximum(tf.minimum(y1, cy1) - tf.maximum(y0, cy0), 0.0)
    intersection = inter_w * inter_h
    area = tf.maximum(x1 - x0, 0.0) * tf.maximum(y1 - y0, 0.0)
    column_area = tf.maximum(cx1 - cx0, 0.0) * tf.maximum(cy1 - cy0, 0.0)
    return tf.math.divide_no_nan(intersection, column_area + area - intersection)


def match(gt_boxes, anchors, iou_threshold=MATCH_IOU_THRESHOLD):
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
    return match_rows(gt_boxes, anchor_rows(anchors)[0], iou_threshold)


def anchor_rows(anchors):
    """Default boxes as rows: ``(corners [4, A], centre-size [4, A])``.

    Computed once in NumPy when ``anchors`` are known at trace time (a NumPy
    array or eager tensor, as in the pipelines), so a ``tf.data`` map does not
    redo it for every example; float32 arithmetic gives the same values as
    the TensorFlow ops.
    """
    if isinstance(anchors, tf.Tensor):
        static = tf.get_static_value(anchors)
    elif isinstance(anchors, tf.Variable):
        static = None
    else:
        static = np.asarray(anchors)
    if static is not None:
        static = np.asarray(static, np.float32)
    if static is None or static.ndim != 2 or static.shape[-1] != 4:
        anchors = tf.convert_to_tensor(anchors, tf.float32)
        return tf.transpose(center_to_corners(anchors)), tf.transpose(anchors)
    centre, size = static[:, :2], static[:, 2:]
    corners = np.concatenate(
        [centre - size / np.float32(2.0), centre + size / np.float32(2.0)], axis=1
    )
    return tf.constant(corners.T), tf.constant(np.ascontiguousarray(static.T))


def match_rows(gt_boxes, corner_rows, iou_threshold=MATCH_IOU_THRESHOLD):
    """`match` with the default boxes given as corner rows ``[4, A]``."""
    num_gt = tf.shape(gt_boxes)[0]
    num_anchors = tf.shape(corner_rows)[1]

    valid = valid_boxes(gt_boxes)
    # [N, A]: ground truths on rows, so reductions and broadcasts run along A.
    iou = _iou_rows(gt_boxes, corner_rows)
    iou = tf.where(valid[:, None], iou, -1.0)

    gt_index = tf.range(num_gt)
    anchor_index = tf.range(num_anchors)

    # Best ground truth of each default box (lowest index on ties).
    best_iou = tf.reduce_max(iou, axis=0)  # -inf when N == 0
    best_gt = tf.reduce_min(
        tf.where(tf.equal(iou, best_iou[None, :]), gt_index[:, None], num_gt), axis=0
    )
    matched = tf.where(best_iou >= iou_threshold, best_gt, -1)

    # Best default box of each ground truth (lowest index on ties).
    gt_best_iou = tf.reduce_max(iou, axis=1)  # [N]
    gt_best_anchor = tf.reduce_min(
        tf.where(tf.equal(iou, gt_best_iou[:, None]), anchor_index[None, :], num_anchors),
        axis=1,
    )
    forces = tf.logical_and(valid, gt_best_iou > 0.0)
    # Ground truths that force nothing go to a spare segment, dropped below.
    segment = tf.where(forces, gt_best_anchor, num_anchors)
    forced = tf.math.unsorted_segment_max(gt_index, segment, num_anchors + 1)[:-1]
    # Empty segments hold the lowest int32, so forced >= 0 marks a forced box.
    return tf.where(forced >= 0, forced, matched)
