"""coco_evaluate / build_coco_ground_truth on small hand-made cases."""

import json

import numpy as np
import pytest

from cfsam_keras.evaluation import COCO_METRIC_NAMES
from cfsam_keras.evaluation import build_coco_ground_truth
from cfsam_keras.evaluation import coco_evaluate
from cfsam_keras.evaluation import load_coco_ground_truth

# Two images of different sizes; non-contiguous category ids {1, 5, 9}.
IMAGES = [
    {"id": 11, "file_name": "a.jpg", "height": 200, "width": 300},
    {"id": 42, "file_name": "b.jpg", "height": 480, "width": 640},
]
CATEGORIES = [{"id": 1, "name": "cat"}, {"id": 5, "name": "dog"}, {"id": 9, "name": "bird"}]
# (image_id, category_id, xywh): all boxes "large" (area > 96^2) except the last one.
GT = [
    (11, 1, [10, 20, 150, 100]),
    (11, 9, [120, 40, 170, 150]),
    (42, 5, [300, 100, 320, 360]),
    (42, 9, [20, 20, 30, 30]),
]


@pytest.fixture
def annotation_file(tmp_path):
    annotations = [
        {
            "id": i + 1,
            "image_id": im,
            "category_id": cat,
            "bbox": box,
            "area": box[2] * box[3],
            "iscrowd": 0,
        }
        for i, (im, cat, box) in enumerate(GT)
    ]
    path = tmp_path / "instances_val.json"
    path.write_text(
        json.dumps({"images": IMAGES, "annotations": annotations, "categories": CATEGORIES})
    )
    return str(path)


def perfect_detections():
    """xyxy pixel boxes with 0-based contiguous classes (1->0, 5->1, 9->2)."""
    contiguous = {1: 0, 5: 1, 9: 2}
    out = {}
    for im, cat, (x, y, w, h) in GT:
        d = out.setdefault(im, {"image_id": im, "boxes": [], "scores": [], "classes": []})
        d["boxes"].append([x, y, x + w, y + h])
        d["scores"].append(0.9)
        d["classes"].append(contiguous[cat])
    return [out[11], out[42]]


def test_perfect_detector_maps_to_original_category_ids(annotation_file, capsys):
    metrics = coco_evaluate(perfect_detections(), annotation_file)
    assert tuple(metrics) == COCO_METRIC_NAMES
    assert metrics["AP"] == pytest.approx(1.0)
    assert metrics["AP50"] == pytest.approx(1.0)
    assert metrics["AP75"] == pytest.approx(1.0)
    assert metrics["AP_small"] == pytest.approx(1.0)
    assert metrics["AP_medium"] == -1.0  # COCOeval: no ground truth in that range
    assert metrics["AR100"] == pytest.approx(1.0)
    assert capsys.readouterr().out == ""  # pycocotools' prints are kept out


def test_verbose_prints_summary(annotation_file, capsys):
    coco_evaluate(perfect_detections(), annotation_file, verbose=True)
    assert "Average Precision" in capsys.readouterr().out


def test_wrong_category_mapping_or_coordinates_score_lower(annotation_file):
    gt = load_coco_ground_truth(annotation_file)
    # Swapping the ids of classes 0 and 1 puts every cat / dog box in the wrong category.
    swapped = coco_evaluate(perfect_detections(), gt, category_ids=[5, 1, 9])
    assert swapped["AP"] < 0.7
    # Boxes left in another coordinate frame (normalised, as inside the model) miss.
    dets = perfect_detections()
    for d, im in zip(dets, IMAGES):
        d["boxes"] = np.array(d["boxes"], float) / ([im["width"], im["height"]] * 2)
    assert coco_evaluate(dets, gt)["AP"] == 0.0


def test_false_positive_ranked_first_by_hand(annotation_file):
    # Only the two "bird" (id 9) boxes are detected, exactly, after a FP ranked
    # first: precision 0, 1/2, 2/3 at recall 0, 1/2, 1; interpolated precision
    # is 2/3 at each of COCO's 101 recall points, at every IoU threshold.
    # cat and dog get no detections: AP 0. Mean over 3 categories = (2/3) / 3.
    dets = [
        {
            "image_id": 11,
            "boxes": [[120, 40, 290, 190], [0, 150, 5, 155]],
            "scores": [0.8, 0.99],
            "classes": [2, 2],
        },
        {"image_id": 42, "boxes": [[20, 20, 50, 50]], "scores": [0.7], "classes": [2]},
    ]
    metrics = coco_evaluate(dets, annotation_file)
    assert metrics["AP50"] == pytest.approx((2 / 3) / 3)
    assert metrics["AP"] == pytest.approx((2 / 3) / 3)


def test_empty_detections_give_zeros(annotation_file):
    dets = [
        {"image_id": i, "boxes": np.zeros((0, 4)), "scores": [], "classes": []} for i in (11, 42)
    ]
    metrics = coco_evaluate(dets, annotation_file)
    assert metrics["AP"] == 0.0 and metrics["AP50"] == 0.0 and metrics["AR100"] == 0.0
    assert metrics["AP_medium"] == -1.0


def test_in_memory_ground_truth_and_difficult_boxes():
    gts = [
        {
            "image_id": 1,
            "height": 100,
            "width": 100,
            "boxes": [[10, 10, 60, 60], [70, 70, 95, 95]],
            "classes": [0, 1],
            "difficult": [False, True],
        },
    ]
    coco_gt = build_coco_ground_truth(gts, class_names=["a", "b"])
    assert coco_gt.getCatIds() == [1, 2]
    perfect = [{"image_id": 1, "boxes": [[10, 10, 60, 60]], "scores": [0.9], "classes": [0]}]
    base = coco_evaluate(perfect, coco_gt)
    # Class "b" only has a difficult box: undefined (-1) and left out of the mean.
    assert base["AP"] == pytest.approx(1.0)
    # A detection on the difficult box is ignored, not a false positive.
    on_difficult = [
        {
            "image_id": 1,
            "boxes": [[10, 10, 60, 60], [70, 70, 95, 95]],
            "scores": [0.5, 0.9],
            "classes": [0, 1],
        }
    ]
    assert coco_evaluate(on_difficult, coco_gt)["AP"] == pytest.approx(1.0)


def test_bad_arguments(annotation_file, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        coco_evaluate(perfect_detections(), str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match=r"category_ids \[7\]"):
        coco_evaluate(perfect_detections(), annotation_file, category_ids=[1, 5, 7])
    dets = perfect_detections()
    dets[0]["image_id"] = 999
    with pytest.raises(ValueError, match="not in the ground truth"):
        coco_evaluate(dets, annotation_file)
    dets = perfect_detections()
    dets[1]["classes"] = [0, 3]
    with pytest.raises(ValueError, match=r"detections\[1\]: classes must be in 0..2"):
        coco_evaluate(dets, annotation_file)
