"""Constants and helpers shared by the export tests (not fixtures)."""

import os

import numpy as np
import pytest

SIZE = 96
NUM_CLASSES = 5


def random_images(count, size=SIZE, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def saved_model_cli():
    import sys

    path = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    if not os.path.exists(path):
        pytest.skip("saved_model_cli is not installed beside the Python interpreter")
    return path


def box_iou(a, b):
    """IoU matrix of two float arrays of boxes in any (min, min, max, max) order."""
    a = np.asarray(a, np.float64)[:, None, :]
    b = np.asarray(b, np.float64)[None, :, :]
    lo = np.maximum(a[..., :2], b[..., :2])
    hi = np.minimum(a[..., 2:], b[..., 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    area_a = np.prod(np.clip(a[..., 2:] - a[..., :2], 0, None), axis=-1)
    area_b = np.prod(np.clip(b[..., 2:] - b[..., :2], 0, None), axis=-1)
    return inter / np.maximum(area_a + area_b - inter, 1e-12)
