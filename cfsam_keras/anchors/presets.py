"""SSD300 default-box presets and the anchor configuration a model stores."""

import math

from cfsam_keras.validation import positive_int

#: SSD300's six source maps (conv4_3, fc7, conv8_2, conv9_2, conv10_2, conv11_2).
SSD300_FEATURE_SIZES = (38, 19, 10, 5, 3, 1)
SSD300_STEPS = (8, 16, 32, 64, 100, 300)
SSD300_ASPECT_RATIOS = ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,))

#: Default-box sizes of the SSD reference code (in pixels of a 300 x 300 input), and
#: how the boxes are clamped to the image (``clip`` of `default_boxes`; default all four
#: coordinates, as the reference code).
PRESETS = {
    "voc": {
        "min_sizes": (30, 60, 111, 162, 213, 264),
        "max_sizes": (60, 111, 162, 213, 264, 315),
    },
    "coco": {
        "min_sizes": (21, 45, 99, 153, 207, 261),
        "max_sizes": (45, 99, 153, 207, 261, 315),
    },
}
#: torchvision's ``ssd300_vgg16``: the COCO sizes, only widths and heights clamped.
PRESETS["torchvision"] = dict(PRESETS["coco"], clip="size")


def ssd300_feature_sizes(input_size=300):
    """Sizes of the six SSD300 (VGG16) source maps for a square input.

    Strided layers round up (Keras ``padding="same"``), so the first five maps
    are ``ceil(input_size / 8)`` .. ``ceil(input_size / 64)`` halving each
    time, and the last two come from unpadded 3x3 convolutions (``- 2`` each).

    Args:
        input_size: int, side of the square input image in pixels.

    Returns:
        A list of six ints; ``[38, 19, 10, 5, 3, 1]`` for 300.

    Example:
    >>> ssd300_feature_sizes(300)
    [38, 19, 10, 5, 3, 1]
    """
    input_size = positive_int(input_size, "input_size")
    sizes = [math.ceil(input_size / 2**k) for k in (3, 4, 5, 6)]
    sizes += [sizes[-1] - 2, sizes[-1] - 4]
    if sizes[-1] < 1:
        raise ValueError(
            f"input_size={input_size} is too small for the SSD300 layout "
            f"(its last feature map would be {sizes[-1]} x {sizes[-1]}); "
            "pass feature_sizes explicitly."
        )
    return sizes


def anchor_config(preset="voc", input_size=300, feature_sizes=None):
    """The default-box configuration for an SSD300-style detector.

    The result holds exactly the keyword arguments of
    `cfsam_keras.anchors.default_boxes` and is JSON-friendly, so models store
    it in their config. At ``input_size=300`` with SSD300's feature sizes it
    is the reference configuration (steps 8, 16, 32, 64, 100, 300). Otherwise
    the box sizes scale by ``input_size / 300`` and each step becomes
    ``input_size / feature_size``, so the boxes tile the image the same way.

    Args:
        preset: ``"voc"``, ``"coco"`` or ``"torchvision"``, the box sizes and
            clamping (see `PRESETS`).
        input_size: int, side of the square input in pixels.
        feature_sizes: optional list of six ints or ``(height, width)`` pairs,
            the sizes of the maps the heads run on. Defaults to
            `ssd300_feature_sizes(input_size)`.

    Returns:
        A dict with keys ``feature_sizes``, ``input_size``, ``min_sizes``,
        ``max_sizes``, ``steps``, ``aspect_ratios`` and ``clip``.

    Example:
    >>> config = anchor_config("voc")
    >>> config["steps"]
    [8, 16, 32, 64, 100, 300]
    """
    if preset not in PRESETS:
        raise ValueError(f"Unknown anchor preset {preset!r}; expected one of {sorted(PRESETS)}.")
    input_size = positive_int(input_size, "input_size")
    if feature_sizes is None:
        feature_sizes = ssd300_feature_sizes(input_size)
    feature_sizes = [_feature_size(f) for f in feature_sizes]
    if len(feature_sizes) != len(SSD300_FEATURE_SIZES):
        raise ValueError(
            f"feature_sizes must have {len(SSD300_FEATURE_SIZES)} levels "
            f"(SSD300's source maps); received {len(feature_sizes)}: {feature_sizes}."
        )
    sizes = PRESETS[preset]
    reference = input_size == 300 and feature_sizes == list(SSD300_FEATURE_SIZES)
    if reference:
        min_sizes = list(sizes["min_sizes"])
        max_sizes = list(sizes["max_sizes"])
        steps = list(SSD300_STEPS)
    else:
        scale = input_size / 300.0
        min_sizes = [s * scale for s in sizes["min_sizes"]]
        max_sizes = [s * scale for s in sizes["max_sizes"]]
        steps = [_step(input_size, f) for f in feature_sizes]
    return {
        "feature_sizes": feature_sizes,
        "input_size": input_size,
        "min_sizes": min_sizes,
        "max_sizes": max_sizes,
        "steps": steps,
        "aspect_ratios": [list(r) for r in SSD300_ASPECT_RATIOS],
        "clip": sizes.get("clip", True),
    }


def _feature_size(size):
    if isinstance(size, (list, tuple)):
        if len(size) != 2:
            raise ValueError(
                "Each entry of feature_sizes must be an int or a (height, width) "
                f"pair; received {size!r}."
            )
        return [positive_int(s, "feature_sizes entry") for s in size]
    return positive_int(size, "feature_sizes entry")


def _step(input_size, feature_size):
    if isinstance(feature_size, list):
        return [input_size / feature_size[0], input_size / feature_size[1]]
    return input_size / feature_size
