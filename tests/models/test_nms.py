import numpy as np
import pytest

from cfsam_keras.models import NMS_METHODS
from cfsam_keras.models import PerClassNMS


def _scores(rows, num_classes):
    """Probabilities [1, A, num_classes + 1] with row i scoring `p` for object class c."""
    scores = np.zeros((1, len(rows), num_classes + 1), "float32")
    for i, (c, p) in enumerate(rows):
        scores[0, i, c + 1] = p
        scores[0, i, 0] = 1.0 - p
    return scores


# Two boxes overlapping with IoU 0.68, and one far away.
BOXES = np.array(
    [[[0.10, 0.10, 0.50, 0.50], [0.12, 0.12, 0.52, 0.55], [0.60, 0.60, 0.90, 0.80]]], "float32"
)


@pytest.mark.parametrize("method", NMS_METHODS)
def test_overlapping_boxes_of_different_classes_both_survive(method):
    nms = PerClassNMS(score_threshold=0.1, iou_threshold=0.45, max_detections=5, method=method)
    boxes, scores, classes, num = nms(BOXES, _scores([(0, 0.9), (1, 0.8), (2, 0.7)], 3))
    assert int(num[0]) == 3
    np.testing.assert_array_equal(np.asarray(classes)[0, :3], [0, 1, 2])
    np.testing.assert_allclose(np.asarray(scores)[0, :3], [0.9, 0.8, 0.7], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(boxes)[0, :3], BOXES[0], atol=1e-6)


@pytest.mark.parametrize("method", NMS_METHODS)
def test_overlapping_boxes_of_one_class_keep_only_the_best(method):
    nms = PerClassNMS(score_threshold=0.1, iou_threshold=0.45, max_detections=5, method=method)
    boxes, scores, classes, num = nms(BOXES, _scores([(1, 0.8), (1, 0.9), (1, 0.7)], 3))
    assert int(num[0]) == 2
    np.testing.assert_array_equal(np.asarray(classes)[0, :2], [1, 1])
    np.testing.assert_allclose(np.asarray(boxes)[0, :2], BOXES[0, 1:], atol=1e-6)
    # Rows past num_detections are zero padding.
    assert not np.asarray(boxes)[0, 2:].any()
    assert not np.asarray(scores)[0, 2:].any()
    assert not np.asarray(classes)[0, 2:].any()


@pytest.mark.parametrize("method", NMS_METHODS)
def test_background_and_low_scores_are_not_detections(method):
    nms = PerClassNMS(score_threshold=0.5, iou_threshold=0.45, max_detections=4, method=method)
    # Row 0 is mostly background (0.7), row 1 is below the threshold.
    boxes, scores, classes, num = nms(BOXES, _scores([(0, 0.3), (1, 0.4), (2, 0.6)], 3))
    assert int(num[0]) == 1
    assert int(classes[0, 0]) == 2
    assert np.asarray(boxes).shape == (1, 4, 4)
    assert np.asarray(classes).dtype == np.int32 and np.asarray(num).dtype == np.int32


def test_methods_agree_on_random_boxes():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 0.8, (2, 300, 2))
    wh = rng.uniform(0.05, 0.3, (2, 300, 2))
    boxes = np.concatenate([xy, xy + wh], -1).astype("float32")
    logits = rng.normal(size=(2, 300, 5)) * 3
    scores = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype("float32")
    results = [
        PerClassNMS(score_threshold=0.05, max_detections=50, method=m)(boxes, scores)
        for m in NMS_METHODS
    ]
    (b0, s0, c0, n0), (b1, s1, c1, n1) = [[np.asarray(t) for t in r] for r in results]
    np.testing.assert_array_equal(n0, n1)
    assert n0.min() > 10
    np.testing.assert_allclose(s0, s1, atol=1e-6)
    np.testing.assert_array_equal(c0, c1)
    np.testing.assert_allclose(b0, b1, atol=1e-6)


def _reference_nms(boxes, scores, score_threshold, iou_threshold, max_detections, top_k):
    """SSD's per-class NMS in NumPy, one image: boxes [A, 4] xyxy, scores [A, C + 1]."""
    kept = []
    for c in range(1, scores.shape[1]):
        order = np.argsort(-scores[:, c], kind="stable")[:top_k]
        order = [i for i in order if scores[i, c] > score_threshold]
        chosen = []
        for i in order:
            lo = np.maximum(boxes[i, :2], boxes[chosen, :2])
            hi = np.minimum(boxes[i, 2:], boxes[chosen, 2:])
            inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
            areas = [np.prod(b[..., 2:] - b[..., :2], axis=-1) for b in (boxes[i], boxes[chosen])]
            iou = inter / (areas[0] + areas[1] - inter)
            if not chosen or iou.max() <= iou_threshold:
                chosen.append(i)
        kept += [(scores[i, c], c - 1, i) for i in chosen]
    kept.sort(key=lambda t: -t[0])
    return kept[:max_detections]


@pytest.mark.parametrize("method", NMS_METHODS)
@pytest.mark.parametrize("top_k", [None, 7])
def test_matches_reference_with_pre_nms_top_k(method, top_k):
    """Per class only the top_k best boxes enter NMS (SSD's top_k: 400), then the K best."""
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 0.7, (2, 60, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0.1, 0.3, (2, 60, 2))], -1).astype("float32")
    logits = rng.normal(size=(2, 60, 4)) * 2
    scores = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype("float32")
    nms = PerClassNMS(score_threshold=0.1, max_detections=12, method=method, pre_nms_top_k=top_k)
    out_boxes, out_scores, out_classes, num = [np.asarray(t) for t in nms(boxes, scores)]
    for i in range(2):
        expected = _reference_nms(boxes[i], scores[i], 0.1, 0.45, 12, top_k or 60)
        assert int(num[i]) == len(expected) == 12
        np.testing.assert_allclose(out_scores[i], [e[0] for e in expected], rtol=1e-6)
        np.testing.assert_array_equal(out_classes[i], [e[1] for e in expected])
        np.testing.assert_allclose(out_boxes[i], boxes[i][[e[2] for e in expected]], atol=1e-6)
    if top_k:  # the cut changes the result: more boxes survive without it
        unlimited = PerClassNMS(
            score_threshold=0.1, max_detections=200, method=method, pre_nms_top_k=None
        )
        limited = PerClassNMS(
            score_threshold=0.1, max_detections=200, method=method, pre_nms_top_k=top_k
        )
        assert int(np.asarray(limited(boxes, scores)[3])[0]) < int(
            np.asarray(unlimited(boxes, scores)[3])[0]
        )
        assert int(np.asarray(limited(boxes, scores)[3])[0]) <= 3 * top_k


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "soft"}, "Unknown NMS method"),
        ({"max_detections": 0}, "max_detections"),
        ({"iou_threshold": 0.0}, "iou_threshold"),
        ({"score_threshold": 1.5}, "score_threshold"),
        ({"pre_nms_top_k": 0}, "pre_nms_top_k"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PerClassNMS(**kwargs)


def test_config_round_trip():
    nms = PerClassNMS(
        score_threshold=0.2,
        iou_threshold=0.5,
        max_detections=7,
        method="class_offset",
        pre_nms_top_k=50,
    )
    clone = PerClassNMS.from_config(nms.get_config())
    assert clone.get_config() == nms.get_config()
