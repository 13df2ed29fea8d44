"""SSD default boxes (anchors), laid out exactly as the SSD reference code."""

import numpy as np

from cfsam_keras.anchors.presets import anchor_config


def boxes_per_location(aspect_ratios):
    """Number of default boxes at each location of each level.

    Two squares (sizes ``s_k`` and ``sqrt(s_k * s_k+1)``) plus a box for each
    ratio ``r`` and for ``1 / r``.

    Args:
        aspect_ratios: list (one per level) of lists of ratios ``r > 0``.

    Returns:
        A list of ints, ``2 + 2 * len(ratios)`` per level.

    Example:
    >>> boxes_per_location([[2], [2, 3]])
    [4, 6]
    """
    return [2 + 2 * len(ratios) for ratios in aspect_ratios]


def default_boxes(
    feature_sizes,
    input_size,
    min_sizes,
    max_sizes,
    steps,
    aspect_ratios,
    clip=True,
):
    """Default boxes of an SSD detector, in the reference code's order.

    Order: level, then row, then column, then box kind: the square of size
    ``s_k = min_size / input_size``, the square of size
    ``sqrt(s_k * max_size / input_size)``, then for each ratio ``r`` of the
    level the box ``(s_k sqrt(r), s_k / sqrt(r))`` followed by its transpose.
    Centres are at ``((j + 0.5) * step / input_size, (i + 0.5) * step /
    input_size)`` for row ``i`` and column ``j``.

    Args:
        feature_sizes: list of ints (square maps) or ``(height, width)`` pairs.
        input_size: int, side of the square input image in pixels.
        min_sizes: list of floats, ``s_k`` of each level in pixels.
        max_sizes: list of floats, ``s_k+1`` of each level in pixels.
        steps: list of floats (or ``(step_y, step_x)`` pairs), distance in
            pixels between neighbouring centres of each level.
        aspect_ratios: list (one per level) of lists of ratios ``r > 0``.
        clip: ``True``: clamp all four of (cx, cy, w, h) to [0, 1], as the reference
            code (ssd.caffe, ssd.pytorch); ``"size"``: clamp w and h only, as
            torchvision's ``DefaultBoxGenerator`` (centres of the last row and column
            of SSD300's 10 x 10 level lie at 1.013); ``False``: no clamping.

    Returns:
        ``np.float32`` array ``[A, 4]`` of normalised ``(cx, cy, w, h)``
        (Keras' ``"rel_center_xywh"``).

    Example:
    >>> from cfsam_keras.anchors import anchor_config
    >>> default_boxes(**anchor_config("voc")).shape
    (8732, 4)
    """
    levels = len(feature_sizes)
    for name, values in (
        ("min_sizes", min_sizes),
        ("max_sizes", max_sizes),
        ("steps", steps),
        ("aspect_ratios", aspect_ratios),
    ):
        if len(values) != levels:
            raise ValueError(
                f"{name} must have one entry per level ({levels} feature_sizes); "
                f"received {len(values)}: {values}."
            )
    if float(input_size) <= 0:
        raise ValueError(f"input_size must be positive; received {input_size!r}.")
    for k in range(levels):
        if min_sizes[k] <= 0 or max_sizes[k] <= 0:
            raise ValueError(
                f"min_sizes and max_sizes must be positive; level {k} has "
                f"min {min_sizes[k]!r}, max {max_sizes[k]!r}."
            )
        if any(r <= 0 for r in aspect_ratios[k]):
            raise ValueError(f"aspect_ratios must be positive; level {k} has {aspect_ratios[k]}.")

    per_level = []
    for k in range(levels):
        rows, cols = _pair(feature_sizes[k], "feature_sizes")
        step_y, step_x = _pair(steps[k], "steps")
        s_k = min_sizes[k] / input_size
        s_prime = np.sqrt(s_k * (max_sizes[k] / input_size))
        # Box kinds of one location, in order: (w, h).
        sizes = [(s_k, s_k), (s_prime, s_prime)]
        for r in aspect_ratios[k]:
            root = np.sqrt(r)
            sizes += [(s_k * root, s_k / root), (s_k / root, s_k * root)]
        sizes = np.asarray(sizes, dtype=np.float64)  # [K, 2]

        cy = (np.arange(rows, dtype=np.float64) + 0.5) * step_y / input_size
        cx = (np.arange(cols, dtype=np.float64) + 0.5) * step_x / input_size
        cy, cx = np.meshgrid(cy, cx, indexing="ij")  # row-major: row, then column
        centres = np.stack([cx, cy], axis=-1).reshape(-1, 1, 2)  # [H*W, 1, 2]
        centres = np.broadcast_to(centres, (rows * cols, len(sizes), 2))
        wh = np.broadcast_to(sizes, (rows * cols, len(sizes), 2))
        per_level.append(np.concatenate([centres, wh], axis=-1).reshape(-1, 4))

    boxes = np.concatenate(per_level, axis=0)
    if clip == "size":
        boxes[:, 2:] = np.clip(boxes[:, 2:], 0.0, 1.0)
    elif clip is True:
        boxes = np.clip(boxes, 0.0, 1.0)
    elif clip is not False:
        raise ValueError(f"clip must be True, False or 'size'; received {clip!r}.")
    return boxes.astype(np.float32)


def ssd300_default_boxes(preset="voc"):
    """The 8732 default boxes of SSD300.

    Args:
        preset: ``"voc"``, ``"coco"`` or ``"torchvision"`` (see `cfsam_keras.anchors.PRESETS`).

    Returns:
        ``np.float32`` array ``[8732, 4]`` of normalised ``(cx, cy, w, h)``.

    Example:
    >>> ssd300_default_boxes("coco").shape
    (8732, 4)
    """
    return default_boxes(**anchor_config(preset))


def _pair(value, name):
    if isinstance(value, (list, tuple, np.ndarray)):
        if len(value) != 2:
            raise ValueError(
                f"Each entry of {name} must be a number or a (height, width) "
                f"pair; received {value!r}."
            )
        return value[0], value[1]
    return value, value
