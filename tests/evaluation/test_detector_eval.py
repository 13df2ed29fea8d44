"""evaluate_detector on a hand-built eval dataset and a detector that knows the answers."""

import json

import numpy as np
import pytest
from evaluation_fakes import CATEGORY_IDS  # noqa: E402  (tests/evaluation is on sys.path)
from evaluation_fakes import GT_XYXY  # noqa: E402  (tests/evaluation is on sys.path)
from evaluation_fakes import IMAGE_IDS  # noqa: E402  (tests/evaluation is on sys.path)
from evaluation_fakes import SIZES  # noqa: E402  (tests/evaluation is on sys.path)
from evaluation_fakes import eval_dataset  # noqa: E402  (tests/evaluation is on sys.path)
from evaluation_fakes import perfect_detector  # noqa: E402  (tests/evaluation is on sys.path)

from cfsam_keras.evaluation import collect_detections
from cfsam_keras.evaluation import evaluate_detector


@pytest.fixture
def annotation_file(tmp_path):
    images = [
        {"id": i, "height": h, "width": w, "file_name": f"{i}.jpg"}
        for i, (h, w) in zip(IMAGE_IDS, SIZES)
    ]
    annotations = []
    for image_id, (gt_boxes, gt_classes) in zip(IMAGE_IDS, GT_XYXY):
        for (x1, y1, x2, y2), c in zip(gt_boxes, gt_classes):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": CATEGORY_IDS[c],
                    "iscrowd": 0,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                }
            )
    categories = [{"id": c, "name": f"c{c}"} for c in CATEGORY_IDS]
    path = tmp_path / "instances.json"
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    return str(path)


def test_collect_maps_to_original_pixels():
    detections, ground_truths = collect_detections(perfect_detector, eval_dataset())
    assert [d["image_id"] for d in detections] == IMAGE_IDS
    assert (detections[1]["height"], detections[1]["width"]) == SIZES[1]
    np.testing.assert_allclose(detections[1]["boxes"], GT_XYXY[1][0], atol=1e-3)
    np.testing.assert_allclose(ground_truths[0]["boxes"], GT_XYXY[0][0], atol=1e-3)
    assert ground_truths[0]["classes"].tolist() == [0, 2]  # padding dropped


def test_perfect_detector_against_original_coco_file(annotation_file):
    results = evaluate_detector(
        perfect_detector,
        eval_dataset(),
        num_classes=3,
        coco_gt=annotation_file,
        category_ids=CATEGORY_IDS,
    )
    assert results["num_images"] == 2
    assert results["coco"]["AP"] == pytest.approx(1.0)
    assert results["coco"]["AP75"] == pytest.approx(1.0)
    assert results["voc_map"] == pytest.approx(1.0)
    assert results["voc_map_area"] == pytest.approx(1.0)
    # A wrong id mapping is caught by the score, so the mapping above is what matched.
    wrong = evaluate_detector(
        perfect_detector,
        eval_dataset(),
        num_classes=3,
        coco_gt=annotation_file,
        category_ids=[5, 1, 9],
    )
    assert wrong["coco"]["AP"] < 0.5


def test_in_memory_ground_truth_for_non_coco_sources():
    results = evaluate_detector(perfect_detector, eval_dataset(), class_names=["a", "b", "c"])
    assert results["coco"]["AP"] == pytest.approx(1.0)
    assert results["voc_per_class_ap"] == pytest.approx([1.0, 1.0, 1.0])


def test_max_images_and_bad_detector():
    results = evaluate_detector(perfect_detector, eval_dataset(), num_classes=3, max_images=1)
    assert results["num_images"] == 1
    assert np.isnan(results["voc_per_class_ap"][1])  # class 1 only in image 2
    with pytest.raises(TypeError, match="num_detections"):
        evaluate_detector(lambda images: {"boxes": images}, eval_dataset())


def test_crowd_boxes_are_ignored_by_voc_and_coco():
    # Image 0's class-2 box is a crowd region: the detection on it is neither a
    # TP nor a FP, and class 2 has nothing left to score (NaN / left out).
    results = evaluate_detector(perfect_detector, eval_dataset(crowd=[(0, 1)]), num_classes=3)
    assert np.isnan(results["voc_per_class_ap"][2])
    assert results["voc_map"] == pytest.approx(1.0)
    assert results["coco"]["AP"] == pytest.approx(1.0)


# One class-0 box per image. The detector finds both but ranks a false positive between
# them: true 0.9, false 0.8, true 0.7, i.e. (recall, precision) (1/2, 1), (1/2, 1/2), (1, 2/3).
ONE_CLASS_GT = [([[10, 20, 160, 120]], [0]), ([[300, 100, 620, 460]], [0])]
RANKED = [  # per image: (absolute xyxy box, score)
    [([10, 20, 160, 120], 0.9), ([200, 130, 290, 190], 0.8)],
    [([300, 100, 620, 460], 0.7)],
]


def ranked_detector(images):
    """Returns RANKED's class-0 detections (rel_xyxy), K = 2 rows."""
    images = np.asarray(images)
    out = {
        "boxes": np.zeros((len(images), 2, 4), np.float32),
        "scores": np.zeros((len(images), 2), np.float32),
        "classes": np.zeros((len(images), 2), np.int32),
        "num_detections": np.zeros(len(images), np.int32),
    }
    for row, image in enumerate(images):
        i = int(image[0, 0, 0])
        h, w = SIZES[i]
        for k, (box, score) in enumerate(RANKED[i]):
            out["boxes"][row, k] = np.array(box, np.float32) / [w, h, w, h]
            out["scores"][row, k] = score
        out["num_detections"][row] = len(RANKED[i])
    return out


def test_voc07_and_area_map_of_an_imperfect_detector():
    # VOC07: the best precision at recall >= t for t = 0, 0.1, ..., 1: 1 for the six t up
    # to 0.5, 2/3 for the five above.
    voc07 = (6 * 1.0 + 5 * (2 / 3)) / 11
    # VOC2010+: area under the interpolated curve, 1 up to recall 1/2, then 2/3.
    area = 0.5 * 1.0 + 0.5 * (2 / 3)
    assert abs(voc07 - area) > 0.01
    results = evaluate_detector(
        ranked_detector, eval_dataset(ground_truth=ONE_CLASS_GT), num_classes=1
    )
    assert results["voc_map"] == pytest.approx(voc07, abs=1e-9)
    assert results["voc_map_area"] == pytest.approx(area, abs=1e-9)
    assert results["voc_per_class_ap"] == pytest.approx([voc07], abs=1e-9)
    assert results["voc_per_class_ap_area"] == pytest.approx([area], abs=1e-9)
