"""Helpers shared by the SavedModel and TFLite exports and the predictors."""

import os

import numpy as np


def check_tensorflow_backend(what):
    """Raises a clear error unless Keras runs on the TensorFlow backend."""
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"{what} needs the TensorFlow backend (got {keras.backend.backend()!r}); "
            "set KERAS_BACKEND=tensorflow and load the model again"
        )


def model_input_size(model):
    """The square input size S of an SSD model (from its input shape)."""
    shape = model.input_shape
    if isinstance(shape, list):
        shape = shape[0]
    if len(shape) != 4 or shape[1] is None or shape[1] != shape[2] or shape[3] != 3:
        raise ValueError(
            f"expected an SSD model with a fixed square RGB input [B, S, S, 3], "
            f"got input shape {shape}"
        )
    return int(shape[1])


def _configs(model):
    """The configs of the model's "predictions" layer and of the model."""
    configs = []
    try:
        configs.append(model.get_layer("predictions").get_config())
    except ValueError:
        pass
    try:
        configs.append(model.get_config() or {})
    except NotImplementedError:
        pass
    return configs


def model_num_classes(model):
    """The number of object classes (background excluded) of an SSD model."""
    for config in _configs(model):
        if "num_classes" in config:
            return int(config["num_classes"])
    # offsets (4) + background (1) + object classes
    return int(model.output_shape[-1]) - 5


def model_class_names(model, class_names=None):
    """Class names for an SSD model: the given list, the model's, or generic ones.

    Args:
        model: an SSD Keras model.
        class_names: optional list of ``num_classes`` strings.

    Returns:
        A list of ``num_classes`` strings.
    """
    num_classes = model_num_classes(model)
    if class_names is None:
        class_names = getattr(model, "class_names", None)
        for config in _configs(model):
            class_names = class_names or config.get("class_names")
    if class_names is None:
        return [f"class_{i}" for i in range(num_classes)]
    class_names = [str(n) for n in class_names]
    if len(class_names) != num_classes:
        raise ValueError(
            f"class_names has {len(class_names)} names but the model has "
            f"{num_classes} object classes"
        )
    if any("\n" in n for n in class_names):
        raise ValueError("class_names must not contain newlines")
    return class_names


def read_class_names(path):
    """Reads a class-names file (one name a line) written by an export."""
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.rstrip("\n")]


def write_class_names(path, class_names):
    """Writes class names one a line."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(class_names) + "\n")


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
