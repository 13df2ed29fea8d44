"""add_attention: a module inserted into a trained SSD before its heads."""

import keras
import numpy as np
import pytest

from cfsam_keras.models import SSD300
from cfsam_keras.models import add_attention
from cfsam_keras.models import model_config

SMALL = dict(backbone="small_vgg", input_size=96, backbone_kwargs={"widths": (8, 16, 16, 16)})
IMAGES = np.random.default_rng(0).uniform(0, 255, (2, 96, 96, 3)).astype(np.float32)


def _trained(seed=0):
    model = SSD300(class_names=["a", "b", "c"], attention="none", **SMALL)
    rng = np.random.default_rng(seed)
    for v in model.weights:  # a "trained" detector: weights away from their initial values
        v.assign(v + rng.normal(0, 0.05, v.shape).astype(np.float32))
    return model


def test_cfsam_starts_as_the_trained_detector_exactly(tmp_path):
    base = _trained()
    before = [w.copy() for w in base.get_weights()]
    model = add_attention(base, "cfsam", embed_dim=16, num_heads=2)
    np.testing.assert_array_equal(model(IMAGES), base(IMAGES))
    assert model.name == f"{base.name}_cfsam"
    assert model_config(model) == model_config(base)
    assert model.count_params() > base.count_params()
    # A training step moves the new model only; the trained one is left as it was.
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.train_on_batch(IMAGES, np.zeros(model.output_shape[1:], np.float32)[None].repeat(2, 0))
    assert not np.array_equal(model(IMAGES), base(IMAGES))
    for a, b in zip(base.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    path = str(tmp_path / "with_cfsam.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(reloaded(IMAGES), model(IMAGES))


def test_se_is_inserted_but_not_the_identity():
    base = _trained()
    model = add_attention(base, "se")
    assert any(layer.__class__.__name__ == "SqueezeExcitation" for layer in model.layers)
    assert not np.allclose(model(IMAGES), base(IMAGES))


def test_refuses_a_model_with_attention_and_no_module():
    base = _trained()
    with pytest.raises(ValueError, match="already has the attention module"):
        add_attention(add_attention(base, "eca"), "cfsam")
    with pytest.raises(ValueError, match="needs a module"):
        add_attention(base, "none")
    with pytest.raises(ValueError, match="Unknown attention module 'nonlocal'"):
        add_attention(base, "nonlocal")
