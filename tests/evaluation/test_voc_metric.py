"""voc_map against cases worked out by hand with the devkit's rules."""

import numpy as np
import pytest

from cfsam_keras.evaluation import voc_ap
from cfsam_keras.evaluation import voc_map

A = [10, 10, 50, 50]
B = [60, 60, 90, 90]
C = [10, 60, 40, 90]
FAR = [100, 0, 120, 20]  # overlaps none of A, B, C


def det(boxes, scores, classes=None):
    classes = [0] * len(boxes) if classes is None else classes
    return {"boxes": np.array(boxes, float).reshape(-1, 4), "scores": scores, "classes": classes}


def gt(boxes, classes=None, difficult=None):
    out = {"boxes": np.array(boxes, float).reshape(-1, 4)}
    out["classes"] = [0] * len(boxes) if classes is None else classes
    if difficult is not None:
        out["difficult"] = difficult
    return out


@pytest.mark.parametrize("use_07", [True, False])
def test_perfect_detector_scores_one(use_07):
    gts = [gt([A, B], [0, 1]), gt([C], [2])]
    dets = [det([B, A], [0.6, 0.9], [1, 0]), det([C], [0.8], [2])]
    result = voc_map(dets, gts, use_07_metric=use_07)
    assert result["mAP"] == pytest.approx(1.0)
    assert result["per_class_ap"] == pytest.approx([1.0, 1.0, 1.0])


def test_false_positive_ranked_first_11_point_by_hand():
    # One class, 2 images, 3 ground truth boxes (A, B in image 0; C in image 1).
    # Ranked detections: FP (0.95), TP on A (0.9), TP on B (0.8), TP on C (0.7).
    # cum TP = 0,1,2,3; cum FP = 1,1,1,1 -> recall 0, 1/3, 2/3, 1;
    # precision 0, 1/2, 2/3, 3/4. At every recall threshold t in 0, 0.1, ..., 1
    # the best precision at recall >= t is 3/4 (recall 1 is reached at precision
    # 3/4), so the 11-point AP = 11 * (3/4) / 11 = 0.75.
    gts = [gt([A, B]), gt([C])]
    dets = [det([FAR, A, B], [0.95, 0.9, 0.8]), det([C], [0.7])]
    assert voc_map(dets, gts)["mAP"] == pytest.approx(0.75)
    # Ranked last instead, it costs nothing: precision 1 up to recall 1.
    dets_last = [det([FAR, A, B], [0.1, 0.9, 0.8]), det([C], [0.7])]
    assert voc_map(dets_last, gts)["mAP"] == pytest.approx(1.0)


def test_07_and_area_metric_differ_by_hand():
    # 3 ground truths (A, B, C); detections TP A (0.9), FP (0.8), TP B (0.7); C missed.
    # recall 1/3, 1/3, 2/3; precision 1, 1/2, 2/3.
    # 11-point: t = 0, .1, .2, .3 -> max precision 1; t = .4, .5, .6 -> 2/3;
    #   t = .7 .. 1 (4 points) -> 0.  AP07 = (4 * 1 + 3 * 2/3) / 11 = 6/11.
    # Area: envelope 1 on recall (0, 1/3], 2/3 on (1/3, 2/3], 0 after:
    #   AP = 1/3 * 1 + 1/3 * 2/3 = 5/9.
    gts = [gt([A, B]), gt([C])]
    dets = [det([A, FAR, B], [0.9, 0.8, 0.7]), det([], [])]
    assert voc_map(dets, gts, use_07_metric=True)["mAP"] == pytest.approx(6 / 11)
    assert voc_map(dets, gts, use_07_metric=False)["mAP"] == pytest.approx(5 / 9)


def test_duplicate_detection_is_false_positive():
    # GT A, B. Ranked: TP A (0.9), duplicate of A (0.8) -> FP, TP B (0.7).
    # recall .5, .5, 1; precision 1, 1/2, 2/3.
    # 11-point: t = 0 .. .5 (6 points) -> 1; t = .6 .. 1 (5 points) -> 2/3.
    # AP07 = (6 + 5 * 2/3) / 11 = 28/33.
    gts = [gt([A, B])]
    dets = [det([A, [11, 11, 50, 50], B], [0.9, 0.8, 0.7])]
    assert voc_map(dets, gts)["mAP"] == pytest.approx(28 / 33)


@pytest.mark.parametrize("use_07", [True, False])
def test_difficult_objects_neither_help_nor_hurt(use_07):
    gts = [gt([A, B]), gt([C])]
    dets = [det([A, FAR], [0.9, 0.8]), det([C], [0.7])]
    base = voc_map(dets, gts, use_07_metric=use_07)["mAP"]
    assert 0 < base < 1

    # A missed difficult box does not lower recall.
    gts_hard = [gt([A, B, C], difficult=[0, 0, 1]), gt([C])]
    assert voc_map(dets, gts_hard, use_07_metric=use_07)["mAP"] == pytest.approx(base)

    # Detections on difficult boxes (even ranked first, even duplicated)
    # are neither true nor false positives.
    dets_hard = [det([C, C, A, FAR], [0.99, 0.98, 0.9, 0.8]), det([C], [0.7])]
    assert voc_map(dets_hard, gts_hard, use_07_metric=use_07)["mAP"] == pytest.approx(base)

    # The same box not marked difficult does change the score.
    gts_easy = [gt([A, B, C]), gt([C])]
    assert voc_map(dets, gts_easy, use_07_metric=use_07)["mAP"] != pytest.approx(base)


def test_devkit_pixel_convention_and_strict_threshold():
    box = [0, 0, 3, 3]  # 4 x 4 pixels in the devkit's inclusive convention
    # [0, 0, 3, 1.5]: devkit IoU = 4 * 2.5 / 16 = 0.625 (continuous IoU would be 0.5).
    assert voc_map([det([[0, 0, 3, 1.5]], [0.9])], [gt([box])])["mAP"] == pytest.approx(1.0)
    # [0, 0, 3, 1]: devkit IoU = 4 * 2 / 16 = 0.5 exactly, not > 0.5 -> FP.
    assert voc_map([det([[0, 0, 3, 1]], [0.9])], [gt([box])])["mAP"] == 0.0


def test_class_without_ground_truth_is_nan_and_left_out_of_mean():
    gts = [gt([A, B], [0, 2])]
    dets = [det([A, B, C], [0.9, 0.8, 0.7], [0, 2, 1])]
    result = voc_map(dets, gts, num_classes=4)
    assert result["per_class_ap"][0] == pytest.approx(1.0)
    assert np.isnan(result["per_class_ap"][1]) and np.isnan(result["per_class_ap"][3])
    assert result["mAP"] == pytest.approx(1.0)


def test_voc_ap_curves():
    assert voc_ap(np.array([1.0]), np.array([1.0]), True) == pytest.approx(1.0)
    assert voc_ap(np.array([]), np.array([]), True) == 0.0
    assert voc_ap(np.array([0.5]), np.array([1.0]), False) == pytest.approx(0.5)
    # 11-point: recall .5 reached -> t = 0..0.5 give 1 (6 points) = 6/11.
    assert voc_ap(np.array([0.5]), np.array([1.0]), True) == pytest.approx(6 / 11)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="detections has 1 images but ground_truths has 2"):
        voc_map([det([A], [0.9])], [gt([A]), gt([B])])
    with pytest.raises(ValueError, match=r"detections\[0\]: 'scores' has 2 entries"):
        voc_map([det([A], [0.9, 0.8])], [gt([A])])
    with pytest.raises(ValueError, match=r"ground_truths\[0\]: classes must be in 0..1"):
        voc_map([det([A], [0.9])], [gt([A], [3])], num_classes=2)
    with pytest.raises(ValueError, match=r"ground_truths\[0\]: boxes must have shape"):
        voc_map([det([A], [0.9])], [{"boxes": np.zeros((1, 3)), "classes": [0]}])


def test_to_devkit_boxes_makes_devkit_iou_the_continuous_iou():
    from cfsam_keras.evaluation import to_devkit_boxes

    # VOC XML box 1..4 (4 pixels) is (0, 4) in pixel edges; back to the XML values.
    np.testing.assert_array_equal(to_devkit_boxes([[0, 0, 4, 4]]), [[1, 1, 4, 4]])
    truth = [gt(to_devkit_boxes([[0, 0, 4, 4]]))]
    # Continuous IoU of (0,0,4,2) with (0,0,4,4) is 0.5 exactly: not a match.
    assert voc_map([det(to_devkit_boxes([[0, 0, 4, 2]]), [0.9])], truth)["mAP"] == 0.0
    # Continuous IoU of (0,0,4,2.5) is 0.625: a match.
    assert voc_map([det(to_devkit_boxes([[0, 0, 4, 2.5]]), [0.9])], truth)["mAP"] == pytest.approx(
        1.0
    )
