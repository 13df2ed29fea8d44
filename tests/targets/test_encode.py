import numpy as np
import pytest
import tensorflow as tf

from cfsam_keras.anchors import ssd300_default_boxes
from cfsam_keras.models import decode
from cfsam_keras.targets import encode
from cfsam_keras.targets import match

ANCHORS = ssd300_default_boxes("voc")


def corners(cx, cy, w, h):
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def numpy_iou(boxes, box):
    low = np.maximum(boxes[:, :2], box[:2])
    high = np.minimum(boxes[:, 2:], box[2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=1)
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return inter / (area + np.prod(box[2:] - box[:2]) - inter)


def random_boxes(rng, n):
    low = rng.uniform(0.0, 0.7, size=(n, 2))
    size = rng.uniform(0.02, 0.3, size=(n, 2))
    return np.concatenate([low, low + size], axis=1).astype(np.float32)


def test_encode_then_decode_gives_back_every_ground_truth():
    rng = np.random.default_rng(0)
    boxes = random_boxes(rng, 12)
    classes = rng.integers(0, 20, size=12).astype(np.int32)
    targets = encode(boxes, classes, ANCHORS).numpy()
    matched = match(boxes, ANCHORS).numpy()
    assert targets.shape == (8732, 5) and targets.dtype == np.float32
    decoded = decode(targets[:, :4], ANCHORS)
    decoded = np.asarray(decoded)
    for i in range(len(boxes)):
        rows = matched == i
        assert rows.sum() >= 1, f"ground truth {i} has no default box"
        np.testing.assert_allclose(
            decoded[rows], np.broadcast_to(boxes[i], decoded[rows].shape), atol=1e-5
        )
        np.testing.assert_array_equal(targets[rows, 4], classes[i] + 1)
    background = matched < 0
    assert np.all(targets[background] == 0)


def test_offsets_follow_the_ssd_formula():
    gt = np.array([[0.2, 0.3, 0.5, 0.7]], np.float32)
    targets = encode(gt, [4], ANCHORS).numpy()
    rows = np.flatnonzero(targets[:, 4] > 0)
    assert len(rows) > 0
    g = np.array([0.35, 0.5, 0.3, 0.4])
    a = ANCHORS[rows].astype(np.float64)
    expected = np.stack(
        [
            (g[0] - a[:, 0]) / (0.1 * a[:, 2]),
            (g[1] - a[:, 1]) / (0.1 * a[:, 3]),
            np.log(g[2] / a[:, 2]) / 0.2,
            np.log(g[3] / a[:, 3]) / 0.2,
        ],
        axis=1,
    )
    np.testing.assert_allclose(targets[rows, :4], expected, rtol=1e-4, atol=1e-4)
    assert np.all(targets[rows, 4] == 5)
    # Positives: every default box with IoU >= 0.5, plus the best one.
    iou = numpy_iou(np.array([corners(*a) for a in ANCHORS]), gt[0])
    expected_rows = set(np.flatnonzero(iou >= 0.5)) | {int(np.argmax(iou))}
    assert set(rows) == expected_rows


def test_four_pixel_box_still_gets_one_positive():
    gt = np.array([[100, 100, 104, 104]], np.float32) / 300
    targets = encode(gt, [7], ANCHORS).numpy()
    positives = np.flatnonzero(targets[:, 4] > 0)
    assert len(positives) == 1
    assert targets[positives[0], 4] == 8
    decoded = np.asarray(decode(targets[:, :4], ANCHORS))[positives[0]]
    np.testing.assert_allclose(decoded, gt[0], atol=1e-5)


def test_zero_ground_truths_give_all_background():
    targets = encode(np.zeros((0, 4), np.float32), np.zeros((0,), np.int32), ANCHORS).numpy()
    assert targets.shape == (8732, 5)
    assert np.all(targets == 0)


def test_degenerate_boxes_are_dropped_without_nan():
    good = [0.1, 0.1, 0.4, 0.5]
    boxes = np.array(
        [
            [0.3, 0.3, 0.3, 0.6],  # zero width
            good,
            [0.5, 0.5, 0.8, 0.5],  # zero height
            [0.6, 0.6, 0.5, 0.9],  # negative width
            [np.nan, 0.1, 0.2, 0.2],
        ],
        np.float32,
    )
    targets = encode(boxes, [1, 2, 3, 4, 5], ANCHORS).numpy()
    assert np.all(np.isfinite(targets))
    assert set(np.unique(targets[:, 4])) == {0.0, 3.0}
    expected = encode(np.array([good], np.float32), [2], ANCHORS).numpy()
    np.testing.assert_array_equal(targets, expected)
    # Only degenerate boxes: all background.
    targets = encode(boxes[[0, 2]], [1, 3], ANCHORS).numpy()
    assert np.all(targets == 0)


def test_forced_match_wins_over_threshold_and_last_ground_truth_wins_ties():
    anchors = np.array(
        [
            [0.5, 0.5, 0.4, 0.4],
            [0.1, 0.1, 0.1, 0.1],
            [0.9, 0.9, 0.15, 0.15],
            [0.9, 0.9, 0.2, 0.2],
        ],
        np.float32,
    )
    a = [0.3, 0.3, 0.7, 0.7]  # IoU 1 with anchor 0
    b = [0.3, 0.3, 0.7, 0.65]  # IoU 0.875 with anchor 0, its only overlap
    # Both ground truths force anchor 0; the reference loop lets the last win.
    np.testing.assert_array_equal(match([a, b], anchors).numpy(), [1, -1, -1, -1])
    np.testing.assert_array_equal(match([b, a], anchors).numpy(), [1, -1, -1, -1])
    c = [0.8, 0.8, 1.0, 1.0]  # IoU 1 with anchor 3, 0.5625 with anchor 2
    d = [0.85, 0.85, 0.9, 0.9]  # IoU 0.11 with anchor 2 (its best), 0.0625 with 3
    np.testing.assert_array_equal(match([c], anchors).numpy(), [-1, -1, 0, 0])
    # A ground truth below the threshold still takes its best default box ...
    np.testing.assert_array_equal(match([d], anchors).numpy(), [-1, -1, 0, -1])
    # ... and wins it from a ground truth that passed the threshold there.
    np.testing.assert_array_equal(match([c, d], anchors).numpy(), [-1, -1, 1, 0])
    np.testing.assert_array_equal(match([d, c], anchors).numpy(), [-1, -1, 0, 1])


def test_threshold_assignment_takes_the_best_ground_truth():
    anchors = np.array(
        [[0.5, 0.5, 0.4, 0.4], [0.55, 0.5, 0.4, 0.4], [0.1, 0.1, 0.05, 0.05]], np.float32
    )
    g0 = corners(0.5, 0.5, 0.4, 0.4)  # forces anchor 0
    g1 = corners(0.1, 0.1, 0.05, 0.05)  # forces anchor 2
    # Anchor 1 overlaps g0 with IoU 0.35 / 0.45 = 0.78: a threshold match.
    np.testing.assert_array_equal(match([g0, g1], anchors).numpy(), [0, 0, 1])
    np.testing.assert_array_equal(match([g0, g1], anchors, iou_threshold=0.8).numpy(), [0, -1, 1])


def test_encode_traces_inside_tf_data_with_variable_box_counts():
    rng = np.random.default_rng(1)
    examples = [random_boxes(rng, n) for n in (0, 1, 5, 2)]

    def generator():
        for i, boxes in enumerate(examples):
            yield boxes, np.arange(len(boxes), dtype=np.int32) % 3 + i

    dataset = tf.data.Dataset.from_generator(
        generator,
        output_signature=(
            tf.TensorSpec([None, 4], tf.float32),
            tf.TensorSpec([None], tf.int32),
        ),
    )
    dataset = dataset.map(lambda b, c: encode(b, c, ANCHORS)).batch(2)
    batches = list(dataset.as_numpy_iterator())
    assert [b.shape for b in batches] == [(2, 8732, 5)] * 2
    got = np.concatenate(batches)
    for i, boxes in enumerate(examples):
        classes = np.arange(len(boxes), dtype=np.int32) % 3 + i
        np.testing.assert_allclose(got[i], encode(boxes, classes, ANCHORS).numpy(), atol=1e-6)
    assert np.all(got[0] == 0)


def test_decode_is_batched_float32_and_matches_formula():
    rng = np.random.default_rng(2)
    offsets = rng.normal(size=(2, 8732, 4)).astype(np.float16)
    boxes = np.asarray(decode(offsets, ANCHORS))
    assert boxes.shape == (2, 8732, 4) and boxes.dtype == np.float32
    o = offsets.astype(np.float64)
    a = ANCHORS.astype(np.float64)
    cx = a[:, 0] + o[..., 0] * 0.1 * a[:, 2]
    cy = a[:, 1] + o[..., 1] * 0.1 * a[:, 3]
    w = a[:, 2] * np.exp(o[..., 2] * 0.2)
    h = a[:, 3] * np.exp(o[..., 3] * 0.2)
    expected = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)
    np.testing.assert_allclose(boxes, expected, atol=1e-6)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="gt_boxes"):
        encode(np.zeros((2, 5), np.float32), [0, 1], ANCHORS)
    with pytest.raises(ValueError, match="anchors"):
        encode(np.zeros((2, 4), np.float32), [0, 1], ANCHORS[:, :2])
    with pytest.raises(ValueError, match="variances"):
        encode(np.zeros((2, 4), np.float32), [0, 1], ANCHORS, variances=(0.1,))
    with pytest.raises(tf.errors.InvalidArgumentError, match="same length"):
        encode(np.full((2, 4), 0.5, np.float32), [0, 1, 2], ANCHORS)
    with pytest.raises(tf.errors.InvalidArgumentError, match="0-based"):
        encode(np.array([[0.1, 0.1, 0.5, 0.5]], np.float32), [-1], ANCHORS)
