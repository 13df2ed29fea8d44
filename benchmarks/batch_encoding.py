"""SSD target encoding after batching: the design `benchmarks/pipeline.py` measures
against the library's per-example `cfsam_keras.targets.encode`.

`encode_batch` takes a padded batch of ground truths (``padded_batch`` with
zero boxes, which match nothing, as the padding) and gives the same targets,
bit for bit, as ``encode`` on each image (tested). Its work is ``[B, M, A]``
for the batch's largest box count M, so it pays for the busiest image of each
batch; the benchmark times both on the same boxes.
"""

import tensorflow as tf

from cfsam_keras.defaults import MATCH_IOU_THRESHOLD
from cfsam_keras.defaults import VARIANCES
from cfsam_keras.targets.matching import _iou_rows
from cfsam_keras.targets.matching import anchor_rows
from cfsam_keras.targets.matching import corners_to_center
from cfsam_keras.targets.matching import valid_boxes


def match_batch(gt_boxes, corner_rows, iou_threshold=MATCH_IOU_THRESHOLD):
    """`cfsam_keras.targets.match_rows` on ``[B, M, 4]`` ground truths: int32 ``[B, A]``."""
    batch, num_gt = tf.shape(gt_boxes)[0], tf.shape(gt_boxes)[1]
    num_anchors = tf.shape(corner_rows)[1]
    valid = valid_boxes(gt_boxes)  # [B, M]; zero padding is not valid
    iou = tf.where(valid[..., None], _iou_rows(gt_boxes, corner_rows), -1.0)
    gt_index = tf.range(num_gt)
    best_iou = tf.reduce_max(iou, axis=1)  # [B, A]
    best_gt = tf.reduce_min(
        tf.where(tf.equal(iou, best_iou[:, None, :]), gt_index[None, :, None], num_gt), axis=1
    )
    matched = tf.where(best_iou >= iou_threshold, best_gt, -1)
    gt_best_iou = tf.reduce_max(iou, axis=2)  # [B, M]
    gt_best_anchor = tf.reduce_min(
        tf.where(
            tf.equal(iou, gt_best_iou[..., None]), tf.range(num_anchors)[None, None, :], num_anchors
        ),
        axis=2,
    )
    forces = tf.logical_and(valid, gt_best_iou > 0.0)
    segment = tf.where(forces, gt_best_anchor, num_anchors)
    segment += tf.range(batch)[:, None] * (num_anchors + 1)  # one block of A + 1 per image
    forced = tf.math.unsorted_segment_max(
        tf.broadcast_to(gt_index[None, :], tf.shape(segment)), segment, batch * (num_anchors + 1)
    )
    forced = tf.reshape(forced, [batch, num_anchors + 1])[:, :-1]
    return tf.where(forced >= 0, forced, matched)


def encode_batch(
    gt_boxes, gt_classes, anchors, iou_threshold=MATCH_IOU_THRESHOLD, variances=VARIANCES
):
    """`cfsam_keras.targets.encode` of a padded batch: float32 ``[B, A, 5]``.

    Args:
        gt_boxes: float32 ``[B, M, 4]`` rel_xyxy, zero rows as padding.
        gt_classes: int ``[B, M]`` 0-based classes (any value in padding rows).
        anchors: ``[A, 4]`` default boxes (rel_center_xywh).
    """
    centre_variance, size_variance = (float(v) for v in variances)
    corner_rows, centre_rows = anchor_rows(anchors)
    gt_boxes = tf.convert_to_tensor(gt_boxes, tf.float32)
    matched = match_batch(gt_boxes, corner_rows, iou_threshold)
    positive = matched >= 0
    table = tf.concat(
        [corners_to_center(gt_boxes), tf.cast(gt_classes, tf.float32)[..., None] + 1.0], axis=2
    )
    spare = tf.broadcast_to([[[0.5, 0.5, 1.0, 1.0, 0.0]]], [tf.shape(table)[0], 1, 5])
    table = tf.concat([table, spare], axis=1)
    index = tf.where(positive, matched, tf.shape(gt_boxes)[1])
    rows = tf.transpose(tf.gather(table, index, batch_dims=1), [0, 2, 1])  # [B, 5, A]
    offsets = tf.concat(
        [
            (rows[:, :2] - centre_rows[None, :2]) / (centre_variance * centre_rows[None, 2:]),
            tf.math.log(rows[:, 2:4] / centre_rows[None, 2:]) / size_variance,
        ],
        axis=1,
    )
    offsets = tf.where(positive[:, None, :], offsets, 0.0)
    return tf.transpose(tf.concat([offsets, rows[:, 4:]], axis=1), [0, 2, 1])
