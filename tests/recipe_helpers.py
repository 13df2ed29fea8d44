"""Paths and settings shared by the tests that run the recipes (not fixtures)."""

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = os.path.join(REPO, "recipes")
DEMO = os.path.join(RECIPES, "demo.py")
#: Demo flags for a tiny, fast model and dataset.
TINY = [
    "--input-size",
    "96",
    "--image-size",
    "96",
    "--train-images",
    "24",
    "--val-images",
    "8",
    "--batch-size",
    "4",
    "--predict-images",
    "2",
    "--skip-export",
]

# The recipes import each other as scripts do (their folder first on sys.path).
if RECIPES not in sys.path:
    sys.path.insert(0, RECIPES)


def write_tiny_dataset(folder):
    """A tiny built-in dataset, written the way the demo writes (and reuses) it."""
    import common

    common.builtin_dataset(str(folder), 24, 8, 96, 0)
    return str(folder)


def subprocess_env(**extra):
    env = dict(
        os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow"
    )
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def backup_arrays(folder):
    """Every array of one ``backup/epoch-NNNNN`` folder's backup, by its h5 path."""
    import io
    import zipfile

    import h5py

    from cfsam_keras.training.callbacks import backup_file

    with zipfile.ZipFile(backup_file(folder)) as archive:
        weights = io.BytesIO(archive.read("model.weights.h5"))
    arrays = {}
    with h5py.File(weights, "r") as f:
        f.visititems(
            lambda name, obj: (
                arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
            )
        )
    return arrays
