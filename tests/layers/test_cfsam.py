"""Tests of the CFSAM layer: its contract through the harness, then its behaviour."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_testing import run_layer_test

from cfsam_keras.flops import count_flops
from cfsam_keras.layers import CFSAM

SSD300_SHAPES = [
    (38, 38, 512),
    (19, 19, 1024),
    (10, 10, 512),
    (5, 5, 256),
    (3, 3, 256),
    (1, 1, 256),
]
PYRAMID_SHAPES = [(12, 16, 8), (6, 8, 16), (3, 4, 24)]
ENCODER_LAYER_WEIGHTS = 14  # two LayerNorms and five Dense layers, two weights each


def random_maps(shapes, batch=2, seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(batch,) + s).astype(dtype) for s in shapes]


def set_fusion_scales(layer, value):
    layer.fusion_scale.assign(np.full(layer.fusion_scale.shape, value, "float32"))


def pyramid_model(layer, shapes=PYRAMID_SHAPES):
    inputs = [keras.Input(s) for s in shapes]
    return keras.Model(inputs, layer(inputs))


def weight_counts(levels, num_layers=1, position="sine", fusion="residual"):
    """(trainable, non-trainable) weights of a CFSAM built for `levels` maps."""
    # Per level: local 3x3 kernel, BatchNorm gamma / beta, 1x1 projection and fusion
    # projection (kernel, bias each); concat adds a fusion conv, "learned" an embedding.
    per_level = 7 + 2 * (fusion == "concat") + (position == "learned")
    shared = 1 + (fusion == "residual") + ENCODER_LAYER_WEIGHTS * num_layers + 2
    return levels * per_level + shared, 2 * levels  # BatchNorm mean / variance per level


EVERY_ARGUMENT = {
    "num_layers": 2,
    "mlp_ratio": 2.0,
    "dropout": 0.1,
    "local_channels": 8,
    "kv_pool_size": 3,
    "position": "learned",
    "fusion": "concat",
    "name": "my_cfsam",
}


#: (rtol, atol) of the mixed precision outputs against float32 ones, for one encoder layer.
MIXED_TOLERANCE = (0.05, 0.1)
#: The same through two encoder layers whose outputs reach the result (concat fusion): on a
#: CPU without bfloat16 instructions every op rounds to bfloat16 (an AVX2-only AMD EPYC had
#: one element of 1536 off by 0.14).
MIXED_TOLERANCE_TWO_LAYERS = (0.05, 0.15)


@pytest.mark.parametrize(
    "kwargs, jit, mixed_tolerance",
    [
        pytest.param({}, True, MIXED_TOLERANCE, id="default"),
        pytest.param(
            {"position": "learned", "fusion": "concat"},
            True,
            MIXED_TOLERANCE,
            id="learned-concat",
        ),
        pytest.param(
            {"position": None, "kv_pool_size": 2, "num_layers": 2, "local_channels": 8},
            True,
            MIXED_TOLERANCE,  # residual fusion at a zero scale: the outputs are the inputs
            id="pooled-two-layers",
        ),
        # For the config; the cases above already jit each of its code paths.
        pytest.param(EVERY_ARGUMENT, False, MIXED_TOLERANCE_TWO_LAYERS, id="every-argument"),
    ],
)
def test_layer_contract(kwargs, jit, mixed_tolerance):
    trainable, non_trainable = weight_counts(
        len(PYRAMID_SHAPES),
        kwargs.get("num_layers", 1),
        kwargs.get("position", "sine"),
        kwargs.get("fusion", "residual"),
    )
    run_layer_test(
        CFSAM,
        {"embed_dim": 16, "num_heads": 2, **kwargs},
        random_maps(PYRAMID_SHAPES),
        expected_output_shape=[(2,) + s for s in PYRAMID_SHAPES],
        expected_num_trainable_weights=trainable,
        expected_num_non_trainable_weights=non_trainable,
        mixed_precision_output_dtype="input",
        mixed_precision_tolerance=mixed_tolerance,
        run_jit_check=jit,
    )


def test_ssd300_maps_keep_shapes_and_dtypes():
    run_layer_test(
        CFSAM,
        {"embed_dim": 32, "num_heads": 4},
        random_maps(SSD300_SHAPES, batch=1),
        expected_output_shape=[(1,) + s for s in SSD300_SHAPES],
        expected_num_trainable_weights=weight_counts(6)[0],
        expected_num_non_trainable_weights=weight_counts(6)[1],
        run_config_check=False,
        run_saving_check=False,
        run_mixed_precision_check=False,
        run_jit_check=False,
    )


@pytest.mark.parametrize("policy", ["float32", "mixed_float16", "mixed_bfloat16"])
def test_fresh_residual_layer_is_identity(policy):
    maps = random_maps(PYRAMID_SHAPES)
    layer = CFSAM(embed_dim=16, num_heads=2, dtype=policy)
    for training in (False, True):
        outputs = layer(maps, training=training)
        for x, y in zip(maps, outputs):
            # float32 inputs come back exactly, in float32, under every policy.
            assert keras.backend.standardize_dtype(y.dtype) == "float32"
            np.testing.assert_array_equal(np.asarray(y), x)


def test_concat_fusion_is_not_identity():
    maps = random_maps(PYRAMID_SHAPES)
    outputs = CFSAM(embed_dim=16, num_heads=2, fusion="concat")(maps)
    assert not np.allclose(np.asarray(outputs[0]), maps[0])


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"position": "learned", "kv_pool_size": 2, "num_layers": 2}],
)
def test_one_step_trains_every_weight(kwargs):
    maps = [tf.constant(x) for x in random_maps(PYRAMID_SHAPES)]
    targets = [tf.constant(x) for x in random_maps(PYRAMID_SHAPES, seed=1)]
    layer = CFSAM(embed_dim=16, num_heads=2, **kwargs)
    layer(maps)
    optimizer = keras.optimizers.SGD(0.1)

    def gradients():
        with tf.GradientTape() as tape:
            outputs = layer(maps, training=True)
            loss = sum(tf.reduce_mean(o * t) for o, t in zip(outputs, targets))
        return tape.gradient(loss, layer.trainable_variables)

    grads = gradients()
    assert all(g is not None for g in grads)
    optimizer.apply(grads, layer.trainable_variables)
    assert np.all(np.asarray(layer.fusion_scale) != 0)

    # With non-zero scales, every trainable weight now gets a real gradient.
    names = [v.path for v in layer.trainable_variables]
    for name, grad in zip(names, gradients()):
        assert grad is not None, name
        assert float(tf.reduce_max(tf.abs(grad))) > 0, name
    assert any("position_embedding" in n for n in names) == ("position" in kwargs)


@pytest.mark.parametrize("kv_pool_size", [None, 2])
def test_attention_crosses_levels(kv_pool_size):
    maps = random_maps(PYRAMID_SHAPES)
    layer = CFSAM(embed_dim=16, num_heads=2, kv_pool_size=kv_pool_size)
    layer(maps)
    set_fusion_scales(layer, 1.0)
    changed = list(maps)
    changed[-1] = maps[-1] + 1.0
    before = layer(maps, training=False)
    after = layer(changed, training=False)
    assert np.max(np.abs(np.asarray(before[0]) - np.asarray(after[0]))) > 1e-4
    np.testing.assert_array_equal(np.asarray(after[-1]) != np.asarray(before[-1]), True)


def test_kv_pooling_keeps_shapes_and_cuts_flops():
    embed_dim, pool = 32, 5
    shapes = [(1,) + s[:2] + (16,) for s in SSD300_SHAPES]
    full = CFSAM(embed_dim=embed_dim, num_heads=4)
    pooled = CFSAM(embed_dim=embed_dim, num_heads=4, kv_pool_size=pool)
    maps = random_maps([s[1:] for s in shapes], batch=1)
    assert [tuple(y.shape) for y in pooled(maps)] == [x.shape for x in maps]

    full_flops = count_flops(lambda *xs: full(list(xs)), shapes)
    pooled_flops = count_flops(lambda *xs: pooled(list(xs)), shapes)
    queries = sum(h * w for _, h, w, _ in shapes)  # 1940
    keys = sum(min(h, pool) * min(w, pool) for _, h, w, _ in shapes)  # 110
    # Q.K^T and weights.V: 2 matmuls of 2 * queries * keys * embed_dim FLOPs.
    saved_by_hand = 4 * queries * (queries - keys) * embed_dim
    assert pooled_flops < full_flops / 3
    assert full_flops - pooled_flops > 0.95 * saved_by_hand


@pytest.mark.slow
def test_jit_compile_fit_trains():
    """`run_layer_test` checks jit inference; this checks an XLA-compiled training step."""
    layer = CFSAM(embed_dim=16, num_heads=2, kv_pool_size=2)
    model = pyramid_model(layer)
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    maps = random_maps(PYRAMID_SHAPES)
    targets = random_maps(PYRAMID_SHAPES, seed=1)
    history = model.fit(maps, targets, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert np.all(np.asarray(layer.fusion_scale) != 0)


def test_mirrored_strategy_fit():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        layer = CFSAM(embed_dim=16, num_heads=2)
        model = pyramid_model(layer)
        model.compile(optimizer="sgd", loss="mse")
    maps = random_maps(PYRAMID_SHAPES, batch=4)
    targets = random_maps(PYRAMID_SHAPES, batch=4, seed=1)
    history = model.fit(maps, targets, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert np.all(np.asarray(layer.fusion_scale) != 0)


def test_unknown_batch_and_spatial_sizes():
    # Static spatial sizes, unknown batch.
    model = pyramid_model(CFSAM(embed_dim=16, num_heads=2, kv_pool_size=2))
    assert model.outputs[0].shape == (None,) + PYRAMID_SHAPES[0]
    for batch in (1, 3):
        outputs = model.predict(random_maps(PYRAMID_SHAPES, batch=batch), verbose=0)
        assert outputs[0].shape == (batch,) + PYRAMID_SHAPES[0]

    # Sizes unknown until call time: the sine encoding is computed then.
    layer = CFSAM(embed_dim=16, num_heads=2, kv_pool_size=2)
    dynamic = [keras.Input((None, None, s[-1])) for s in PYRAMID_SHAPES]
    model = keras.Model(dynamic, layer(dynamic))
    set_fusion_scales(layer, 1.0)
    fn = tf.function(
        lambda *xs: model(list(xs), training=False),
        input_signature=[tf.TensorSpec((None, None, None, s[-1])) for s in PYRAMID_SHAPES],
    )
    maps = random_maps(PYRAMID_SHAPES, batch=3)
    static = pyramid_model(layer)
    for a, b in zip(fn(*maps), static.predict(maps, verbose=0)):
        assert a.shape == b.shape
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-4, atol=1e-4)
    other = random_maps([(5, 7, 8), (4, 2, 16), (1, 3, 24)], batch=1)
    assert [tuple(y.shape) for y in fn(*other)] == [x.shape for x in other]


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="divisible by `num_heads`"):
        CFSAM(embed_dim=30, num_heads=4)
    with pytest.raises(ValueError, match="`position`"):
        CFSAM(embed_dim=16, num_heads=2, position="rope")
    with pytest.raises(ValueError, match="`fusion`"):
        CFSAM(embed_dim=16, num_heads=2, fusion="sum")
    with pytest.raises(ValueError, match="divisible by 4"):
        CFSAM(embed_dim=18, num_heads=2)
    with pytest.raises(ValueError, match="kv_pool_size"):
        CFSAM(embed_dim=16, num_heads=2, kv_pool_size=0)

    layer = CFSAM(embed_dim=16, num_heads=2)
    with pytest.raises(ValueError, match="empty list"):
        layer([])
    with pytest.raises(ValueError, match="single"):
        layer(np.zeros((1, 4, 4, 8), "float32"))
    with pytest.raises(ValueError, match="level 1 .*3-D"):
        layer([np.zeros((1, 4, 4, 8), "float32"), np.zeros((1, 4, 8), "float32")])

    maps = random_maps(PYRAMID_SHAPES)
    layer(maps)
    with pytest.raises(ValueError, match="built for 3 levels; received 2"):
        layer(maps[:2])
    with pytest.raises(ValueError, match=r"channels \[8, 16, 24\]; received \[8, 16, 32\]"):
        layer(maps[:2] + [np.zeros((2, 3, 4, 32), "float32")])

    learned = CFSAM(embed_dim=16, num_heads=2, position="learned")
    with pytest.raises(ValueError, match="static spatial sizes"):
        learned([keras.Input((None, None, 8))])
    learned = CFSAM(embed_dim=16, num_heads=2, position="learned")
    learned(maps)
    with pytest.raises(ValueError, match="built for 192 positions on level 0"):
        learned([np.zeros((1, 6, 6, 8), "float32")] + maps[1:])
