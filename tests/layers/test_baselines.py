"""Tests of the SE / CBAM / ECA baselines, L2Normalization and attention_module.

Each layer's contract is one harness call; the tests after them check behaviour.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_testing import run_layer_test

from cfsam_keras.layers import CBAM
from cfsam_keras.layers import CFSAM
from cfsam_keras.layers import ECA
from cfsam_keras.layers import L2Normalization
from cfsam_keras.layers import SqueezeExcitation
from cfsam_keras.layers import attention_module
from cfsam_keras.layers import eca_kernel_size

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


# Per level: SE two Dense layers; CBAM two Dense, a conv kernel and a BatchNorm; ECA a
# conv kernel. (class, non-default arguments, trainable and non-trainable weights per level)
BASELINE_CASES = [
    (SqueezeExcitation, {"reduction": 4}, 4, 0),
    (CBAM, {"reduction": 2, "kernel_size": 3}, 7, 2),
    (ECA, {"kernel_size": 5}, 1, 0),
    (ECA, {"gamma": 3, "b": 2}, 1, 0),
]


@pytest.mark.parametrize(
    "cls, kwargs, trainable, non_trainable",
    BASELINE_CASES,
    ids=[f"{c[0].__name__}-{'-'.join(c[1])}" for c in BASELINE_CASES],
)
def test_layer_contract(cls, kwargs, trainable, non_trainable):
    levels = len(PYRAMID_SHAPES)
    run_layer_test(
        cls,
        kwargs,
        random_maps(PYRAMID_SHAPES),
        expected_output_shape=[(2,) + s for s in PYRAMID_SHAPES],
        expected_num_trainable_weights=trainable * levels,
        expected_num_non_trainable_weights=non_trainable * levels,
        mixed_precision_output_dtype="input",
    )


@pytest.mark.parametrize("cls", BASELINES)
def test_ssd300_maps_keep_shapes_and_dtypes(cls):
    run_layer_test(
        cls,
        {},
        random_maps(SSD300_SHAPES, batch=1),
        expected_output_shape=[(1,) + s for s in SSD300_SHAPES],
        run_config_check=False,
        run_saving_check=False,
        run_mixed_precision_check=False,
        run_jit_check=False,
    )


@pytest.mark.parametrize(
    "kwargs", [{}, {"scale": 10.0, "epsilon": 1e-6, "axis": 1}], ids=["default", "axis-1"]
)
def test_l2_normalization_contract(kwargs):
    x = random_maps([(3, 4, 8)])[0]
    run_layer_test(
        L2Normalization,
        kwargs,
        x,
        expected_output_shape=x.shape,
        expected_num_trainable_weights=1,
        expected_num_non_trainable_weights=0,
    )


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
    channels_first = np.asarray(L2Normalization(scale=2.0, axis=1)(x))
    np.testing.assert_allclose(np.linalg.norm(channels_first, axis=1), 2.0, rtol=1e-5)

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


def test_validation():
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
