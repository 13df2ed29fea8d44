"""A hand-built eval dataset and a detector that knows its answers (shared by tests)."""

import numpy as np
import tensorflow as tf

# Two images of different original sizes; category ids {1, 5, 9} -> classes 0, 1, 2.
SIZES = [(200, 300), (480, 640)]  # (height, width)
IMAGE_IDS = [11, 42]
CATEGORY_IDS = [1, 5, 9]
GT_XYXY = [  # absolute pixels
    ([[10, 20, 160, 120], [120, 40, 290, 190]], [0, 2]),
    ([[300, 100, 620, 460]], [1]),
]
MAX_BOXES = 3


def eval_dataset(crowd=(), ground_truth=GT_XYXY):
    """A batch shaped like cfsam_keras.data.eval_pipeline output (padded ground truth).

    ``crowd``: (image index, box index) pairs flagged ``is_crowd``.
    ``ground_truth``: per image of ``SIZES``, ``(boxes, classes)`` in absolute pixels.
    """
    b = len(SIZES)
    images = np.zeros((b, 8, 8, 3), np.float32)
    boxes = np.zeros((b, MAX_BOXES, 4), np.float32)
    classes = np.full((b, MAX_BOXES), -1, np.int32)
    num_boxes = np.zeros(b, np.int32)
    for i, ((h, w), (gt_boxes, gt_classes)) in enumerate(zip(SIZES, ground_truth)):
        images[i, 0, 0, 0] = i  # lets the fake detector know which image it sees
        n = len(gt_boxes)
        boxes[i, :n] = np.array(gt_boxes, np.float32) / [w, h, w, h]
        classes[i, :n] = gt_classes
        num_boxes[i] = n
    batch = {
        "images": images,
        "image_id": np.array(IMAGE_IDS, np.int64),
        "original_size": np.array(SIZES, np.int32),
        "boxes": boxes,
        "classes": classes,
        "num_boxes": num_boxes,
        "difficult": np.zeros((b, MAX_BOXES), bool),
        "is_crowd": np.zeros((b, MAX_BOXES), bool),
    }
    for i, j in crowd:
        batch["is_crowd"][i, j] = True
    return tf.data.Dataset.from_tensor_slices(batch).batch(1)


def perfect_detector(images):
    """Returns each image's ground truth (rel_xyxy) as detections, K = 4 rows."""
    images = np.asarray(images)
    out = {
        "boxes": np.zeros((len(images), 4, 4), np.float32),
        "scores": np.zeros((len(images), 4), np.float32),
        "classes": np.zeros((len(images), 4), np.int32),
        "num_detections": np.zeros(len(images), np.int32),
    }
    for row, image in enumerate(images):
        i = int(image[0, 0, 0])
        (h, w), (gt_boxes, gt_classes) = SIZES[i], GT_XYXY[i]
        n = len(gt_boxes)
        out["boxes"][row, :n] = np.array(gt_boxes, np.float32) / [w, h, w, h]
        out["scores"][row, :n] = 0.9
        out["classes"][row, :n] = gt_classes
        out["num_detections"][row] = n
    return out
