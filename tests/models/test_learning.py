"""A small SSD learns synthetic boxes with model.fit, and the detector then finds them."""

import keras
import numpy as np
import pytest

from cfsam_keras.losses import MultiBoxLoss
from cfsam_keras.models import SSD300
from cfsam_keras.models import detector
from cfsam_keras.models import model_default_boxes
from cfsam_keras.targets import encode

SIZE = 128
COLOURS = np.array([[230, 40, 40], [40, 200, 40], [40, 60, 230]], "float32")  # one per class


def _synthetic_images(num_images, rng):
    """Noisy grey images, each with two solid rectangles of different class colours."""
    images, boxes, classes = [], [], []
    for i in range(num_images):
        image = rng.normal(120, 10, (SIZE, SIZE, 3))
        image_boxes, image_classes = [], []
        # Two rectangles in the left and right halves, so they never overlap.
        for half, cls in enumerate(((i % 3), (i + 1) % 3)):
            w, h = rng.integers(30, 56, 2)
            x0 = rng.integers(half * SIZE // 2, (half + 1) * SIZE // 2 - w // 2)
            x0 = min(x0, SIZE - w)
            y0 = rng.integers(0, SIZE - h)
            image[y0 : y0 + h, x0 : x0 + w] = COLOURS[cls]
            image_boxes.append([x0 / SIZE, y0 / SIZE, (x0 + w) / SIZE, (y0 + h) / SIZE])
            image_classes.append(cls)
        images.append(np.clip(image, 0, 255))
        boxes.append(np.array(image_boxes, "float32"))
        classes.append(np.array(image_classes, "int32"))
    return np.stack(images).astype("float32"), boxes, classes


def _iou(a, b):
    x0, y0 = np.maximum(a[:2], b[:2])
    x1, y1 = np.minimum(a[2:], b[2:])
    inter = max(x1 - x0, 0) * max(y1 - y0, 0)
    area = lambda box: (box[2] - box[0]) * (box[3] - box[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


@pytest.mark.slow
def test_small_ssd_learns_and_detector_finds_every_box():
    rng = np.random.default_rng(0)
    images, boxes, classes = _synthetic_images(6, rng)
    model = SSD300(
        3,
        backbone="mobilenet_v2",
        attention="none",
        input_size=SIZE,
        backbone_kwargs={"alpha": 0.35},
    )
    # MobileNetV2's BatchNorm moving averages (momentum 0.999) would need thousands of
    # steps to follow the batch statistics; a few hundred steps need a faster average.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    anchors = model_default_boxes(model)
    targets = np.stack([np.asarray(encode(b, c, anchors)) for b, c in zip(boxes, classes)])
    assert (targets[..., 4] > 0).sum() >= 2 * len(images)  # every box matched something

    # XLA-compiling the train step would cost more than it saves on 120 small steps.
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3), loss=MultiBoxLoss(num_classes=3), jit_compile=False
    )
    initial_loss = model.evaluate(images, targets, verbose=0)
    model.fit(images, targets, batch_size=len(images), epochs=120, verbose=0)
    final_loss = model.evaluate(images, targets, verbose=0)
    assert final_loss < initial_loss / 10, (initial_loss, final_loss)

    outputs = detector(model, score_threshold=0.3)(images)
    for i in range(len(images)):
        num = int(outputs["num_detections"][i])
        found_boxes = np.asarray(outputs["boxes"][i, :num])
        found_classes = np.asarray(outputs["classes"][i, :num])
        for gt_box, gt_class in zip(boxes[i], classes[i]):
            ious = [
                _iou(gt_box, box) for box, c in zip(found_boxes, found_classes) if c == gt_class
            ]
            assert ious and max(ious) >= 0.7, (i, gt_box, gt_class, found_boxes, found_classes)
