"""Shape-agnostic helpers on feature maps, written in `keras.ops`.

Heights and widths may be Python ints or scalar tensors (unknown until call
time under TensorFlow), so everything here is computed at call time.
"""

import math

from keras import ops


def sine_position_encoding(height, width, dim, temperature=10000.0):
    """2-D sinusoidal position encoding of a `height x width` grid.

    Half of the channels encode the row, half the column, each as sines and
    cosines of geometrically spaced frequencies (as in DETR). Coordinates are
    cell centres normalised to (0, 2*pi), so the same relative position on
    maps of different sizes gets the same encoding.

    Args:
        height: int or scalar integer tensor, grid height.
        width: int or scalar integer tensor, grid width.
        dim: int, encoding width; must be divisible by 4.
        temperature: float, the longest wavelength.

    Returns:
        float32 tensor `[height * width, dim]`, row-major like a reshaped
        `[height, width, dim]` map.

    Example:
    >>> tuple(sine_position_encoding(2, 3, 8).shape)
    (6, 8)
    """
    if dim % 4:
        raise ValueError(f"`dim` must be divisible by 4; received dim={dim}.")
    quarter = dim // 4
    exponent = ops.arange(quarter, dtype="float32") / float(quarter)
    frequencies = ops.power(float(temperature), -exponent)

    def encode_axis(size):
        size_f = ops.cast(size, "float32")
        coords = (ops.arange(size, dtype="float32") + 0.5) / size_f * 2 * math.pi
        angles = coords[:, None] * frequencies[None, :]
        return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)

    rows = encode_axis(height)  # [H, dim / 2]
    cols = encode_axis(width)  # [W, dim / 2]
    half = dim // 2
    rows = ops.broadcast_to(rows[:, None, :], (height, width, half))
    cols = ops.broadcast_to(cols[None, :, :], (height, width, half))
    grid = ops.concatenate([rows, cols], axis=-1)
    return ops.reshape(grid, (height * width, dim))


def adaptive_pool_matrix(size, output_size, dtype="float32"):
    """Averaging matrix of adaptive average pooling along one axis.

    Row `i` averages the input positions `floor(i * size / out)` to
    `ceil((i + 1) * size / out) - 1`, where `out = min(size, output_size)`
    (PyTorch's `adaptive_avg_pool` windows). When `size <= output_size` the
    matrix is the identity, so small maps pass through unchanged.

    Args:
        size: int or scalar integer tensor, input length.
        output_size: int, the largest output length.
        dtype: dtype of the returned matrix.

    Returns:
        tensor `[min(size, output_size), size]` whose rows sum to one.
    """
    if isinstance(size, int):
        # Static sizes stay Python ints, so JAX can trace `arange` on them.
        out = min(size, output_size)
    else:
        out = ops.minimum(size, output_size)
    rows = ops.arange(out)[:, None]
    cols = ops.arange(size)[None, :]
    start = (rows * size) // out
    end = ((rows + 1) * size + out - 1) // out
    inside = ops.logical_and(cols >= start, cols < end)
    weights = ops.cast(inside, "float32")
    weights = weights / ops.sum(weights, axis=1, keepdims=True)
    return ops.cast(weights, dtype)


def adaptive_average_pool(maps, output_size):
    """Adaptive average pooling of `[B, H, W, C]` maps to at most `s x s`.

    Args:
        maps: tensor `[B, H, W, C]`.
        output_size: int `s`; each spatial axis longer than `s` is pooled to
            `s`, shorter axes are kept.

    Returns:
        tensor `[B, min(H, s), min(W, s), C]`.
    """
    shape = ops.shape(maps)
    pool_h = adaptive_pool_matrix(shape[1], output_size, maps.dtype)
    pool_w = adaptive_pool_matrix(shape[2], output_size, maps.dtype)
    pooled = ops.einsum("ih,bhwc->biwc", pool_h, maps)
    return ops.einsum("jw,biwc->bijc", pool_w, pooled)
