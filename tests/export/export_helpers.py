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
