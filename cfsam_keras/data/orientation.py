"""EXIF orientation: every path sees an image as a viewer shows it.

A JPEG or PNG may store its pixels sideways and say, in its EXIF orientation tag
(0x0112, values 1 to 8), how to turn them for display. Every path applies the tag
the same way, so one file gives one answer everywhere:

- file-based sources (`coco`, `voc`): `image_check` finds the tag and the source
  holds the image upright (`upright`, as an RGB PNG); boxes annotated on the stored
  pixels are turned with it (`upright_boxes`);
- ``cfsam-keras predict``: `upright` on the Pillow image;
- the ``serving_bytes`` signature: `decode_upright`, in the TensorFlow graph.

A PNG's tag is read from an ``eXIf`` chunk before the image data, where the PNG
specification puts it.
"""

import numpy as np
import tensorflow as tf
from PIL import Image

ORIENTATION_TAG = 0x0112
_T = Image.Transpose
# Pillow's transposes that turn stored pixels into the displayed image, per tag value.
_TRANSPOSES = {
    2: _T.FLIP_LEFT_RIGHT,
    3: _T.ROTATE_180,
    4: _T.FLIP_TOP_BOTTOM,
    5: _T.TRANSPOSE,
    6: _T.ROTATE_270,
    7: _T.TRANSVERSE,
    8: _T.ROTATE_90,
}
_MAX_JPEG_SEGMENTS = 64
_MAX_PNG_CHUNKS = 4096
_MAX_IFD_ENTRIES = 256


def exif_orientation(image):
    """The orientation tag (1 to 8) of an open Pillow image; 1 if absent or invalid."""
    if image.format == "PNG":
        exif = Image.Exif()
        if image.info.get("exif"):
            exif.load(image.info["exif"])
    else:
        exif = image.getexif()
    value = exif.get(ORIENTATION_TAG, 1)
    return value if value in range(1, 9) else 1


def upright(image, orientation=None):
    """An open Pillow image turned as its orientation tag (or ``orientation``) says."""
    orientation = exif_orientation(image) if orientation is None else orientation
    return image.transpose(_TRANSPOSES[orientation]) if orientation in _TRANSPOSES else image


def swaps_sides(orientation):
    """True for the tags (5 to 8) whose displayed image is the stored one turned 90 degrees."""
    return orientation >= 5


def upright_boxes(boxes, orientation, width, height):
    """Absolute xyxy boxes on the stored ``width`` x ``height`` pixels, in the displayed frame."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    x0, y0, x1, y1 = b.T
    w, h = float(width), float(height)
    corners = {
        1: (x0, y0, x1, y1),
        2: (w - x1, y0, w - x0, y1),
        3: (w - x1, h - y1, w - x0, h - y0),
        4: (x0, h - y1, x1, h - y0),
        5: (y0, x0, y1, x1),
        6: (h - y1, x0, h - y0, x1),
        7: (h - y1, w - x1, h - y0, w - x0),
        8: (y0, w - x1, y1, w - x0),
    }[orientation]
    return np.stack(corners, axis=-1)


# --- The same in the TensorFlow graph (serving_bytes). ---


def _reader(data):
    """``text(pos, n)``, ``read(pos, n)``: n bytes at pos (as int64 for ``read``).

    Positions past the end read zeros, so a bad offset in a file is never out of range.
    """
    size = tf.cast(tf.strings.length(data), tf.int64)
    padded = data + tf.constant(b"\x00" * 16)

    def text(pos, n):
        pos = tf.clip_by_value(tf.cast(pos, tf.int64), 0, size)  # before the int32 cast
        return tf.strings.substr(padded, tf.cast(pos, tf.int32), n)

    def read(pos, n):
        return tf.reshape(tf.cast(tf.io.decode_raw(text(pos, n), tf.uint8), tf.int64), [n])

    return text, read, size


def _big_endian(b):
    value = tf.constant(0, tf.int64)
    for i in range(b.shape[0]):
        value = value * 256 + b[i]
    return value


def _tiff_offset(text, read, size):
    """Where the TIFF block of a JPEG's APP1 Exif segment or PNG's eXIf chunk starts, or -1."""
    is_png = tf.equal(text(0, 8), b"\x89PNG\r\n\x1a\n")
    start = tf.where(is_png, tf.constant(8, tf.int64), tf.constant(2, tf.int64))
    limit = tf.where(is_png, _MAX_PNG_CHUNKS, _MAX_JPEG_SEGMENTS)

    def step(i, pos, found):
        head = read(pos, 10)
        # PNG chunk: length (4), type (4), data, CRC (4).
        png_type = text(pos + 4, 4)
        png_next = pos + 12 + _big_endian(head[0:4])
        png_found = tf.where(tf.equal(png_type, b"eXIf"), pos + 8, -1)
        png_stop = tf.logical_or(tf.equal(png_type, b"IDAT"), tf.equal(png_type, b"IEND"))
        # JPEG segment: 0xFF, marker, length (2, counting itself), payload.
        marker = head[1]
        jpeg_next = pos + 2 + _big_endian(head[2:4])
        exif_id = text(pos + 4, 6)
        is_exif = tf.logical_and(tf.equal(marker, 0xE1), tf.equal(exif_id, b"Exif\x00\x00"))
        jpeg_found = tf.where(is_exif, pos + 10, -1)
        jpeg_stop = tf.logical_or(tf.not_equal(head[0], 0xFF), tf.equal(marker, 0xDA))
        found = tf.where(is_png, png_found, jpeg_found)
        stop = tf.where(is_png, png_stop, jpeg_stop)
        nxt = tf.where(is_png, png_next, jpeg_next)
        return i + 1, tf.where(tf.logical_or(stop, nxt <= pos), size, nxt), found

    def going(i, pos, found):
        return tf.logical_and(tf.logical_and(i < limit, found < 0), pos + 8 <= size)

    _, _, found = tf.while_loop(going, step, (tf.constant(0), start, tf.constant(-1, tf.int64)))
    return found


def encoded_orientation(data):
    """The EXIF orientation tag (1 to 8) of encoded JPEG or PNG bytes, in the graph; 1 if none."""
    text, read, size = _reader(data)
    tiff = _tiff_offset(text, read, size)
    little = tf.equal(text(tiff, 2), b"II")

    def number(pos, n):
        b = read(pos, n)
        return _big_endian(tf.where(little, tf.reverse(b, [0]), b))

    ifd = tiff + number(tiff + 4, 4)
    count = tf.minimum(number(ifd, 2), _MAX_IFD_ENTRIES)

    def step(k, value):
        entry = ifd + 2 + 12 * k
        hit = tf.equal(number(entry, 2), ORIENTATION_TAG)
        return k + 1, tf.where(hit, number(entry + 8, 2), value)

    _, value = tf.while_loop(
        lambda k, value: tf.logical_and(k < count, value < 0),
        step,
        (tf.constant(0, tf.int64), tf.constant(-1, tf.int64)),
    )
    valid = tf.logical_and(tiff >= 0, tf.logical_and(value >= 1, value <= 8))
    return tf.where(valid, value, 1)


def orient(image, orientation):
    """A decoded [H, W, C] image turned as the tag value ``orientation`` says (graph)."""
    branches = [
        lambda: image,
        lambda: tf.image.flip_left_right(image),
        lambda: tf.image.rot90(image, 2),
        lambda: tf.image.flip_up_down(image),
        lambda: tf.image.transpose(image),
        lambda: tf.image.rot90(image, 3),
        lambda: tf.image.rot90(tf.image.transpose(image), 2),
        lambda: tf.image.rot90(image, 1),
    ]
    return tf.switch_case(tf.cast(orientation - 1, tf.int32), branches)


def decode_upright(data):
    """Decodes JPEG or PNG bytes to uint8 RGB [H, W, 3] as a viewer shows them (graph)."""
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    image = orient(image, encoded_orientation(data))
    image.set_shape([None, None, 3])
    return image
