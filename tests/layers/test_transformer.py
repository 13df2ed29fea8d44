"""CrossLevelEncoderLayer: its contract, and a NumPy pre-norm Transformer reference."""

import math

import numpy as np
import pytest
from layer_testing import run_layer_test

from cfsam_keras.layers import CrossLevelEncoderLayer

EMBED_DIM, NUM_HEADS = 16, 4
# Levels 5x6 and 3x3 pool to 2x2 with overlapping windows; 1x2 is already small enough.
SPATIAL_SHAPES = [(5, 6), (3, 3), (1, 2)]
NUM_TOKENS = sum(h * w for h, w in SPATIAL_SHAPES)


def random_tokens(batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, NUM_TOKENS, EMBED_DIM)).astype("float32")


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"kv_pool_size": 2, "mlp_ratio": 2.0, "dropout": 0.1}],
    ids=["full", "pooled"],
)
def test_layer_contract(kwargs):
    run_layer_test(
        CrossLevelEncoderLayer,
        {"embed_dim": EMBED_DIM, "num_heads": NUM_HEADS, **kwargs},
        random_tokens(),
        call_kwargs={"spatial_shapes": SPATIAL_SHAPES},
        expected_output_shape=(2, NUM_TOKENS, EMBED_DIM),
        expected_num_trainable_weights=14,  # two LayerNorms, five Dense layers
        expected_num_non_trainable_weights=0,
    )


def layer_norm(x, gamma, beta, epsilon=1e-6):
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def gelu(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def adaptive_average_pool(level, size):
    """[B, H, W, C] -> [B, min(H, s), min(W, s), C], PyTorch's adaptive_avg_pool2d windows."""
    _, height, width, _ = level.shape
    out_h, out_w = min(height, size), min(width, size)
    pooled = np.zeros((level.shape[0], out_h, out_w, level.shape[-1]))
    for i in range(out_h):
        top, bottom = (i * height) // out_h, -((-(i + 1) * height) // out_h)
        for j in range(out_w):
            left, right = (j * width) // out_w, -((-(j + 1) * width) // out_w)
            pooled[:, i, j] = level[:, top:bottom, left:right].mean(axis=(1, 2))
    return pooled


def reference_encoder_layer(tokens, w, num_heads, spatial_shapes, kv_pool_size):
    """Pre-norm encoder layer in float64: attention then a GELU MLP, both residual."""
    batch, count, dim = tokens.shape
    head_dim = dim // num_heads
    normed = layer_norm(tokens, w["attention_gamma"], w["attention_beta"])
    kv_source = normed
    if kv_pool_size is not None:
        levels, start = [], 0
        for height, width in spatial_shapes:
            level = normed[:, start : start + height * width].reshape(batch, height, width, dim)
            levels.append(adaptive_average_pool(level, kv_pool_size).reshape(batch, -1, dim))
            start += height * width
        kv_source = np.concatenate(levels, axis=1)

    def heads(x):
        return x.reshape(batch, -1, num_heads, head_dim).transpose(0, 2, 1, 3)

    query = heads(normed @ w["query_kernel"] + w["query_bias"])
    key_value = kv_source @ w["key_value_kernel"] + w["key_value_bias"]
    key, value = heads(key_value[..., :dim]), heads(key_value[..., dim:])
    weights = softmax(query @ key.transpose(0, 1, 3, 2) / math.sqrt(head_dim))
    context = (weights @ value).transpose(0, 2, 1, 3).reshape(batch, count, dim)
    x = tokens + context @ w["output_kernel"] + w["output_bias"]
    normed = layer_norm(x, w["mlp_gamma"], w["mlp_beta"])
    hidden = gelu(normed @ w["hidden_kernel"] + w["hidden_bias"])
    return x + hidden @ w["mlp_output_kernel"] + w["mlp_output_bias"]


def fixed_weights(layer, seed=1):
    """Sets seeded weights into `layer` (built); returns them by role."""
    rng = np.random.default_rng(seed)
    roles = {
        "attention": layer.attention_norm,
        "mlp": layer.mlp_norm,
        "query": layer.query_dense,
        "key_value": layer.key_value_dense,
        "output": layer.output_dense,
        "hidden": layer.mlp_hidden,
        "mlp_output": layer.mlp_output,
    }
    weights = {}
    for role, sublayer in roles.items():
        if role in ("attention", "mlp"):
            names = {f"{role}_gamma": sublayer.gamma, f"{role}_beta": sublayer.beta}
        else:
            names = {f"{role}_kernel": sublayer.kernel, f"{role}_bias": sublayer.bias}
        for name, variable in names.items():
            value = rng.normal(0.0, 0.5, variable.shape)
            if name.endswith("gamma"):
                value = value + 1.0
            weights[name] = value.astype("float32")
            variable.assign(weights[name])
    return weights


@pytest.mark.parametrize("kv_pool_size", [None, 2])
def test_matches_numpy_reference(kv_pool_size):
    tokens = random_tokens()
    layer = CrossLevelEncoderLayer(EMBED_DIM, NUM_HEADS, mlp_ratio=2.0, kv_pool_size=kv_pool_size)
    layer.build(tokens.shape)
    weights = fixed_weights(layer)
    outputs = np.asarray(layer(tokens, spatial_shapes=SPATIAL_SHAPES))
    weights = {k: v.astype("float64") for k, v in weights.items()}
    tokens = tokens.astype("float64")
    expected = reference_encoder_layer(tokens, weights, NUM_HEADS, SPATIAL_SHAPES, kv_pool_size)
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-5)
    if kv_pool_size is not None:  # the pooling shows: full keys give other outputs
        full = reference_encoder_layer(tokens, weights, NUM_HEADS, SPATIAL_SHAPES, None)
        assert np.abs(full - expected).max() > 0.1


def test_pooling_needs_spatial_shapes():
    layer = CrossLevelEncoderLayer(EMBED_DIM, NUM_HEADS, kv_pool_size=2)
    with pytest.raises(ValueError, match="spatial_shapes"):
        layer(random_tokens())
