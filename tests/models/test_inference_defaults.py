"""SSD's NMS IoU threshold is what PerClassNMS and detector() do with default arguments.

Every other NMS test passes the threshold explicitly, so a changed default would go
unseen there. Here two same-class boxes overlap by an IoU just above SSD's threshold
(so well below 0.5, the other common choice) or just below it, and the defaults must
keep one box or both. `NMS_IOU_THRESHOLD` only places the boxes' overlap.
"""

import numpy as np
import pytest

from cfsam_keras.defaults import NMS_IOU_THRESHOLD
from cfsam_keras.models import NMS_METHODS
from cfsam_keras.models import SSD300
from cfsam_keras.models import PerClassNMS
from cfsam_keras.models import detector

ABOVE = NMS_IOU_THRESHOLD + 0.02  # suppressed by SSD's NMS, kept at a threshold of 0.5
BELOW = NMS_IOU_THRESHOLD - 0.01  # kept by SSD's NMS


def box_iou(a, b):
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    overlap = width * height
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return overlap / (area - overlap)


def two_boxes(iou):
    """Two same-size boxes [1, 2, 4], the second shifted right so they overlap by `iou`."""
    side = 0.4
    shift = side * (1.0 - iou) / (1.0 + iou)  # IoU of a shift d: (side - d) / (side + d)
    boxes = np.array([[[0.1, 0.1, 0.1 + side, 0.5], [0.1 + shift, 0.1, 0.1 + side + shift, 0.5]]])
    boxes = boxes.astype("float32")
    assert box_iou(*boxes[0].astype("float64")) == pytest.approx(iou, abs=1e-5)
    return boxes


def same_class_scores():
    """Probabilities [1, 2, 3]: both boxes are class 0 (column 1), the first scores higher."""
    return np.array([[[0.1, 0.9, 0.0], [0.2, 0.8, 0.0]]], "float32")


def detections(nms, iou):
    boxes, scores, classes, num = nms(two_boxes(iou), same_class_scores())
    return int(num[0]), np.asarray(scores)[0]


def test_the_overlaps_straddle_ssd_threshold_and_not_0_5():
    assert BELOW < NMS_IOU_THRESHOLD < ABOVE < 0.5


@pytest.mark.parametrize("method", NMS_METHODS)
def test_per_class_nms_defaults(method):
    nms = PerClassNMS(method=method)
    num, scores = detections(nms, ABOVE)
    assert num == 1
    assert scores[0] == pytest.approx(0.9)
    assert detections(nms, BELOW)[0] == 2


def test_detector_defaults():
    model = SSD300(
        2,
        backbone="small_vgg",
        attention="none",
        input_size=64,
        backbone_kwargs={"widths": (8, 8, 8, 8)},
    )
    (nms,) = [layer for layer in detector(model).layers if isinstance(layer, PerClassNMS)]
    assert detections(nms, ABOVE)[0] == 1
    assert detections(nms, BELOW)[0] == 2
