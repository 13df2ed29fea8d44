"""match / encode against a plain NumPy SSD matcher, and the anchors-as-rows paths."""

import numpy as np
import tensorflow as tf

from cfsam_keras.anchors import ssd300_default_boxes
from cfsam_keras.targets import encode
from cfsam_keras.targets import match
from cfsam_keras.targets.matching import _iou_rows
from cfsam_keras.targets.matching import anchor_rows

ANCHORS = ssd300_default_boxes("voc")


def numpy_match(gt, anchors, threshold=0.5):
    """The SSD reference matcher, written out loop by loop in float32."""
    centre, half = anchors[:, :2], anchors[:, 2:] / np.float32(2)
    a = np.concatenate([centre - half, centre + half], 1)
    matched = np.full(len(a), -1)
    if len(gt) == 0:
        return matched
    low = np.maximum(a[:, None, :2], gt[None, :, :2])
    high = np.minimum(a[:, None, 2:], gt[None, :, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)[:, None]
    area_g = np.prod(np.clip(gt[:, 2:] - gt[:, :2], 0, None), axis=1)[None, :]
    union = area_a + area_g - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0).astype(np.float32)
    valid = np.all(np.isfinite(gt), 1) & (gt[:, 2] > gt[:, 0]) & (gt[:, 3] > gt[:, 1])
    iou[:, ~valid] = -1
    best = iou.max(axis=1)
    matched = np.where(best >= threshold, iou.argmax(axis=1), -1)  # argmax: first (lowest) index
    for g in range(len(gt)):  # forced matches, in order: the last ground truth wins
        if valid[g] and iou[:, g].max() > 0:
            matched[iou[:, g].argmax()] = g
    return matched


def test_match_equals_numpy_reference_with_ties_duplicates_and_degenerate_boxes():
    rng = np.random.default_rng(0)
    for trial in range(40):
        n = int(rng.integers(0, 10))
        low = rng.uniform(-0.1, 0.9, (n, 2))
        size = rng.uniform(-0.05, 0.6, (n, 2))
        if trial % 2:  # on a grid: many exact IoU ties
            low, size = np.round(low * 10) / 10, np.round(size * 10) / 10
        gt = np.concatenate([low, low + size], 1).astype(np.float32)
        if n > 1 and trial % 3 == 0:
            gt[-1] = gt[0]  # duplicate: the later one wins the forced box
        if n and trial % 5 == 0:
            gt[0, 1] = np.nan
        np.testing.assert_array_equal(
            match(gt, ANCHORS).numpy(), numpy_match(gt, ANCHORS), err_msg=f"trial {trial}"
        )


def test_iou_rows_against_numpy():
    rng = np.random.default_rng(1)

    def boxes(n):  # sorted (x0, x1) and (y0, y1) pairs -> (x0, y0, x1, y1)
        pairs = np.sort(rng.uniform(0, 1, (n, 2, 2)), axis=2)
        return np.stack([pairs[:, 0, 0], pairs[:, 1, 0], pairs[:, 0, 1], pairs[:, 1, 1]], 1).astype(
            np.float32
        )

    b1, b2 = boxes(7), boxes(5)
    b2[0] = [0.3, 0.3, 0.3, 0.3]  # empty box: IoU 0 with everything, never NaN
    got = tf.transpose(_iou_rows(b2, tf.transpose(b1))).numpy()
    assert got.shape == (7, 5)
    for i in range(7):
        for j in range(5):
            iw = max(0.0, min(b1[i, 2], b2[j, 2]) - max(b1[i, 0], b2[j, 0]))
            ih = max(0.0, min(b1[i, 3], b2[j, 3]) - max(b1[i, 1], b2[j, 1]))
            union = np.prod(b1[i, 2:] - b1[i, :2]) + np.prod(b2[j, 2:] - b2[j, :2]) - iw * ih
            np.testing.assert_allclose(got[i, j], iw * ih / union if union > 0 else 0.0, atol=1e-6)


def test_anchors_unknown_at_trace_time_give_the_same_targets():
    """Static anchors are prepared in NumPy, traced ones in TensorFlow: same bits."""
    corners_static, centres_static = anchor_rows(ANCHORS)
    traced = tf.function(
        lambda a: anchor_rows(a), input_signature=[tf.TensorSpec([None, 4], tf.float32)]
    )
    corners_traced, centres_traced = traced(tf.constant(ANCHORS))
    np.testing.assert_array_equal(corners_static.numpy(), corners_traced.numpy())
    np.testing.assert_array_equal(centres_static.numpy(), centres_traced.numpy())

    rng = np.random.default_rng(2)
    low = rng.uniform(0, 0.6, (4, 2))
    boxes = np.concatenate([low, low + rng.uniform(0.01, 0.4, (4, 2))], 1).astype(np.float32)
    classes = np.array([0, 3, 3, 7], np.int32)
    gt_spec = [tf.TensorSpec([None, 4]), tf.TensorSpec([None], tf.int32)]
    # Anchors captured (prepared in NumPy) vs. an argument (prepared in TensorFlow).
    # Grappler folds constants differently in the two graphs, so offsets may
    # differ in the last bit; matching and classes must not.
    encode_static = tf.function(lambda b, c: encode(b, c, ANCHORS), input_signature=gt_spec)
    encode_traced = tf.function(
        lambda b, c, a: encode(b, c, a), input_signature=gt_spec + [tf.TensorSpec([None, 4])]
    )
    for n in (0, 1, 4):
        expected = encode_static(boxes[:n], classes[:n]).numpy()
        got = encode_traced(boxes[:n], classes[:n], ANCHORS).numpy()
        np.testing.assert_array_equal(got[:, 4], expected[:, 4])
        np.testing.assert_allclose(got[:, :4], expected[:, :4], rtol=1e-5, atol=1e-6)
        assert (expected[:, 4] > 0).sum() >= n
