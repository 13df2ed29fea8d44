"""A small VGG-style backbone for SSD on a CPU, trained from scratch.

SSD300's layout scaled down: plain 3x3 convolutions, each with BatchNorm and ReLU, the
first two source maps at strides 8 and 16 (where SSD300-VGG16 takes conv4_3 and fc7),
then SSD-style extra layers (a 1x1 reduction, then a 3x3 convolution of stride 2) for
the four smaller maps. Downsampling is by strided convolutions, not pooling. It has no
ImageNet weights: it exists for the CPU demo and CPU-sized comparisons, where
MobileNetV2 trained from scratch learns far more slowly. This backbone is ours, not the
paper's.
"""

import keras

from cfsam_keras.layers.batch_normalization import BatchNormalization

#: Default widths of the stride 2, 4, 8 and 16 stages.
SMALL_VGG_WIDTHS = (24, 48, 96, 192)


def _conv_bn_relu(x, filters, name, kernel_size=3, strides=1):
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False, name=name
    )(x)
    x = BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def small_vgg_source_maps(x, widths=SMALL_VGG_WIDTHS):
    """Applies the small VGG backbone to preprocessed images.

    Args:
        x: Keras tensor ``[B, S, S, 3]`` scaled to [-1, 1]; ``S >= 32``.
        widths: four ints, the filters of the stride 2, 4, 8 and 16 stages. The
            extra layers use ``widths[3], widths[2], widths[2], widths[2]`` filters
            (and half of each in their 1x1 reduction).

    Returns:
        List of six source maps at strides 8, 16, 32, 64, 128 and 256 (each at
        least 1x1).
    """
    widths = tuple(int(w) for w in widths)
    if len(widths) != 4 or min(widths) < 2:
        raise ValueError(f"widths must be four ints >= 2, got {widths!r}")
    w2, w4, w8, w16 = widths
    x = _conv_bn_relu(x, w2, "conv1", strides=2)
    x = _conv_bn_relu(x, w4, "conv2_1", strides=2)
    x = _conv_bn_relu(x, w4, "conv2_2")
    x = _conv_bn_relu(x, w8, "conv3_1", strides=2)
    sources = [_conv_bn_relu(x, w8, "conv3_2")]
    x = _conv_bn_relu(sources[-1], w16, "conv4_1", strides=2)
    sources.append(_conv_bn_relu(x, w16, "conv4_2"))
    x = sources[-1]
    for i, filters in enumerate((w16, w8, w8, w8)):
        x = _conv_bn_relu(x, filters // 2, f"extra{i + 1}_1", kernel_size=1)
        x = _conv_bn_relu(x, filters, f"extra{i + 1}_2", strides=2)
        sources.append(x)
    return sources
