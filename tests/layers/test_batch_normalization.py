"""BatchNormalization: Keras' layer, trained with TensorFlow's fused kernel, same results."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_testing import run_layer_test

from cfsam_keras.layers import BatchNormalization
from cfsam_keras.models import SSD300

FUSED_OP = "FusedBatchNormV3"


def test_layer_contract():
    run_layer_test(
        BatchNormalization,
        {"momentum": 0.9},
        np.random.default_rng(0).normal(size=(2, 5, 6, 8)).astype("float32"),
        expected_output_shape=(2, 5, 6, 8),
        expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=2,
    )


def _pair(shape, seed=0, **kwargs):
    """Ours and Keras' layer, built for ``shape`` with the same random weights."""
    rng = np.random.default_rng(seed)
    layers = BatchNormalization(**kwargs), keras.layers.BatchNormalization(**kwargs)
    values = None
    for layer in layers:
        layer.build(shape)
        if values is None:
            values = [rng.normal(1.0, 0.3, v.shape).astype("float32") for v in layer.weights]
            values[-1] = np.abs(values[-1])  # a moving variance
        for variable, value in zip(layer.weights, values):
            variable.assign(value)
    return layers


def _training_step(layer, x, upstream, mask=None):
    """Outputs, gradients (input and trainable weights), moving statistics, the ops traced."""

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True, mask=mask)
            loss = tf.reduce_sum(y * upstream)
        return y, tape.gradient(loss, [x] + layer.trainable_weights)

    y, grads = step(x)
    ops = {op.type for op in step.get_concrete_function(x).graph.get_operations()}
    moving = [np.asarray(v) for v in layer.non_trainable_weights]
    return np.asarray(y), [np.asarray(g) for g in grads], moving, ops


@pytest.mark.parametrize(
    "shape, kwargs",
    [
        ((16, 12, 12, 24), {"momentum": 0.9}),
        ((1, 1, 1, 8), {}),  # one value per channel: zero variance
        ((3, 5, 4, 6), {"center": False, "scale": False, "epsilon": 1e-4}),
    ],
)
def test_training_step_is_fused_and_equals_keras(shape, kwargs):
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(2.0, 3.0, shape).astype("float32"))
    upstream = tf.constant(rng.normal(size=shape).astype("float32"))
    ours, theirs = _pair(shape, **kwargs)
    y, grads, moving, ops = _training_step(ours, x, upstream)
    y_ref, grads_ref, moving_ref, ops_ref = _training_step(theirs, x, upstream)
    assert FUSED_OP in ops and FUSED_OP not in ops_ref
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=2e-5)
    for g, g_ref in zip(grads, grads_ref):
        np.testing.assert_allclose(g, g_ref, rtol=1e-4, atol=1e-4 * np.abs(g_ref).max() + 1e-6)
    for m, m_ref in zip(moving, moving_ref):
        np.testing.assert_allclose(m, m_ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "shape, kwargs, mask",
    [
        ((4, 6, 8), {}, None),  # not 4-D
        ((2, 3, 4, 5), {"axis": 1}, None),  # not the last axis
        ((2, 3, 4, 5), {"epsilon": 1e-6}, None),  # below the kernel's epsilon
        ((2, 3, 4, 5), {"renorm": True}, None),
        ((2, 3, 4, 5), {}, np.array([[[1, 0, 1, 1]] * 3, [[1, 1, 0, 1]] * 3], bool)),
    ],
)
def test_other_cases_run_keras_own_code(shape, kwargs, mask):
    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(size=shape).astype("float32"))
    upstream = tf.constant(rng.normal(size=shape).astype("float32"))
    ours, theirs = _pair(shape, **kwargs)
    y, grads, moving, ops = _training_step(ours, x, upstream, mask)
    y_ref, grads_ref, moving_ref, _ = _training_step(theirs, x, upstream, mask)
    assert FUSED_OP not in ops
    for a, b in zip([y, *grads, *moving], [y_ref, *grads_ref, *moving_ref]):
        np.testing.assert_array_equal(a, b)


def test_inference_is_keras_own_code():
    ours, theirs = _pair((2, 4, 4, 3))
    x = np.random.default_rng(3).normal(size=(2, 4, 4, 3)).astype("float32")
    np.testing.assert_array_equal(ours(x, training=False), theirs(x, training=False))
    graph = tf.function(lambda x: ours(x, training=False)).get_concrete_function(x).graph
    assert FUSED_OP not in {op.type for op in graph.get_operations()}


def test_the_models_own_batch_norms_are_these():
    from cfsam_keras.layers import CFSAM

    model = SSD300(num_classes=2, backbone="small_vgg", input_size=64, attention="cfsam")
    norms = [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    [cfsam] = [layer for layer in model.layers if isinstance(layer, CFSAM)]
    assert len(norms) == 15 + len(cfsam.local_norms)
    assert all(type(layer) is BatchNormalization for layer in norms)
