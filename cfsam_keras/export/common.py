"""Helpers shared by the exports and the predictors."""

import inspect
import os

import keras
import tensorflow as tf

from cfsam_keras.models import postprocessor


def check_tensorflow_backend(what):
    """Raises a clear error unless Keras runs on the TensorFlow backend."""
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"{what} needs the TensorFlow backend (got {keras.backend.backend()!r}); "
            "set KERAS_BACKEND=tensorflow and load the model again"
        )


def float32_model(model):
    """``model`` when every layer computes in float32, else a float32 copy with its weights.

    A model trained under a mixed-precision policy (``mixed_bfloat16``,
    ``mixed_float16``) keeps float32 weights but computes in 16 bits. The exports
    are float32 graphs whatever precision trained the model: the TFLite converter
    has no 16-bit kernels for most of its ops, and a served model should answer
    the same whichever machine trained it.
    """
    policies = {layer.dtype_policy.name for layer in model.layers} | {model.dtype_policy.name}
    if policies == {"float32"}:
        return model
    previous = keras.mixed_precision.global_policy()
    # Sublayers a layer creates in __init__ or build take the global policy.
    keras.mixed_precision.set_global_policy("float32")
    try:
        copy = keras.models.clone_model(
            model,
            clone_function=lambda layer: layer.__class__.from_config(
                {**layer.get_config(), "dtype": "float32"}
            ),
        )
    finally:
        keras.mixed_precision.set_global_policy(previous)
    copy.set_weights(model.get_weights())
    return copy


def read_class_names(path):
    """Reads a class-names file (one name a line) written by an export."""
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.rstrip("\n")]


def write_file(path, data):
    """Writes ``data`` (bytes) to ``path`` through ``path.tmp``, renamed when complete.

    A reader (a server watching the folder) never sees a half-written file, and a
    failed write leaves no ``.tmp`` behind.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp_path = path + ".tmp"
    try:
        with open(tmp_path, "wb") as f:
            f.write(data)
        os.replace(tmp_path, path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


def write_class_names(path, class_names):
    """Writes class names one a line."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(class_names) + "\n")


def effective_settings(**settings):
    """The inference settings ``postprocessor`` runs with: ``settings`` over its defaults."""
    defaults = {
        name: p.default
        for name, p in inspect.signature(postprocessor).parameters.items()
        if p.default is not inspect.Parameter.empty and name != "nms_method"
    }
    return {**defaults, **settings}


def detection_function(model, **settings):
    """Images uint8 ``[B, S, S, 3]`` -> the detection outputs of the TFLite and ONNX files.

    The post-processing is ``postprocessor``'s with ``nms_method="class_offset"``: one
    NMS per image, which TFLite (``NON_MAX_SUPPRESSION_V5``) and ONNX
    (``NonMaxSuppression``) both have as a standard operator.
    """
    postprocess = postprocessor(model, nms_method="class_offset", **settings)

    def detect(images):
        raw = tf.cast(model(tf.cast(images, tf.float32), training=False), tf.float32)
        out = postprocess(raw)
        return {
            "detection_boxes": tf.gather(out["boxes"], [1, 0, 3, 2], axis=-1),
            "detection_scores": out["scores"],
            "detection_classes": out["classes"],
            "num_detections": out["num_detections"],
            "raw_predictions": raw,
        }

    return detect
