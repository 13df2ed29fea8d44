"""CBAM (Woo et al., 2018), per level of a feature pyramid."""

import keras
from keras import ops

from cfsam_keras.layers.batch_normalization import BatchNormalization
from cfsam_keras.layers.multi_level import MultiLevelLayer
from cfsam_keras.layers.squeeze_excitation import reduced_width


@keras.saving.register_keras_serializable(package="cfsam_keras")
class CBAM(MultiLevelLayer):
    """Convolutional Block Attention Module, applied to each level alone.

    Per level (own weights), as in the authors' code:

    - channel attention: a shared MLP (Dense(C / reduction, ReLU) ->
      Dense(C)) on the global average- and max-pooled features; the two
      results are summed and passed through a sigmoid to rescale channels;
    - then spatial attention: the channel-wise mean and max maps are stacked,
      convolved with a `kernel_size x kernel_size` conv (no bias) followed by
      BatchNorm, and a sigmoid rescales every location.

    Levels do not interact. A baseline the CFSAM paper compares against.

    Args:
        reduction: int >= 1, channel reduction ratio (default 16); hidden
            width `max(1, C // reduction)`.
        kernel_size: odd int, spatial attention kernel (default 7).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        features: list of tensors `[B, H_i, W_i, C_i]`.
        training: bool, training mode of the spatial BatchNorm.

    Returns:
        list of tensors with the shapes and dtypes of `features`.

    Example:
    >>> import numpy as np
    >>> outputs = CBAM()([np.ones((1, 4, 4, 32), "float32")])
    >>> tuple(outputs[0].shape)
    (1, 4, 4, 32)
    """

    def __init__(self, reduction=16, kernel_size=7, **kwargs):
        super().__init__(**kwargs)
        if isinstance(reduction, bool) or not isinstance(reduction, int) or reduction < 1:
            raise ValueError(f"`reduction` must be a positive int; received {reduction!r}.")
        if (
            isinstance(kernel_size, bool)
            or not isinstance(kernel_size, int)
            or kernel_size < 1
            or kernel_size % 2 == 0
        ):
            raise ValueError(f"`kernel_size` must be a positive odd int; received {kernel_size!r}.")
        self.reduction = reduction
        self.kernel_size = kernel_size

    def build_levels(self, shapes):
        policy = self.dtype_policy
        self.mlp_hidden, self.mlp_output = [], []
        self.spatial_convs, self.spatial_norms = [], []
        for i, shape in enumerate(shapes):
            channels = int(shape[-1])
            hidden = reduced_width(channels, self.reduction)
            mlp_hidden = keras.layers.Dense(
                hidden, activation="relu", dtype=policy, name=f"mlp_hidden_{i}"
            )
            mlp_hidden.build((None, channels))
            mlp_output = keras.layers.Dense(channels, dtype=policy, name=f"mlp_output_{i}")
            mlp_output.build((None, hidden))
            conv = keras.layers.Conv2D(
                1,
                self.kernel_size,
                padding="same",
                use_bias=False,
                dtype=policy,
                name=f"spatial_conv_{i}",
            )
            conv.build((None, shape[1], shape[2], 2))
            norm = BatchNormalization(dtype=policy, name=f"spatial_norm_{i}")
            norm.build((None, shape[1], shape[2], 1))
            self.mlp_hidden.append(mlp_hidden)
            self.mlp_output.append(mlp_output)
            self.spatial_convs.append(conv)
            self.spatial_norms.append(norm)

    def call(self, features, training=None):
        outputs = []
        for i, x in enumerate(features):
            y = self._to_compute(x)

            def mlp(pooled, i=i):
                return self.mlp_output[i](self.mlp_hidden[i](pooled))

            channel = ops.sigmoid(mlp(ops.mean(y, axis=(1, 2))) + mlp(ops.max(y, axis=(1, 2))))
            y = y * channel[:, None, None, :]
            descriptor = ops.concatenate(
                [ops.mean(y, axis=-1, keepdims=True), ops.max(y, axis=-1, keepdims=True)],
                axis=-1,
            )
            spatial = self.spatial_norms[i](self.spatial_convs[i](descriptor), training=training)
            outputs.append(ops.cast(y * ops.sigmoid(spatial), x.dtype))
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update({"reduction": self.reduction, "kernel_size": self.kernel_size})
        return config
