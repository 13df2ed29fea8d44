"""Tests of cfsam_keras.flops.count_flops against hand counts."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cfsam_keras.flops import count_flops


def test_dense_matches_hand_count():
    # [1, 20] x [20, 10] matmul: 2 * 20 * 10; bias add: 10.
    assert count_flops(keras.layers.Dense(10), [(1, 20)]) == 2 * 20 * 10 + 10
    # A None batch is counted as one example.
    assert count_flops(keras.layers.Dense(10), [(None, 20)]) == 410
    assert count_flops(keras.layers.Dense(10, use_bias=False), [(4, 20)]) == 4 * 400


def test_conv2d_matches_hand_count():
    layer = keras.layers.Conv2D(8, 3, padding="same")
    # Every output element: 3 * 3 * 4 multiply-adds, plus one bias add.
    outputs = 10 * 12 * 8
    assert count_flops(layer, [(1, 10, 12, 4)]) == outputs * (2 * 3 * 3 * 4 + 1)


def test_einsum_is_counted():
    # keras.ops.einsum gives a TF Einsum op, which the profiler does not cost.
    layer = keras.layers.EinsumDense("abc,cd->abd", output_shape=(None, 6))
    assert count_flops(layer, [(2, 5, 3)]) == 2 * 2 * 5 * 3 * 6
    fn = lambda a, b: tf.einsum("...ij,...jk->...ik", a, b)  # noqa: E731
    assert count_flops(fn, [(2, 3, 4, 5), (2, 3, 5, 6)]) == 2 * 2 * 3 * 4 * 5 * 6


def test_model_is_sum_of_its_layers():
    inputs = keras.Input((8, 8, 3))
    conv = keras.layers.Conv2D(4, 3)
    pool = keras.layers.GlobalAveragePooling2D()
    dense = keras.layers.Dense(2)
    model = keras.Model(inputs, dense(pool(conv(inputs))))
    by_layer = (
        count_flops(conv, [(1, 8, 8, 3)])
        + count_flops(pool, [(1, 6, 6, 4)])
        + count_flops(dense, [(1, 4)])
    )
    assert count_flops(model, [(None, 8, 8, 3)]) == by_layer
    assert count_flops(model, [model.inputs[0]]) == by_layer
    assert count_flops(model, [tf.TensorSpec((1, 8, 8, 3))]) == by_layer


def test_bad_specs_raise():
    with pytest.raises(ValueError, match="fully known shapes"):
        count_flops(keras.layers.Dense(2), [(1, None)])
    with pytest.raises(ValueError, match="non-empty list"):
        count_flops(keras.layers.Dense(2), [])
    with pytest.raises(ValueError, match="callable"):
        count_flops(np.zeros(3), [(1, 3)])
