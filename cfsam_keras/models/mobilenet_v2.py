"""A MobileNetV2 backbone for SSD, for CPUs and phones.

The two MobileNetV2 maps SSDLite uses (the expansion of block 13 at stride 16 and the last
1x1 convolution at stride 32) plus four extra blocks at strides 64 .. 512 give six source
maps. The MobileNetV2 layers are ``keras.applications.MobileNetV2``'s own layers, with its
layer names, so ImageNet weights copy over by name.
"""

import keras

from cfsam_keras.layers.batch_normalization import BatchNormalization

#: Filters of the four extra blocks (as torchvision's SSDLite).
MOBILENET_EXTRA_CHANNELS = (512, 256, 256, 128)

#: The width multipliers keras.applications has ImageNet weights for.
IMAGENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)

_STRIDE16_LAYER = "block_13_expand_relu"
_STRIDE32_LAYER = "out_relu"


def _extra_block(x, filters, name):
    """1x1 reduce, 3x3 depthwise stride 2, 1x1 expand; each with BatchNorm and ReLU6."""
    x = keras.layers.Conv2D(filters // 2, 1, use_bias=False, name=f"{name}_reduce")(x)
    x = BatchNormalization(epsilon=1e-3, momentum=0.99, name=f"{name}_reduce_bn")(x)
    x = keras.layers.ReLU(6.0, name=f"{name}_reduce_relu")(x)
    x = keras.layers.DepthwiseConv2D(
        3, strides=2, padding="same", use_bias=False, name=f"{name}_depthwise"
    )(x)
    x = BatchNormalization(epsilon=1e-3, momentum=0.99, name=f"{name}_depthwise_bn")(x)
    x = keras.layers.ReLU(6.0, name=f"{name}_depthwise_relu")(x)
    x = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_project")(x)
    x = BatchNormalization(epsilon=1e-3, momentum=0.99, name=f"{name}_project_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_project_relu")(x)


def mobilenet_v2_source_maps(x, alpha=1.0, extra_channels=MOBILENET_EXTRA_CHANNELS):
    """Applies MobileNetV2 and four extra blocks to preprocessed images.

    Args:
        x: Keras tensor ``[B, S, S, 3]`` scaled to [-1, 1]; ``S >= 32``.
        alpha: float, MobileNetV2's width multiplier.
        extra_channels: four ints, the filters of the extra blocks.

    Returns:
        List of six source maps at strides 16, 32, 64, 128, 256, 512 (each at least 1x1).
    """
    backbone = keras.applications.MobileNetV2(
        input_tensor=x, include_top=False, weights=None, alpha=alpha
    )
    sources = [
        backbone.get_layer(_STRIDE16_LAYER).output,
        backbone.get_layer(_STRIDE32_LAYER).output,
    ]
    x = sources[-1]
    for i, filters in enumerate(extra_channels):
        x = _extra_block(x, filters, name=f"extra{i + 1}")
        sources.append(x)
    return sources
