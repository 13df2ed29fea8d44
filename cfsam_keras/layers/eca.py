"""ECA (Wang et al., 2020), per level of a feature pyramid."""

import math

import keras
from keras import ops

from cfsam_keras.layers.multi_level import MultiLevelLayer


def eca_kernel_size(channels, gamma=2, b=1):
    """ECA's adaptive kernel size: `|(log2(C) + b) / gamma|`, rounded to odd.

    Follows the authors' code: `t = int(abs((log2(C) + b) / gamma))`, and
    `t + 1` when `t` is even.

    Example:
    >>> eca_kernel_size(256)
    5
    """
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


@keras.saving.register_keras_serializable(package="cfsam_keras")
class ECA(MultiLevelLayer):
    """Efficient Channel Attention, applied to each level alone.

    Per level (own weights): global average pool, a 1-D convolution (no bias)
    across channels with a kernel size chosen from the channel count
    (`eca_kernel_size`), a sigmoid, then the channels are rescaled. Levels do
    not interact. A baseline the CFSAM paper compares against.

    Args:
        gamma: positive number, ECA's gamma in the kernel size rule (default 2).
        b: number, ECA's b in the kernel size rule (default 1).
        kernel_size: odd int or None; a fixed kernel size for every level
            instead of the adaptive rule.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        features: list of tensors `[B, H_i, W_i, C_i]`.

    Returns:
        list of tensors with the shapes and dtypes of `features`.

    Example:
    >>> import numpy as np
    >>> outputs = ECA()([np.ones((1, 4, 4, 32), "float32")])
    >>> tuple(outputs[0].shape)
    (1, 4, 4, 32)
    """

    def __init__(self, gamma=2, b=1, kernel_size=None, **kwargs):
        super().__init__(**kwargs)
        if not gamma > 0:
            raise ValueError(f"`gamma` must be > 0; received {gamma!r}.")
        if kernel_size is not None and (
            isinstance(kernel_size, bool)
            or not isinstance(kernel_size, int)
            or kernel_size < 1
            or kernel_size % 2 == 0
        ):
            raise ValueError(
                f"`kernel_size` must be a positive odd int or None; received {kernel_size!r}."
            )
        self.gamma = gamma
        self.b = b
        self.kernel_size = kernel_size

    def build_levels(self, shapes):
        self.channel_convs = []
        for i, shape in enumerate(shapes):
            channels = int(shape[-1])
            size = self.kernel_size or eca_kernel_size(channels, self.gamma, self.b)
            conv = keras.layers.Conv1D(
                1,
                size,
                padding="same",
                use_bias=False,
                dtype=self.dtype_policy,
                name=f"channel_conv_{i}",
            )
            conv.build((None, channels, 1))
            self.channel_convs.append(conv)

    def call(self, features):
        outputs = []
        for i, x in enumerate(features):
            y = self._to_compute(x)
            pooled = ops.mean(y, axis=(1, 2))[:, :, None]  # [B, C, 1]
            weights = ops.sigmoid(self.channel_convs[i](pooled))[:, :, 0]
            outputs.append(ops.cast(y * weights[:, None, None, :], x.dtype))
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update({"gamma": self.gamma, "b": self.b, "kernel_size": self.kernel_size})
        return config
