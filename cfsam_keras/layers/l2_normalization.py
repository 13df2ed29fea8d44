"""SSD's L2 normalisation with a learnable per-channel scale."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="cfsam_keras")
class L2Normalization(keras.layers.Layer):
    """L2-normalises every location across channels, then scales per channel.

    `y = gamma * x / (||x||_2 + epsilon)` with the norm over the channel axis
    and a learnable `gamma` of shape `[C]`, as SSD applies to conv4_3 (Liu et
    al., 2016; Caffe `Normalize` layer, `across_spatial=false`,
    `channel_shared=false`, scale initialised to 20). The norm is computed in
    float32 even under mixed precision: a sum of squares over 512 channels
    overflows float16.

    Args:
        scale: float, initial value of `gamma` (default 20).
        epsilon: float, added to the norm to avoid division by zero.
        axis: int, the channel axis (default -1).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: tensor `[..., C]` (a single tensor, not a list).

    Returns:
        tensor of the shape of `inputs`.

    Example:
    >>> import numpy as np
    >>> y = L2Normalization()(np.full((1, 2, 2, 4), 3.0, "float32"))
    >>> float(y[0, 0, 0, 0])  # 20 * 3 / sqrt(4 * 9)
    10.0
    """

    def __init__(self, scale=20.0, epsilon=1e-10, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if not epsilon >= 0:
            raise ValueError(f"`epsilon` must be >= 0; received {epsilon!r}.")
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(f"`axis` must be an int; received {axis!r}.")
        self.scale = float(scale)
        self.epsilon = float(epsilon)
        self.axis = axis

    def build(self, input_shape):
        if (
            isinstance(input_shape, (list, tuple))
            and input_shape
            and isinstance(input_shape[0], (list, tuple))
        ):
            raise ValueError(
                f"L2Normalization '{self.name}' takes a single tensor, not a "
                f"list; received shapes {input_shape}."
            )
        rank = len(input_shape)
        if not -rank <= self.axis < rank:
            raise ValueError(
                f"L2Normalization '{self.name}': `axis={self.axis}` is out of "
                f"range for an input of shape {tuple(input_shape)}."
            )
        channels = input_shape[self.axis]
        if channels is None:
            raise ValueError(
                f"L2Normalization '{self.name}': the channel axis must be "
                f"known; received shape {tuple(input_shape)}."
            )
        self._axis = self.axis % rank
        self.gamma = self.add_weight(
            shape=(int(channels),),
            initializer=keras.initializers.Constant(self.scale),
            name="gamma",
        )
        self.built = True

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        norm = ops.sqrt(ops.sum(ops.square(x), axis=self._axis, keepdims=True))
        gamma_shape = [1] * len(inputs.shape)
        gamma_shape[self._axis] = -1
        gamma = ops.reshape(ops.cast(self.gamma, "float32"), gamma_shape)
        y = x / (norm + self.epsilon) * gamma
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"scale": self.scale, "epsilon": self.epsilon, "axis": self.axis})
        return config
