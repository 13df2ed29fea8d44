"""The fast paths of augment.py against their plain formulations."""

import numpy as np
import tensorflow as tf

from cfsam_keras.data.augment import _place
from cfsam_keras.data.augment import _scale_saturation
from cfsam_keras.data.augment import photometric_distortion


def test_place_puts_part_exactly_and_fills_the_rest():
    part = tf.constant(np.random.default_rng(0).uniform(0, 255, (5, 7, 3)), tf.float32)
    paddings = tf.constant([[2, 3], [1, 4], [0, 0]])
    fill = (1.0, 2.0, 3.0)
    for flip in (False, True):
        out = _place(part, paddings, (10, 12), tf.constant(flip), fill).numpy()
        assert out.shape == (10, 12, 3)
        expected = np.broadcast_to(np.float32(fill), (10, 12, 3)).copy()
        if flip:  # mirrored: the left padding becomes the right one
            expected[2:7, 4:11] = part.numpy()[:, ::-1]
        else:
            expected[2:7, 1:8] = part.numpy()
        np.testing.assert_array_equal(out, expected)
    empty = _place(
        tf.zeros([0, 0, 3]), tf.constant([[0, 10], [0, 12], [0, 0]]), (10, 12), False, fill
    )
    np.testing.assert_array_equal(empty.numpy(), np.broadcast_to(np.float32(fill), (10, 12, 3)))


def test_saturation_on_planes_equals_adjust_saturation():
    image = tf.constant(np.random.default_rng(1).uniform(0, 255, (9, 11, 3)), tf.float32)
    image = tf.concat([image, tf.fill([1, 11, 3], 77.0)], axis=0)  # gray pixels: unchanged
    for factor in (0.5, 1.3, 3.0):
        np.testing.assert_allclose(
            _scale_saturation(image, factor).numpy(),
            tf.image.adjust_saturation(image, factor).numpy(),
            atol=2e-3,
        )


def reference_photometric(image, seed):
    """photometric_distortion with every step applied unconditionally."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=9)

    def uniform(s, low=0.0, high=1.0):
        return tf.random.stateless_uniform([], s, minval=low, maxval=high)

    delta = tf.where(uniform(seeds[0]) < 0.5, uniform(seeds[1], -32.0, 32.0), 0.0)
    alpha = tf.where(uniform(seeds[2]) < 0.5, uniform(seeds[3], 0.5, 1.5), 1.0)
    contrast_first = uniform(seeds[4]) < 0.5
    sat = tf.where(uniform(seeds[5]) < 0.5, uniform(seeds[6], 0.5, 1.5), 1.0)
    hue = tf.where(uniform(seeds[7]) < 0.5, uniform(seeds[8], -18.0, 18.0), 0.0)
    first = tf.where(contrast_first, alpha, 1.0)
    out = tf.clip_by_value(image * first + delta * first, 0.0, 255.0)
    out = tf.image.adjust_saturation(out / 255.0, sat) * 255.0
    out = tf.image.adjust_hue(out, hue / 360.0)
    return tf.clip_by_value(out * tf.where(contrast_first, 1.0, alpha), 0.0, 255.0)


def test_photometric_distortion_equals_the_unconditional_formulation():
    image = tf.constant(np.random.default_rng(2).uniform(0, 255, (12, 12, 3)), tf.float32)
    for s in range(24):
        seed = tf.constant([5, s], tf.int64)
        np.testing.assert_allclose(
            photometric_distortion(image, seed).numpy(),
            reference_photometric(image, seed).numpy(),
            atol=0.05,
        )
