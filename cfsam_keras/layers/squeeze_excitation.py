"""Squeeze-and-Excitation (Hu et al., 2018), per level of a feature pyramid."""

import keras
from keras import ops

from cfsam_keras.layers.multi_level import MultiLevelLayer


def reduced_width(channels, reduction):
    """Hidden width of a channel-attention MLP: `channels // reduction`, >= 1."""
    return max(1, channels // reduction)


@keras.saving.register_keras_serializable(package="cfsam_keras")
class SqueezeExcitation(MultiLevelLayer):
    """Squeeze-and-Excitation channel attention, applied to each level alone.

    Per level (own weights): global average pool -> Dense(C / reduction, ReLU)
    -> Dense(C, sigmoid) -> rescale the channels of the map. Levels do not
    interact. A baseline the CFSAM paper compares against.

    Args:
        reduction: int >= 1, channel reduction ratio of the MLP (default 16);
            the hidden width is `max(1, C // reduction)`.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        features: list of tensors `[B, H_i, W_i, C_i]`.

    Returns:
        list of tensors with the shapes and dtypes of `features`.

    Example:
    >>> import numpy as np
    >>> outputs = SqueezeExcitation()([np.ones((1, 4, 4, 32), "float32")])
    >>> tuple(outputs[0].shape)
    (1, 4, 4, 32)
    """

    def __init__(self, reduction=16, **kwargs):
        super().__init__(**kwargs)
        if isinstance(reduction, bool) or not isinstance(reduction, int) or reduction < 1:
            raise ValueError(f"`reduction` must be a positive int; received {reduction!r}.")
        self.reduction = reduction

    def build_levels(self, shapes):
        policy = self.dtype_policy
        self.squeeze_dense, self.excite_dense = [], []
        for i, shape in enumerate(shapes):
            channels = int(shape[-1])
            hidden = reduced_width(channels, self.reduction)
            squeeze = keras.layers.Dense(
                hidden, activation="relu", dtype=policy, name=f"squeeze_{i}"
            )
            squeeze.build((None, channels))
            excite = keras.layers.Dense(
                channels, activation="sigmoid", dtype=policy, name=f"excite_{i}"
            )
            excite.build((None, hidden))
            self.squeeze_dense.append(squeeze)
            self.excite_dense.append(excite)

    def call(self, features):
        outputs = []
        for i, x in enumerate(features):
            y = self._to_compute(x)
            weights = self.excite_dense[i](self.squeeze_dense[i](ops.mean(y, axis=(1, 2))))
            outputs.append(ops.cast(y * weights[:, None, None, :], x.dtype))
        return outputs

    def get_config(self):
        config = super().get_config()
        config["reduction"] = self.reduction
        return config
