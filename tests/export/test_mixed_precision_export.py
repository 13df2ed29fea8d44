"""A model trained under a mixed-precision policy exports as float32 graphs."""

import numpy as np
import pytest
from export_helpers import SIZE
from export_helpers import keras_detections
from export_helpers import random_images


def _build(policy):
    import keras

    from cfsam_keras.data import BUILTIN_CLASSES
    from cfsam_keras.models import SSD300

    keras.mixed_precision.set_global_policy(policy)
    try:
        return SSD300(
            class_names=list(BUILTIN_CLASSES),
            backbone="small_vgg",
            attention="cfsam",
            input_size=SIZE,
            backbone_kwargs={"widths": (8, 8, 16, 16)},
            attention_kwargs={"embed_dim": 16, "num_heads": 2, "kv_pool_size": 2},
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.slow
def test_mixed_bfloat16_model_exports_float32_graphs(tmp_path):
    import keras
    import tensorflow as tf

    from cfsam_keras.export import export_onnx
    from cfsam_keras.export import export_saved_model
    from cfsam_keras.export import export_tflite
    from cfsam_keras.export import load_predictor
    from cfsam_keras.export.common import float32_model

    keras.utils.set_random_seed(0)
    mixed = _build("mixed_bfloat16")
    reference = _build("float32")
    reference.set_weights(mixed.get_weights())
    assert float32_model(reference) is reference
    images = random_images(2)
    expected = reference.predict_on_batch(images.astype(np.float32))
    # bfloat16 keeps 8 bits of mantissa: the mixed model itself is far from float32.
    assert np.abs(mixed.predict_on_batch(images.astype(np.float32)) - expected).max() > 1e-3

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        copy = float32_model(mixed)
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert copy.name == mixed.name and [v.name for v in copy.weights] == [
        v.name for v in mixed.weights
    ]
    copied = copy.predict_on_batch(images.astype(np.float32))
    np.testing.assert_allclose(copied, expected, atol=1e-5)

    tflite = load_predictor("tflite", export_tflite(mixed, str(tmp_path / "m.tflite")))
    onnx = load_predictor("onnx", export_onnx(mixed, str(tmp_path / "m.onnx")))
    for predictor in (tflite, onnx):
        raw = np.concatenate([predictor.run(image[None])["raw_predictions"] for image in images])
        assert np.abs(raw - expected).max() <= 1e-4
    serve = tf.saved_model.load(export_saved_model(mixed, str(tmp_path / "sm")))
    out = serve.signatures["serving_default"](images=tf.constant(images))
    for i, ref in enumerate(keras_detections(reference, images)):
        n = int(out["num_detections"][i])
        assert n == len(ref["boxes"])
        boxes = out["detection_boxes"].numpy()[i, :n][:, [1, 0, 3, 2]]  # yxyx -> xyxy
        np.testing.assert_allclose(boxes, ref["boxes"], atol=1e-4)
