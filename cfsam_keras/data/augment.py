"""SSD's training augmentation, in TensorFlow ops with per-example stateless seeds.

Follows the reference SSD (ssd.caffe's ``ssd_pascal.py`` samplers and
ssd.pytorch's ``augmentations.py``): photometric distortion, expand (zoom out
up to 4x onto a canvas filled with the dataset mean), min-IoU random crop,
horizontal flip, resize. Two implementation choices keep it fast:

- the geometric steps (expand, crop, flip, resize) only move a whole-pixel
  *window*; the part of the decoded image inside it is resized once, straight
  to the output size, and padded with the mean, so the up-to-16x larger
  expanded canvas is never built;
- the photometric distortion is per pixel, so it runs on the output pixels that
  came from the image (the mean fill stays untouched, as in the reference,
  where distortion happens before expand).
All randomness comes from ``seed`` (shape [2]), so results are reproducible
whatever the tf.data parallelism.
"""

import numpy as np
import tensorflow as tf

#: SSD's fill value for expand: the (R, G, B) ImageNet mean of the reference code.
SSD_MEAN_RGB = (123.0, 117.0, 104.0)

#: Crop sampler options: None = the whole image; a float = the minimum IoU that
#: some box must reach; 0.0 = no IoU constraint (ssd.caffe's
#: ``max_jaccard_overlap: 1.0`` sampler, ssd.pytorch's ``(None, None)``).
CROP_MIN_IOUS = (None, 0.1, 0.3, 0.5, 0.7, 0.9, 0.0)


def _uniform(seed, shape=(), minval=0.0, maxval=1.0):
    return tf.random.stateless_uniform(shape, seed, minval=minval, maxval=maxval, dtype=tf.float32)


def _coin(seed, p=0.5):
    return _uniform(seed) < p


def photometric_distortion(image, seed, valid=None):
    """SSD's photometric distortion of a float32 RGB image in [0, 255].

    Each with probability 0.5: brightness ``+U(-32, 32)``; contrast
    ``*U(0.5, 1.5)`` (before or after the HSV steps, chosen at random);
    saturation ``*U(0.5, 1.5)``; hue ``+U(-18, 18)`` degrees. The channel
    order stays RGB (ssd.pytorch's random channel swap is not used). Values
    are clipped to [0, 255] before the saturation and hue steps and at the end
    (ssd.pytorch clips nowhere; the HSV steps need values in range).

    Args:
        image: float32 ``[H, W, 3]`` in [0, 255].
        seed: int ``[2]`` stateless seed.
        valid: optional bool ``[H, W, 1]``; pixels outside keep their value.

    Returns:
        float32 ``[H, W, 3]`` in [0, 255].

    Example:
    >>> out = photometric_distortion(tf.fill([8, 8, 3], 100.0), seed=[1, 2])
    """
    image = tf.convert_to_tensor(image, tf.float32)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=9)
    one = tf.constant(1.0)
    delta = tf.where(_coin(seeds[0]), _uniform(seeds[1], minval=-32.0, maxval=32.0), 0.0)
    alpha = tf.where(_coin(seeds[2]), _uniform(seeds[3], minval=0.5, maxval=1.5), one)
    contrast_first = _coin(seeds[4])
    sat = tf.where(_coin(seeds[5]), _uniform(seeds[6], minval=0.5, maxval=1.5), one)
    hue = tf.where(_coin(seeds[7]), _uniform(seeds[8], minval=-18.0, maxval=18.0), 0.0)

    # brightness, then contrast if it comes first: one affine pass (skipped
    # when it is the identity: x * 1 + 0 is x exactly)
    first = tf.where(contrast_first, alpha, one)
    identity = tf.logical_and(tf.equal(first, 1.0), tf.equal(delta, 0.0))
    out = tf.cond(identity, lambda: image, lambda: image * first + delta * first)
    out = tf.clip_by_value(out, 0.0, 255.0)
    out = tf.cond(tf.not_equal(sat, 1.0), lambda: _scale_saturation(out, sat), lambda: out)
    # TF's fused HSV kernel (scale-invariant, so it works on 0..255 directly)
    out = tf.cond(
        tf.not_equal(hue, 0.0), lambda: tf.image.adjust_hue(out, hue / 360.0), lambda: out
    )
    last = tf.where(contrast_first, one, alpha)
    out = tf.cond(tf.equal(last, 1.0), lambda: out, lambda: out * last)
    out = tf.clip_by_value(out, 0.0, 255.0)
    if valid is not None:
        out = tf.where(valid, out, image)
    return out


def _scale_saturation(image, factor):
    """HSV saturation times ``factor`` (clipped to 1), computed in RGB.

    With hue and value fixed, every channel is ``max - S * max * g(hue)``, so
    scaling S scales each channel's distance to the pixel's max channel; the
    result equals ``tf.image.adjust_saturation`` without the HSV round trip.
    Runs on channel planes (``[3, H, W]``): per-channel broadcasts and
    reductions over the 3-wide last axis are several times slower in
    TensorFlow's CPU kernels than the two transposes.
    """
    red, green, blue = tf.unstack(tf.transpose(image, [2, 0, 1]))
    high = tf.maximum(tf.maximum(red, green), blue)
    low = tf.minimum(tf.minimum(red, green), blue)
    factor = tf.minimum(factor, tf.math.divide_no_nan(high, high - low))
    factor = tf.where(high > low, factor, 1.0)
    planes = [high - factor * (high - plane) for plane in (red, green, blue)]
    return tf.transpose(tf.stack(planes), [1, 2, 0])


def _box_iou(boxes, windows):
    """IoU [T, N] of absolute xyxy windows [T, 4] with boxes [N, 4]."""
    b = boxes[None, :, :]
    w = windows[:, None, :]
    iw = tf.maximum(tf.minimum(b[..., 2], w[..., 2]) - tf.maximum(b[..., 0], w[..., 0]), 0.0)
    ih = tf.maximum(tf.minimum(b[..., 3], w[..., 3]) - tf.maximum(b[..., 1], w[..., 1]), 0.0)
    inter = iw * ih
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    area_w = (w[..., 2] - w[..., 0]) * (w[..., 3] - w[..., 1])
    return inter / tf.maximum(area_b + area_w - inter, 1e-12)


def sample_expand(height, width, seed, max_ratio=4.0, probability=0.5):
    """SSD's expand (zoom out): the canvas size and where the image sits on it.

    With ``probability``, a canvas ``ratio ~ U(1, max_ratio)`` times the image
    is drawn and the image placed at a uniform random offset.

    Args:
        height, width: image size (scalars).
        seed: int ``[2]`` stateless seed.

    Returns:
        ``(canvas_h, canvas_w, top, left)`` float32 scalars in pixels.
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=4)
    h = tf.cast(height, tf.float32)
    w = tf.cast(width, tf.float32)
    ratio = tf.where(
        _coin(seeds[0], probability), _uniform(seeds[1], minval=1.0, maxval=max_ratio), 1.0
    )
    canvas_h, canvas_w = tf.floor(h * ratio), tf.floor(w * ratio)
    top = tf.floor(_uniform(seeds[2]) * (canvas_h - h))
    left = tf.floor(_uniform(seeds[3]) * (canvas_w - w))
    return canvas_h, canvas_w, top, left


def sample_min_iou_crop(
    canvas_h,
    canvas_w,
    boxes,
    seed,
    min_ious=CROP_MIN_IOUS,
    trials=50,
    min_scale=0.3,
    aspect_range=(0.5, 2.0),
):
    """SSD's min-IoU crop sampler: a window on the canvas and the boxes it keeps.

    One option of ``min_ious`` is drawn uniformly. ``None`` keeps the whole
    canvas. Otherwise ``trials`` windows are drawn (sides ``U(min_scale, 1)``
    times the canvas sides, height/width ratio within ``aspect_range``); the
    first is accepted where *some* box has IoU >= the option's minimum (ssd.caffe's
    ``SatisfySampleConstraint``) and at least one box centre lies inside it.
    If no trial passes, the whole canvas is kept (ssd.caffe). An image without
    boxes takes the first window of valid aspect ratio.

    Args:
        canvas_h, canvas_w: canvas size in pixels (float32 scalars).
        boxes: float32 ``[N, 4]`` absolute xyxy on the canvas.
        seed: int ``[2]`` stateless seed.

    Returns:
        ``(window, keep)``: float32 ``[4]`` absolute xyxy window, bool ``[N]``
        boxes whose centre lies inside the window (all True for the whole canvas).
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=6)
    options = tf.constant([-1.0 if m is None else float(m) for m in min_ious])
    option = options[tf.random.stateless_uniform([], seeds[0], 0, len(min_ious), dtype=tf.int32)]
    w = _uniform(seeds[1], [trials], min_scale, 1.0) * canvas_w
    h = _uniform(seeds[2], [trials], min_scale, 1.0) * canvas_h
    left = _uniform(seeds[3], [trials]) * (canvas_w - w)
    top = _uniform(seeds[4], [trials]) * (canvas_h - h)
    # whole-pixel windows, as ssd.pytorch's int(left), int(top), int(left + w), int(top + h)
    windows = tf.floor(tf.stack([left, top, left + w, top + h], axis=1))
    windows = tf.maximum(windows, tf.concat([windows[:, :2] * 0.0, windows[:, :2] + 1.0], axis=1))
    ok = (h / w >= aspect_range[0]) & (h / w <= aspect_range[1])

    has_boxes = tf.shape(boxes)[0] > 0
    iou = _box_iou(boxes, windows)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    inside = (
        (centres[None, :, 0] > windows[:, None, 0])
        & (centres[None, :, 0] < windows[:, None, 2])
        & (centres[None, :, 1] > windows[:, None, 1])
        & (centres[None, :, 1] < windows[:, None, 3])
    )
    iou_ok = tf.reduce_any(iou >= option, axis=1)
    ok = ok & tf.logical_or(tf.logical_not(has_boxes), iou_ok & tf.reduce_any(inside, axis=1))
    found = tf.logical_and(option >= 0.0, tf.reduce_any(ok))
    first = tf.argmax(tf.cast(ok, tf.int32), output_type=tf.int32)
    whole = tf.stack([0.0, 0.0, canvas_w, canvas_h])
    window = tf.where(found, windows[first], whole)
    keep = tf.where(found, inside[first], tf.ones_like(inside[0]))
    return window, keep


def _window_geometry(height, width, window, size):
    """Where a whole-pixel window meets the image, and where that goes in the output.

    Returns ``(iy0, ix0, ih, iw, oh, ow, paddings, nonempty)``: the image
    rectangle to cut, its size in the output, and the output paddings.
    """
    out_h, out_w = size
    h, w = tf.cast(height, tf.int32), tf.cast(width, tf.int32)
    x0, y0, x1, y1 = tf.unstack(tf.cast(tf.round(tf.cast(window, tf.float32)), tf.int32))
    ix0, iy0 = tf.clip_by_value(x0, 0, w), tf.clip_by_value(y0, 0, h)
    ix1, iy1 = tf.clip_by_value(x1, 0, w), tf.clip_by_value(y1, 0, h)

    def to_out(v, lo, hi, n):
        return tf.cast(
            tf.round(tf.cast(v - lo, tf.float32) * n / tf.cast(tf.maximum(hi - lo, 1), tf.float32)),
            tf.int32,
        )

    ox0, ox1 = to_out(ix0, x0, x1, out_w), to_out(ix1, x0, x1, out_w)
    oy0, oy1 = to_out(iy0, y0, y1, out_h), to_out(iy1, y0, y1, out_h)
    nonempty = (ix1 > ix0) & (iy1 > iy0) & (ox1 > ox0) & (oy1 > oy0)
    zero = tf.constant(0, tf.int32)
    ox0, ox1, oy0, oy1 = (tf.where(nonempty, v, zero) for v in (ox0, ox1, oy0, oy1))
    paddings = tf.stack(
        [tf.stack([oy0, out_h - oy1]), tf.stack([ox0, out_w - ox1]), tf.zeros([2], tf.int32)]
    )
    return iy0, ix0, iy1 - iy0, ix1 - ix0, oy1 - oy0, ox1 - ox0, paddings, nonempty


def _window_part(image, window, size, read_rect=None):
    """The image part of a whole-pixel window, resized; and where it goes in the output.

    ``read_rect(y, x, h, w)`` returns that rectangle of the image (default:
    slice ``image``; the pipelines pass a JPEG crop-decoder so only the
    window is decoded, in which case ``image`` is the ``[height, width]`` shape).

    Returns ``(part float32 [ph, pw, 3], paddings [3, 2] int32)``; padding
    ``part`` by ``paddings`` gives the ``size`` output.
    """
    if read_rect is None:
        shape = tf.shape(image)[:2]
        read_rect = lambda y, x, h, w: image[y : y + h, x : x + w]  # noqa: E731
    else:
        shape = image
    iy0, ix0, ih, iw, oh, ow, paddings, nonempty = _window_geometry(
        shape[0], shape[1], window, size
    )
    part = tf.cond(
        nonempty,
        lambda: tf.image.resize(read_rect(iy0, ix0, ih, iw), tf.stack([oh, ow])),
        lambda: tf.zeros([0, 0, 3], tf.float32),
    )
    return part, paddings


def _place(part, paddings, size, flip, fill_value):
    """Pads ``part`` with ``fill_value`` to ``size``, mirrored when ``flip``.

    The fill comes from slices of a constant canvas joined to ``part`` by
    concatenation (copies only): ``tf.pad`` pads with a scalar, and padding
    ``part - fill`` then adding ``fill`` back costs two broadcasts over the
    whole image.
    """
    fill = np.asarray(fill_value, np.float32)
    canvas = tf.constant(np.broadcast_to(fill, (size[0], size[1], fill.size)).copy())
    left, right = paddings[1, 0], paddings[1, 1]
    left, right = tf.where(flip, right, left), tf.where(flip, left, right)
    part = tf.cond(tf.convert_to_tensor(flip), lambda: tf.reverse(part, [1]), lambda: part)
    rows = tf.shape(part)[0]
    middle = tf.concat([canvas[:rows, :left], part, canvas[:rows, :right]], axis=1)
    out = tf.concat([canvas[: paddings[0, 0]], middle, canvas[: paddings[0, 1]]], axis=0)
    out.set_shape([size[0], size[1], fill.size])
    return out


def crop_resize_window(image, window, size, flip=False, fill_value=SSD_MEAN_RGB):
    """Resizes a whole-pixel window of an image (which may extend past it) to ``size``.

    The window ``(x0, y0, x1, y1)`` (pixel edges, rounded to whole pixels) maps
    onto the ``size`` output; the part of it that lies on the image is cut out
    and resized once with ``tf.image.resize`` (bilinear), the rest is
    ``fill_value``. Where the window reaches past the image, the image's edge
    in the output is rounded to the nearest output pixel.

    Args:
        image: ``[H, W, 3]`` image (any real dtype).
        window: ``[4]`` absolute xyxy window in pixels.
        size: output side, or ``(height, width)``.
        flip: bool scalar, mirror the output horizontally.
        fill_value: RGB fill outside the image.

    Returns:
        ``(float32 [h, w, 3] image, bool [h, w, 1] mask of pixels from the image)``.

    Example:
    >>> out, valid = crop_resize_window(image, [-20, 0, 180, 100], 300)
    """
    size = (size, size) if isinstance(size, int) else tuple(size)
    part, paddings = _window_part(image, window, size)
    out = _place(part, paddings, size, flip, fill_value)
    valid = _place(tf.ones_like(part[..., :1]), paddings, size, flip, (0.0,)) > 0.5
    valid.set_shape([size[0], size[1], 1])
    return out, valid


def ssd_augment(
    image,
    boxes,
    seed,
    size,
    fill_value=SSD_MEAN_RGB,
    max_expand=4.0,
    photometric=True,
    read_rect=None,
):
    """The full SSD training augmentation of one example.

    Args:
        image: uint8 or float ``[H, W, 3]`` RGB image in [0, 255].
        boxes: float32 ``[N, 4]`` rel_xyxy boxes.
        seed: int ``[2]`` stateless seed.
        size: output side (int).
        fill_value: RGB fill of the expanded canvas (the dataset mean).
        max_expand: largest expand ratio (1 disables expand).
        photometric: apply `photometric_distortion`.
        read_rect: optional ``read_rect(y, x, h, w) -> [h, w, 3]`` reading a
            rectangle of a still-encoded image; ``image`` is then its
            ``[height, width]`` (the pipelines use it to decode only the
            crop window of JPEGs).

    Returns:
        ``(image float32 [size, size, 3] in [0, 255], boxes float32 [K, 4]
        rel_xyxy, keep bool [N])``: ``keep`` marks the input boxes that
        survive (centre inside the crop, non-zero area), in order, so callers
        can gather their classes.

    Example:
    >>> image, boxes, keep = ssd_augment(image, boxes, seed=[0, 7], size=300)
    >>> classes = tf.boolean_mask(classes, keep)
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=4)
    boxes = tf.reshape(tf.cast(boxes, tf.float32), [-1, 4])
    shape = tf.cast(image if read_rect is not None else tf.shape(image)[:2], tf.float32)
    h, w = shape[0], shape[1]
    canvas_h, canvas_w, top, left = sample_expand(h, w, seeds[0], max_expand)
    scale = tf.stack([w, h, w, h])
    offset = tf.stack([left, top, left, top])
    on_canvas = boxes * scale + offset
    window, keep = sample_min_iou_crop(canvas_h, canvas_w, on_canvas, seeds[1])
    x0, y0, x1, y1 = tf.unstack(window)
    kept = tf.boolean_mask(on_canvas, keep)
    kept = tf.stack(
        [
            (tf.clip_by_value(kept[:, 0], x0, x1) - x0) / (x1 - x0),
            (tf.clip_by_value(kept[:, 1], y0, y1) - y0) / (y1 - y0),
            (tf.clip_by_value(kept[:, 2], x0, x1) - x0) / (x1 - x0),
            (tf.clip_by_value(kept[:, 3], y0, y1) - y0) / (y1 - y0),
        ],
        axis=1,
    )
    flip = _coin(seeds[2])
    kept = tf.where(
        flip, tf.stack([1.0 - kept[:, 2], kept[:, 1], 1.0 - kept[:, 0], kept[:, 3]], axis=1), kept
    )
    kept = tf.clip_by_value(kept, 0.0, 1.0)
    nonzero = (kept[:, 2] > kept[:, 0]) & (kept[:, 3] > kept[:, 1])
    keep_idx = tf.boolean_mask(tf.where(keep)[:, 0], nonzero)
    keep = tf.scatter_nd(
        keep_idx[:, None], tf.ones_like(keep_idx, tf.bool), tf.shape(keep, out_type=tf.int64)
    )
    size = (int(size), int(size))
    part, paddings = _window_part(image, window - offset, size, read_rect)
    if photometric:  # only on pixels from the image: the mean fill stays as it is
        part = photometric_distortion(part, seeds[3])
    out = _place(part, paddings, size, flip, fill_value)
    return out, tf.boolean_mask(kept, nonzero), keep
