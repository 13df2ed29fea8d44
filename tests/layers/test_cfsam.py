"""Tests of the CFSAM layer (TensorFlow backend; JAX in a subprocess)."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

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


def random_maps(shapes, batch=2, seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(batch,) + s).astype(dtype) for s in shapes]


def set_fusion_scales(layer, value):
    layer.fusion_scale.assign(np.full(layer.fusion_scale.shape, value, "float32"))


def pyramid_model(layer, shapes=PYRAMID_SHAPES):
    inputs = [keras.Input(s) for s in shapes]
    return keras.Model(inputs, layer(inputs))


def test_ssd300_maps_keep_shapes_and_dtypes():
    maps = random_maps(SSD300_SHAPES, batch=1)
    layer = CFSAM(embed_dim=32, num_heads=4)
    outputs = layer(maps, training=False)
    assert len(outputs) == 6
    for x, y in zip(maps, outputs):
        assert tuple(y.shape) == x.shape
        assert keras.backend.standardize_dtype(y.dtype) == "float32"
    # 3x3 conv + BN + 1x1 conv per level, encoder, fusion conv per level.
    assert layer.num_levels == 6
    assert layer.level_embedding.shape == (6, 32)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"position": "learned", "fusion": "concat"},
        {"position": None, "kv_pool_size": 2, "num_layers": 2, "local_channels": 8},
    ],
)
def test_pyramid_shapes_for_every_variant(kwargs):
    maps = random_maps(PYRAMID_SHAPES)
    layer = CFSAM(embed_dim=16, num_heads=2, **kwargs)
    outputs = layer(maps, training=False)
    assert [tuple(y.shape) for y in outputs] == [x.shape for x in maps]
    assert layer.compute_output_shape([(None,) + s for s in PYRAMID_SHAPES]) == [
        (None,) + s for s in PYRAMID_SHAPES
    ]
    model = pyramid_model(CFSAM.from_config(layer.get_config()))
    assert [tuple(o.shape) for o in model.outputs] == [
        (None,) + s for s in PYRAMID_SHAPES
    ]


def test_fresh_residual_layer_is_identity():
    maps = random_maps(PYRAMID_SHAPES)
    layer = CFSAM(embed_dim=16, num_heads=2)
    for training in (False, True):
        outputs = layer(maps, training=training)
        for x, y in zip(maps, outputs):
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


def test_get_config_round_trip():
    layer = CFSAM(
        embed_dim=16,
        num_heads=2,
        num_layers=2,
        mlp_ratio=2.0,
        dropout=0.1,
        local_channels=8,
        kv_pool_size=3,
        position="learned",
        fusion="concat",
        name="my_cfsam",
    )
    config = layer.get_config()
    clone = CFSAM.from_config(config)
    assert clone.get_config() == config
    maps = random_maps(PYRAMID_SHAPES)
    layer(maps)
    clone(maps)
    clone.set_weights(layer.get_weights())
    for a, b in zip(layer(maps), clone(maps)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_keras_file_round_trip_under_safe_mode(tmp_path):
    inputs = [keras.Input(s) for s in PYRAMID_SHAPES]
    features = [keras.layers.Conv2D(s[-1], 1)(x) for x, s in zip(inputs, PYRAMID_SHAPES)]
    features = CFSAM(embed_dim=16, num_heads=2, kv_pool_size=2, name="cfsam_a")(features)
    outputs = CFSAM(
        embed_dim=16, num_heads=2, position="learned", fusion="concat", name="cfsam_b"
    )(features)
    model = keras.Model(inputs, outputs)
    set_fusion_scales(model.get_layer("cfsam_a"), 0.5)
    maps = random_maps(PYRAMID_SHAPES)
    expected = model.predict(maps, verbose=0)

    path = str(tmp_path / "cfsam.keras")
    model.save(path)
    restored = keras.models.load_model(path)  # safe_mode=True by default
    for a, b in zip(expected, restored.predict(maps, verbose=0)):
        np.testing.assert_array_equal(a, b)
    assert not any(
        isinstance(layer, keras.layers.Lambda) for layer in restored.layers
    )


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_forward_and_backward(policy):
    maps = random_maps(PYRAMID_SHAPES)
    reference = CFSAM(embed_dim=16, num_heads=2, kv_pool_size=2)
    reference(maps)
    set_fusion_scales(reference, 1.0)
    expected = reference(maps, training=False)

    keras.config.set_dtype_policy(policy)
    try:
        layer = CFSAM(embed_dim=16, num_heads=2, kv_pool_size=2)
        assert layer.compute_dtype == policy.split("_")[1]
        # float32 inputs: the fresh layer returns them exactly, in float32.
        for x, y in zip(maps, layer(maps)):
            assert keras.backend.standardize_dtype(y.dtype) == "float32"
            np.testing.assert_array_equal(np.asarray(y), x)
        layer.set_weights(reference.get_weights())
        # Low-precision inputs (as from a preceding mixed-precision layer).
        low = [tf.cast(x, layer.compute_dtype) for x in maps]
        with tf.GradientTape() as tape:
            outputs = layer(low, training=True)
            loss = sum(tf.reduce_mean(tf.cast(o, "float32") ** 2) for o in outputs)
        for y in outputs:
            assert y.dtype == layer.compute_dtype
        grads = tape.gradient(loss, layer.trainable_variables)
        for variable, grad in zip(layer.trainable_variables, grads):
            assert variable.dtype == "float32"
            assert grad is not None and np.all(np.isfinite(np.asarray(grad)))
        outputs = layer(low, training=False)
    finally:
        keras.config.set_dtype_policy("float32")
    for a, b in zip(expected, outputs):
        np.testing.assert_allclose(
            np.asarray(tf.cast(b, "float32")), np.asarray(a), rtol=0.05, atol=0.1
        )


@pytest.mark.slow
def test_jit_compile_fit_and_predict():
    layer = CFSAM(embed_dim=16, num_heads=2, kv_pool_size=2)
    model = pyramid_model(layer)
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    maps = random_maps(PYRAMID_SHAPES)
    targets = random_maps(PYRAMID_SHAPES, seed=1)
    history = model.fit(maps, targets, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert np.all(np.asarray(layer.fusion_scale) != 0)
    jit = model.predict(maps, verbose=0)
    model.compile(optimizer="sgd", loss="mse", jit_compile=False)
    for a, b in zip(jit, model.predict(maps, verbose=0)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


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


JAX_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax
    import numpy as np
    import keras
    assert keras.backend.backend() == "jax", keras.backend.backend()
    from cfsam_keras.layers import CFSAM

    data = np.load(sys.argv[1])
    config = json.loads(sys.argv[2])
    maps = [data[f"map_{i}"] for i in range(3)]
    layer = CFSAM.from_config(config)
    layer.build([(None,) + x.shape[1:] for x in maps])
    # One jitted program instead of many eagerly compiled ops.
    forward = jax.jit(
        lambda trainable, non_trainable, x: layer.stateless_call(
            trainable, non_trainable, x, training=False
        )[0]
    )

    def run():
        return forward(
            [v.value for v in layer.trainable_variables],
            [v.value for v in layer.non_trainable_variables],
            maps,
        )

    # Freshly built: the identity.
    assert all(np.array_equal(np.asarray(y), x) for x, y in zip(maps, run()))
    layer.set_weights([data[f"weight_{i}"] for i in range(len(layer.weights))])
    for i, y in enumerate(run()):
        assert isinstance(y, jax.Array), type(y)
        np.testing.assert_allclose(np.asarray(y), data[f"out_{i}"], rtol=1e-4, atol=1e-4)
    from cfsam_keras.layers import CBAM, ECA, L2Normalization, SqueezeExcitation
    for cls in (SqueezeExcitation, CBAM, ECA):
        outputs = cls()(maps, training=False)
        assert [y.shape for y in outputs] == [x.shape for x in maps], cls
    normed = np.asarray(L2Normalization()(maps[0]))
    np.testing.assert_allclose(np.linalg.norm(normed, axis=-1), 20.0, rtol=1e-4)
    print("jax ok")
    """
)


@pytest.mark.slow
def test_jax_forward_matches_tensorflow(tmp_path):
    """CFSAM under JAX gives TensorFlow's outputs; the baselines run too."""
    layer = CFSAM(embed_dim=16, num_heads=2, kv_pool_size=2, name="cfsam")
    maps = random_maps(PYRAMID_SHAPES)
    layer(maps)
    set_fusion_scales(layer, 0.7)
    outputs = layer(maps, training=False)
    arrays = {f"map_{i}": x for i, x in enumerate(maps)}
    arrays.update({f"weight_{i}": w for i, w in enumerate(layer.get_weights())})
    arrays.update({f"out_{i}": np.asarray(y) for i, y in enumerate(outputs)})
    np.savez(tmp_path / "data.npz", **arrays)
    script = tmp_path / "run_jax.py"
    script.write_text(JAX_SCRIPT)
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "data.npz"), json.dumps(layer.get_config())],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "jax ok" in result.stdout
