"""Base class for layers that take and return a list of feature maps."""

import keras
from keras import ops


def _shape_of(x):
    shape = getattr(x, "shape", None)
    if shape is None:
        raise ValueError(f"Expected a tensor, received an object of type {type(x).__name__}.")
    return tuple(shape)


class MultiLevelLayer(keras.layers.Layer):
    """A layer applied to a list of feature maps `[B, H_i, W_i, C_i]`.

    Subclasses implement `build_levels(shapes)` and `call(features, training)`.
    This base class

    - checks the input: a non-empty list or tuple of 4-D tensors with a known
      channel count, and, once built, the same number of levels and the same
      channels as at build time (a `ValueError` naming the problem otherwise);
    - keeps every output in the dtype of its input: under a mixed precision
      policy the layer computes in the policy's compute dtype (subclasses cast
      with `self._to_compute`) and casts each output back, so a layer that
      starts as the identity returns its inputs exactly;
    - provides `compute_output_shape` and `compute_output_spec` (outputs have
      the input shapes and dtypes).
    """

    def __init__(self, **kwargs):
        # Inputs are cast explicitly in `call`, so that outputs can keep the
        # dtype of the inputs; sub-layers still autocast themselves.
        kwargs.pop("autocast", None)
        super().__init__(autocast=False, **kwargs)
        self._level_channels = None

    def _check_shapes(self, shapes):
        if not isinstance(shapes, (list, tuple)) or (
            len(shapes) > 0 and isinstance(shapes[0], (int, type(None)))
        ):
            raise ValueError(
                f"{type(self).__name__} '{self.name}' expects a list of 4-D "
                f"feature maps [B, H, W, C]; received a single input of shape "
                f"{shapes}."
            )
        if len(shapes) == 0:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' expects a non-empty list "
                "of feature maps; received an empty list."
            )
        shapes = [tuple(s) for s in shapes]
        for i, shape in enumerate(shapes):
            if len(shape) != 4:
                raise ValueError(
                    f"{type(self).__name__} '{self.name}': every feature map "
                    f"must be 4-D [B, H, W, C]; level {i} has shape {shape} "
                    f"({len(shape)}-D)."
                )
            if shape[-1] is None:
                raise ValueError(
                    f"{type(self).__name__} '{self.name}': the channel count "
                    f"of level {i} must be known; received shape {shape}."
                )
        if self._level_channels is not None:
            channels = tuple(int(s[-1]) for s in shapes)
            if len(channels) != len(self._level_channels):
                raise ValueError(
                    f"{type(self).__name__} '{self.name}' was built for "
                    f"{len(self._level_channels)} levels; received "
                    f"{len(channels)}."
                )
            if channels != self._level_channels:
                raise ValueError(
                    f"{type(self).__name__} '{self.name}' was built for level "
                    f"channels {list(self._level_channels)}; received {list(channels)}."
                )
        return shapes

    def __call__(self, features, *args, **kwargs):
        if not isinstance(features, (list, tuple)):
            raise ValueError(
                f"{type(self).__name__} '{self.name}' expects a list of 4-D "
                "feature maps [B, H, W, C]; received a single "
                f"{type(features).__name__}."
            )
        self._check_shapes([_shape_of(x) for x in features])
        return super().__call__(list(features), *args, **kwargs)

    def build(self, input_shape):
        shapes = self._check_shapes(input_shape)
        self.build_levels(shapes)
        self._level_channels = tuple(int(s[-1]) for s in shapes)
        self.built = True

    def build_levels(self, shapes):
        """Creates the weights for levels of the given shapes."""
        raise NotImplementedError

    @property
    def num_levels(self):
        """Number of levels the layer was built for (None before build)."""
        if self._level_channels is None:
            return None
        return len(self._level_channels)

    def _to_compute(self, x):
        return ops.cast(x, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return [tuple(s) for s in self._check_shapes(input_shape)]

    def compute_output_spec(self, features, *args, **kwargs):
        return [keras.KerasTensor(x.shape, dtype=x.dtype) for x in features]
