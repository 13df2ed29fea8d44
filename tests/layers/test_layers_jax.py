"""Every layer of cfsam_keras.layers gives TensorFlow's outputs under JAX (one subprocess)."""

import numpy as np
import pytest
from layer_testing import build_layer
from layer_testing import jax_case
from layer_testing import perturb_weights
from layer_testing import run_jax_cases

from cfsam_keras.layers import CBAM
from cfsam_keras.layers import CFSAM
from cfsam_keras.layers import ECA
from cfsam_keras.layers import CrossLevelEncoderLayer
from cfsam_keras.layers import L2Normalization
from cfsam_keras.layers import SqueezeExcitation

PYRAMID_SHAPES = [(12, 16, 8), (6, 8, 16), (3, 4, 24)]


def random_maps(shapes, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(batch,) + s).astype("float32") for s in shapes]


def built(layer, input_data, perturb=True):
    build_layer(layer, input_data)
    if perturb:
        perturb_weights(layer)
    return layer


@pytest.mark.slow
def test_layers_under_jax_match_tensorflow(tmp_path):
    maps = random_maps(PYRAMID_SHAPES)
    tokens = np.random.default_rng(1).normal(size=(2, 20, 16)).astype("float32")
    cfsam = {"embed_dim": 16, "num_heads": 2, "kv_pool_size": 2}
    cases = [
        # Freshly built, CFSAM is the identity under JAX too, exactly.
        jax_case(built(CFSAM(**cfsam), maps, perturb=False), maps, tolerance=(0, 0)),
        jax_case(built(CFSAM(**cfsam), maps), maps),
        jax_case(built(CFSAM(**cfsam, position="learned", fusion="concat"), maps), maps),
        jax_case(
            built(CrossLevelEncoderLayer(16, 2, kv_pool_size=2), tokens),
            tokens,
            {"spatial_shapes": [[4, 4], [2, 2]]},
        ),
        jax_case(built(L2Normalization(), maps[0]), maps[0]),
    ]
    cases += [jax_case(built(cls(), maps), maps) for cls in (SqueezeExcitation, CBAM, ECA)]
    run_jax_cases(cases, tmp_path)
