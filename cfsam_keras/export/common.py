"""Helpers shared by the exports and the predictors."""

import os

import keras


def check_tensorflow_backend(what):
    """Raises a clear error unless Keras runs on the TensorFlow backend."""
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"{what} needs the TensorFlow backend (got {keras.backend.backend()!r}); "
            "set KERAS_BACKEND=tensorflow and load the model again"
        )


def read_class_names(path):
    """Reads a class-names file (one name a line) written by an export."""
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.rstrip("\n")]


def write_class_names(path, class_names):
    """Writes class names one a line."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(class_names) + "\n")
