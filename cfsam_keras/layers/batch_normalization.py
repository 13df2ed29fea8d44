"""BatchNormalization that trains with TensorFlow's fused kernel where it can."""

import keras

#: The smallest epsilon TensorFlow's fused kernel takes unchanged (below it,
#: TensorFlow's ``fused_batch_norm`` raises epsilon to this, as cuDNN needs).
FUSED_MIN_EPSILON = 1.001e-5


@keras.saving.register_keras_serializable(package="cfsam_keras")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization`, trained with one fused kernel under TensorFlow.

    The same arguments, weights, config and results (to float rounding) as Keras'
    layer. In a training step Keras 3 computes the batch statistics and the
    normalisation as separate element-wise operations, each a pass over the map,
    forward and backward. Under the TensorFlow backend this layer computes them with
    TensorFlow's `fused_batch_norm` instead (one kernel forward, one backward)
    when training on a 4-D input normalised over its last axis, with no mask,
    renorm or synchronised statistics and `epsilon >= 1.001e-5`. Everything else
    (inference, other backends, other cases) runs Keras' own code, so inference and
    exported graphs are Keras'.

    The moving statistics follow Keras' rule: the batch variance that updates them
    is the biased one (TensorFlow's kernel returns it with Bessel's correction, which
    is undone here).

    Args:
        **kwargs: those of `keras.layers.BatchNormalization`.

    Example:
    >>> import numpy as np
    >>> layer = BatchNormalization()
    >>> tuple(layer(np.ones((2, 4, 4, 8), "float32"), training=True).shape)
    (2, 4, 4, 8)
    """

    def _fusable(self, inputs, training, mask):
        return (
            training
            and self.trainable
            and mask is None
            and not self.renorm
            and not self.synchronized
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and self.epsilon >= FUSED_MIN_EPSILON
            and keras.backend.backend() == "tensorflow"
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf  # noqa: PLC0415 (only under the TensorFlow backend)

        # Statistics in float32 whatever the input dtype, as Keras' layer.
        x = tf.cast(inputs, tf.float32)
        channels = self.moving_mean.shape[0]
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels])
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels])
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            x, gamma, beta, epsilon=self.epsilon, is_training=True
        )
        count = tf.cast(tf.size(x) // channels, tf.float32)
        variance = variance * tf.math.divide_no_nan(count - 1.0, count)
        momentum = self.momentum
        for moving, batch in ((self.moving_mean, mean), (self.moving_variance, variance)):
            current = tf.cast(moving, tf.float32)
            moving.assign(tf.cast(current * momentum + batch * (1.0 - momentum), moving.dtype))
        return tf.cast(outputs, self.compute_dtype)
