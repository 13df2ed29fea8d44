import itertools
import math

import numpy as np
import pytest

from cfsam_keras.anchors import PRESETS
from cfsam_keras.anchors import anchor_config
from cfsam_keras.anchors import boxes_per_location
from cfsam_keras.anchors import default_boxes
from cfsam_keras.anchors import ssd300_default_boxes
from cfsam_keras.anchors import ssd300_feature_sizes

FEATURES = [38, 19, 10, 5, 3, 1]
STEPS = [8, 16, 32, 64, 100, 300]
RATIOS = [[2], [2, 3], [2, 3], [2, 3], [2], [2]]


def reference_prior_box(min_sizes, max_sizes, image_size=300, clip=True):
    """A line-by-line transcription of ssd.pytorch's PriorBox.forward."""
    mean = []
    for k, f in enumerate(FEATURES):
        for i, j in itertools.product(range(f), repeat=2):
            f_k = image_size / STEPS[k]
            cx = (j + 0.5) / f_k
            cy = (i + 0.5) / f_k
            s_k = min_sizes[k] / image_size
            mean += [cx, cy, s_k, s_k]
            s_k_prime = math.sqrt(s_k * (max_sizes[k] / image_size))
            mean += [cx, cy, s_k_prime, s_k_prime]
            for ar in RATIOS[k]:
                mean += [cx, cy, s_k * math.sqrt(ar), s_k / math.sqrt(ar)]
                mean += [cx, cy, s_k / math.sqrt(ar), s_k * math.sqrt(ar)]
    out = np.array(mean, dtype=np.float32).reshape(-1, 4)
    return np.clip(out, 0, 1) if clip else out


@pytest.mark.parametrize("preset", ["voc", "coco"])
def test_ssd300_matches_reference_code(preset):
    boxes = ssd300_default_boxes(preset)
    assert boxes.shape == (8732, 4)
    assert boxes.dtype == np.float32
    expected = reference_prior_box(PRESETS[preset]["min_sizes"], PRESETS[preset]["max_sizes"])
    np.testing.assert_allclose(boxes, expected, atol=1e-7)


def test_voc_spot_values_by_hand():
    boxes = ssd300_default_boxes("voc")
    # Level 1, row 0, column 0, the square of size 30 px.
    np.testing.assert_allclose(boxes[0], [4 / 300, 4 / 300, 0.1, 0.1], atol=1e-7)
    # Level 1, row 0, column 0, kinds 2..4: sqrt(30*60), ratio 2, ratio 1/2.
    np.testing.assert_allclose(boxes[1, 2:], [math.sqrt(1800) / 300] * 2, atol=1e-7)
    np.testing.assert_allclose(boxes[2, 2:], [0.1 * math.sqrt(2), 0.1 / math.sqrt(2)], atol=1e-7)
    np.testing.assert_allclose(boxes[3, 2:], [0.1 / math.sqrt(2), 0.1 * math.sqrt(2)], atol=1e-7)
    # Column before row: the next location is column 1 of row 0.
    np.testing.assert_allclose(boxes[4, :2], [12 / 300, 4 / 300], atol=1e-7)
    # Row 1 starts after 38 locations of 4 boxes.
    np.testing.assert_allclose(boxes[38 * 4, :2], [4 / 300, 12 / 300], atol=1e-7)
    # Level 2 starts at 38*38*4 = 5776: centre 8 px, square 60 px, 6 kinds.
    np.testing.assert_allclose(boxes[5776], [8 / 300, 8 / 300, 0.2, 0.2], atol=1e-7)
    np.testing.assert_allclose(
        boxes[5776 + 4, 2:], [0.2 * math.sqrt(3), 0.2 / math.sqrt(3)], atol=1e-7
    )
    np.testing.assert_allclose(boxes[5776 + 6, :2], [24 / 300, 8 / 300], atol=1e-7)
    # Last box of level 6 (1x1, step 300): ratio 1/2 of s=264, h clipped to 1.
    np.testing.assert_allclose(
        boxes[-1], [0.5, 0.5, 0.88 / math.sqrt(2), min(0.88 * math.sqrt(2), 1.0)], atol=1e-6
    )
    # Level 6 (the last 4 rows): squares of 264 px and sqrt(264 * 315) px, then
    # ratio 2 with its width clipped to 1.
    np.testing.assert_allclose(boxes[-4], [0.5, 0.5, 0.88, 0.88], atol=1e-6)
    np.testing.assert_allclose(boxes[-3, 2:], [math.sqrt(264 * 315) / 300] * 2, atol=1e-6)
    np.testing.assert_allclose(boxes[-2, 2:], [1.0, 0.88 / math.sqrt(2)], atol=1e-6)


def test_coco_spot_values_by_hand():
    boxes = ssd300_default_boxes("coco")
    np.testing.assert_allclose(boxes[0], [4 / 300, 4 / 300, 0.07, 0.07], atol=1e-7)
    np.testing.assert_allclose(boxes[1, 2:], [math.sqrt(21 * 45) / 300] * 2, atol=1e-7)
    np.testing.assert_allclose(
        boxes[-1], [0.5, 0.5, 0.87 / math.sqrt(2), min(0.87 * math.sqrt(2), 1.0)], atol=1e-6
    )
    np.testing.assert_allclose(boxes[-3, 2:], [math.sqrt(261 * 315) / 300] * 2, atol=1e-6)


def test_level_sizes_and_boxes_per_location():
    assert boxes_per_location(RATIOS) == [4, 6, 6, 6, 4, 4]
    counts = [f * f * k for f, k in zip(FEATURES, boxes_per_location(RATIOS))]
    assert counts == [5776, 2166, 600, 150, 36, 4]
    assert sum(counts) == 8732


def test_clip_false_keeps_boxes_larger_than_the_image():
    config = anchor_config("voc")
    config["clip"] = False
    boxes = default_boxes(**config)
    assert boxes[-1, 3] == pytest.approx(0.88 * math.sqrt(2), abs=1e-6)
    np.testing.assert_allclose(
        boxes,
        reference_prior_box(PRESETS["voc"]["min_sizes"], PRESETS["voc"]["max_sizes"], clip=False),
        atol=1e-7,
    )


def test_anchor_config_reference_and_scaled():
    config = anchor_config("voc")
    assert config == {
        "feature_sizes": FEATURES,
        "input_size": 300,
        "min_sizes": [30, 60, 111, 162, 213, 264],
        "max_sizes": [60, 111, 162, 213, 264, 315],
        "steps": STEPS,
        "aspect_ratios": RATIOS,
        "clip": True,
    }
    scaled = anchor_config("coco", input_size=600)
    assert scaled["feature_sizes"] == [75, 38, 19, 10, 8, 6]
    assert scaled["min_sizes"] == pytest.approx([42, 90, 198, 306, 414, 522])
    assert scaled["steps"] == pytest.approx([8.0, 600 / 38, 600 / 19, 60.0, 75.0, 100.0])
    boxes = default_boxes(**scaled)
    assert boxes.shape == (
        sum(f * f * k for f, k in zip(scaled["feature_sizes"], [4, 6, 6, 6, 4, 4])),
        4,
    )
    # The centre of the last cell of every level sits half a step from the edge.
    assert boxes[-1, 0] == pytest.approx(1 - 0.5 / 6, abs=1e-6)


def test_feature_size_pairs_equal_ints_and_rectangular_maps():
    config = anchor_config("voc")
    pairs = dict(config)
    pairs["feature_sizes"] = [[f, f] for f in FEATURES]
    pairs["steps"] = [[s, s] for s in STEPS]
    np.testing.assert_array_equal(default_boxes(**pairs), ssd300_default_boxes("voc"))

    rect = anchor_config("voc", feature_sizes=[[4, 2], [2, 1], [2, 1], [1, 1], [1, 1], [1, 1]])
    assert rect["steps"][0] == [75.0, 150.0]
    boxes = default_boxes(**rect)
    assert boxes.shape == (8 * 4 + 2 * 6 + 2 * 6 + 6 + 4 + 4, 4)
    # Level 1 is 4 rows x 2 columns: the second location is row 0, column 1.
    np.testing.assert_allclose(boxes[4, :2], [0.75, 0.125], atol=1e-7)
    np.testing.assert_allclose(boxes[8, :2], [0.25, 0.375], atol=1e-7)


def test_ssd300_feature_sizes():
    assert ssd300_feature_sizes(300) == FEATURES
    assert ssd300_feature_sizes(512) == [64, 32, 16, 8, 6, 4]
    with pytest.raises(ValueError, match="too small"):
        ssd300_feature_sizes(128)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="preset"):
        anchor_config("imagenet")
    with pytest.raises(ValueError, match="input_size"):
        anchor_config("voc", input_size=0)
    with pytest.raises(ValueError, match="feature_sizes"):
        anchor_config("voc", feature_sizes=[38, 19])
    config = anchor_config("voc")
    config["steps"] = STEPS[:5]
    with pytest.raises(ValueError, match="steps"):
        default_boxes(**config)
    config = anchor_config("voc")
    config["aspect_ratios"] = [[2], [2, -3], [2, 3], [2, 3], [2], [2]]
    with pytest.raises(ValueError, match="aspect_ratios"):
        default_boxes(**config)
