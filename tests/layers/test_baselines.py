"""Tests of the SE / CBAM / ECA baselines, L2Normalization and attention_module."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cfsam_keras.layers import (
    CBAM,
    CFSAM,
    ECA,
    L2Normalization,
    SqueezeExcitation,
    attention_module,
    eca_kernel_size,
)

SSD300_SHAPES = [
    (38, 38, 512),
    (19, 19, 1024),
    (10, 10, 512),
    (5, 5, 256),
    (3, 3, 256),
    (1, 1, 256),
]
PYRAMID_SHAPES = [(12, 16, 8), (6, 8, 16), (3, 4, 24)]
BASELINES = [SqueezeExcitation, CBAM, ECA]


def random_maps(shapes, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(batch,) + s).astype("float32") for s in shapes]


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.mark.parametrize("cls", BASELINES)
@pytest.mark.parametrize("shapes", [SSD300_SHAPES, PYRAMID_SHAPES], ids=["ssd300", "pyramid"])
def test_shapes_and_dtypes(cls, shapes):
    maps = random_maps(shapes, batch=1)
    layer = cls()
    outputs = layer(maps, training=False)
    for x, y in zip(maps, outputs):
        assert tuple(y.shape) == x.shape
        assert keras.backend.standardize_dtype(y.dtype) == "float32"
    assert layer.compute_output_shape([(None,) + s for s in shapes]) == [
        (None,) + s for s in shapes
    ]
    inputs = [keras.Input(s) for s in shapes]
    model = keras.Model(inputs, cls()(inputs))
    assert [tuple(o.shape) for o in model.outputs] == [(None,) + s for s in shapes]


@pytest.mark.parametrize("cls", BASELINES)
def test_levels_have_own_weights_and_do_not_interact(cls):
    maps = random_maps(PYRAMID_SHAPES)
    layer = cls()
    before = layer(maps, training=False)
    changed = maps[:-1] + [maps[-1] + 1.0]
    after = layer(changed, training=False)
    for a, b in zip(before[:-1], after[:-1]):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.allclose(np.asarray(before[-1]), np.asarray(after[-1]))
    kernels = [w for w in layer.weights if w.path.endswith("kernel")]
    assert len({w.path for w in kernels}) == len(kernels)
    assert len(kernels) % len(PYRAMID_SHAPES) == 0


def test_squeeze_excitation_matches_numpy():
    x = random_maps([(4, 5, 32)])[0]
    layer = SqueezeExcitation()
    y = np.asarray(layer([x])[0])
    w1, b1, w2, b2 = layer.get_weights()
    assert w1.shape == (32, 2)  # reduction 16
    squeezed = x.mean(axis=(1, 2))
    expected = x * sigmoid(np.maximum(squeezed @ w1 + b1, 0) @ w2 + b2)[:, None, None, :]
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_eca_matches_numpy():
    assert [eca_kernel_size(c) for c in (16, 64, 256, 512, 1024)] == [3, 3, 5, 5, 5]
    x = random_maps([(4, 5, 64)])[0]
    layer = ECA()
    y = np.asarray(layer([x])[0])
    (kernel,) = layer.get_weights()
    assert kernel.shape == (3, 1, 1)
    pooled = np.pad(x.mean(axis=(1, 2)), ((0, 0), (1, 1)))
    conv = sum(kernel[k, 0, 0] * pooled[:, k : k + 64] for k in range(3))
    np.testing.assert_allclose(y, x * sigmoid(conv)[:, None, None, :], rtol=1e-5, atol=1e-6)


def test_cbam_matches_numpy():
    x = random_maps([(6, 5, 32)])[0]
    layer = CBAM()
    y = np.asarray(layer([x], training=False)[0])
    w1, b1, w2, b2, conv, gamma, beta, mean, var = layer.get_weights()
    assert conv.shape == (7, 7, 2, 1)

    def mlp(v):
        return np.maximum(v @ w1 + b1, 0) @ w2 + b2

    channel = sigmoid(mlp(x.mean(axis=(1, 2))) + mlp(x.max(axis=(1, 2))))
    x1 = x * channel[:, None, None, :]
    descriptor = np.stack([x1.mean(-1), x1.max(-1)], axis=-1)
    padded = np.pad(descriptor, ((0, 0), (3, 3), (3, 3), (0, 0)))
    spatial = np.zeros(x.shape[:3])
    for i in range(7):
        for j in range(7):
            spatial += padded[:, i : i + 6, j : j + 5, :] @ conv[i, j, :, 0]
    spatial = (spatial - mean[0]) / np.sqrt(var[0] + 1e-3) * gamma[0] + beta[0]
    np.testing.assert_allclose(y, x1 * sigmoid(spatial)[..., None], rtol=1e-4, atol=1e-5)


def test_l2_normalization():
    layer = L2Normalization()
    x = np.random.default_rng(0).normal(size=(2, 3, 3, 8)).astype("float32")
    y = np.asarray(layer(x))
    (gamma,) = layer.get_weights()
    np.testing.assert_array_equal(gamma, np.full(8, 20.0, "float32"))
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), 20.0, rtol=1e-5)
    np.testing.assert_allclose(y, 20 * x / np.linalg.norm(x, axis=-1, keepdims=True), rtol=1e-5)
    assert layer.compute_output_shape((None, 3, 3, 8)) == (None, 3, 3, 8)
    clone = L2Normalization.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()

    # Under mixed_float16 the norm of large activations must not overflow.
    keras.config.set_dtype_policy("mixed_float16")
    try:
        half = L2Normalization()
        big = np.full((1, 2, 2, 512), 100.0, "float32")  # sum of squares 5.1e6
        out = np.asarray(half(tf.cast(big, "float16")))
    finally:
        keras.config.set_dtype_policy("float32")
    assert out.dtype == np.float16
    np.testing.assert_allclose(out.astype("float32"), 20 / np.sqrt(512), rtol=1e-2)

    with pytest.raises(ValueError, match="single tensor"):
        L2Normalization()([x, x])


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("cls", BASELINES)
def test_mixed_precision(cls, policy):
    maps = random_maps(PYRAMID_SHAPES)
    reference = cls()
    expected = reference(maps, training=False)
    keras.config.set_dtype_policy(policy)
    try:
        layer = cls()
        layer(maps)
        layer.set_weights(reference.get_weights())
        low = [tf.cast(x, layer.compute_dtype) for x in maps]
        with tf.GradientTape() as tape:
            outputs = layer(low, training=False)
            loss = sum(tf.reduce_mean(tf.cast(o, "float32") ** 2) for o in outputs)
        grads = tape.gradient(loss, layer.trainable_variables)
    finally:
        keras.config.set_dtype_policy("float32")
    for a, b in zip(expected, outputs):
        assert b.dtype == layer.compute_dtype
        np.testing.assert_allclose(np.asarray(tf.cast(b, "float32")), a, rtol=0.05, atol=0.05)
    assert all(g is not None and np.all(np.isfinite(np.asarray(g))) for g in grads)


def test_keras_file_round_trip_under_safe_mode(tmp_path):
    inputs = [keras.Input(s) for s in PYRAMID_SHAPES]
    features = [L2Normalization()(inputs[0])] + inputs[1:]
    for cls in BASELINES:
        features = cls()(features)
    model = keras.Model(inputs, features)
    maps = random_maps(PYRAMID_SHAPES)
    expected = model.predict(maps, verbose=0)
    path = str(tmp_path / "baselines.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    for a, b in zip(expected, restored.predict(maps, verbose=0)):
        np.testing.assert_array_equal(a, b)


def test_config_round_trips_and_validation():
    for layer in (SqueezeExcitation(reduction=4), CBAM(reduction=2, kernel_size=3), ECA(kernel_size=5)):
        config = layer.get_config()
        assert type(layer).from_config(config).get_config() == config
    with pytest.raises(ValueError, match="reduction"):
        SqueezeExcitation(reduction=0)
    with pytest.raises(ValueError, match="kernel_size"):
        CBAM(kernel_size=4)
    with pytest.raises(ValueError, match="kernel_size"):
        ECA(kernel_size=2)
    layer = SqueezeExcitation()
    with pytest.raises(ValueError, match="empty list"):
        layer([])
    with pytest.raises(ValueError, match="4-D"):
        layer([np.zeros((2, 8), "float32")])
    layer(random_maps(PYRAMID_SHAPES))
    with pytest.raises(ValueError, match="built for 3 levels"):
        layer(random_maps(PYRAMID_SHAPES[:1]))


def test_attention_module_factory():
    assert attention_module(None) is None
    assert attention_module("none") is None
    for name, cls in [("cfsam", CFSAM), ("se", SqueezeExcitation), ("CBAM", CBAM), ("eca", ECA)]:
        assert type(attention_module(name)) is cls
    layer = attention_module("cfsam", embed_dim=64, num_heads=4, kv_pool_size=5)
    assert (layer.embed_dim, layer.num_heads, layer.kv_pool_size) == (64, 4, 5)
    assert attention_module("se", reduction=8).reduction == 8
    with pytest.raises(ValueError, match="Unknown attention module 'sa'"):
        attention_module("sa")
    with pytest.raises(ValueError, match="embed_dim"):
        attention_module("se", embed_dim=64)
    with pytest.raises(ValueError, match="takes no arguments"):
        attention_module("none", reduction=8)
