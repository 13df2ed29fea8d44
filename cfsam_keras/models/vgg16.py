"""SSD's modified VGG16 backbone and its extra layers.

Layer names for conv1_1 .. conv5_3 are those of ``keras.applications.VGG16``
(``block1_conv1`` .. ``block5_conv3``), so ImageNet weights copy over by name. As in the
reference SSD300: pool3 rounds up (75 -> 38; ``padding="same"``), pool5 is 3x3 stride 1,
fc6 is a 3x3 convolution with dilation 6 to 1024 channels, fc7 a 1x1 convolution to 1024,
conv4_3 goes through an L2 normalisation with a learned scale (initially 20), and the
extra layers conv8 .. conv11 add four smaller maps.
"""

import keras

from cfsam_keras.layers import L2Normalization

# (block, number of 3x3 convolutions, filters) of VGG16's five blocks.
_VGG_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))

# (name, 1x1 filters, 3x3 filters, stride of the 3x3) of SSD300's extra layers.
_EXTRA_LAYERS = (
    ("conv8", 256, 512, 2),
    ("conv9", 128, 256, 2),
    ("conv10", 128, 256, 1),
    ("conv11", 128, 256, 1),
)

#: Layer names of the convolutions conv1_1 .. conv5_3, fc6 and fc7, in order.
VGG16_LAYER_NAMES = tuple(
    f"block{block}_conv{i}" for block, n, _ in _VGG_BLOCKS for i in range(1, n + 1)
) + ("fc6", "fc7")

#: Layer names of the extra layers, in order (conv8_1, conv8_2, ..., conv11_2).
EXTRA_LAYER_NAMES = tuple(f"{name}_{i}" for name, *_ in _EXTRA_LAYERS for i in (1, 2))


def vgg16_feature_sizes(input_size):
    """Spatial sizes of the six source maps of SSD-VGG16 for a square input.

    Args:
        input_size: int, the side of the square input image.

    Returns:
        List of six ints (``[38, 19, 10, 5, 3, 1]`` for 300).

    Raises:
        ValueError: if the input is too small for the extra layers.
    """
    size = input_size // 2  # pool1
    size = size // 2  # pool2
    size = -(-size // 2)  # pool3, ceil mode
    sizes = [size, size // 2]  # conv4_3; fc7 after pool4 (pool5 keeps the size)
    size = sizes[-1]
    for _, _, _, stride in _EXTRA_LAYERS:
        size = (size - 1) // 2 + 1 if stride == 2 else size - 2
        sizes.append(size)
    if min(sizes) < 1:
        raise ValueError(
            f"input_size={input_size} is too small for the vgg16 backbone: its source "
            f"maps would be {sizes}; use input_size >= 268 (SSD300 uses 300)."
        )
    return sizes


def vgg16_source_maps(x):
    """Applies SSD's VGG16 and extra layers to preprocessed images.

    Args:
        x: Keras tensor ``[B, S, S, 3]``, preprocessed ("caffe" BGR, mean removed).

    Returns:
        List of the six source maps: conv4_3 (L2-normalised), fc7, conv8_2, conv9_2,
        conv10_2, conv11_2.
    """
    sources = []
    for block, num_convs, filters in _VGG_BLOCKS:
        for i in range(1, num_convs + 1):
            x = keras.layers.Conv2D(
                filters,
                3,
                padding="same",
                activation="relu",
                name=f"block{block}_conv{i}",
            )(x)
        if block == 4:
            sources.append(L2Normalization(20.0, name="conv4_3_norm")(x))
        if block == 5:
            x = keras.layers.MaxPooling2D(3, strides=1, padding="same", name="block5_pool")(x)
        else:
            padding = "same" if block == 3 else "valid"
            x = keras.layers.MaxPooling2D(2, strides=2, padding=padding, name=f"block{block}_pool")(
                x
            )
    x = keras.layers.Conv2D(
        1024, 3, padding="same", dilation_rate=6, activation="relu", name="fc6"
    )(x)
    x = keras.layers.Conv2D(1024, 1, activation="relu", name="fc7")(x)
    sources.append(x)
    for name, reduce_filters, filters, stride in _EXTRA_LAYERS:
        x = keras.layers.Conv2D(reduce_filters, 1, activation="relu", name=f"{name}_1")(x)
        if stride == 2:
            # The reference pads 1 on every side; Keras' "same" would pad only after.
            x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
        x = keras.layers.Conv2D(filters, 3, strides=stride, activation="relu", name=f"{name}_2")(x)
        sources.append(x)
    return sources
