"""A cheap check of image files before they enter a tf.data pipeline.

TensorFlow's decoder stops the whole pipeline on a file it cannot decode, and
after the fact it cannot say which file it was. So file-based sources check
every image when they are built: it exists, is not empty, has a header Pillow
recognises in a format TensorFlow decodes, and (JPEG, PNG) ends with its
end-of-image marker, which catches truncated files without decoding them.
``verify="full"`` decodes each image with Pillow instead (exact, slow).

BMP files whose pixels TensorFlow's decoder gets wrong (palette images, which it
reads as gray palette indices) or cannot read (1- and 4-bit), and images with an
EXIF orientation tag (which TensorFlow's decoders ignore), pass with
``convert=True``: their source holds them re-encoded by Pillow as upright RGB PNG
bytes (`converted_png`), so that the pipeline sees the pixels a viewer shows.
"""

import concurrent.futures
import io
import os

from PIL import Image

from cfsam_keras.data.orientation import exif_orientation
from cfsam_keras.data.orientation import swaps_sides
from cfsam_keras.data.orientation import upright
from cfsam_keras.data.orientation import upright_boxes

# Formats tf.io.decode_image reads, and the extensions that name them.
_TF_FORMATS = {
    "JPEG": (".jpg", ".jpeg", ".jpe"),
    "PNG": (".png",),
    "GIF": (".gif",),
    "BMP": (".bmp",),
}
_RGB_MODES = ("RGB",)
# BMP modes tf.io.decode_bmp reads as Pillow shows them (8-bit gray, 24- and 32-bit).
_TF_BMP_MODES = ("L", "RGB", "RGBA")


class ImageInfo:
    """Result of `check_image`: ``ok``, the (width, height), and what is odd.

    ``width`` and ``height`` are those of the image as displayed (after its EXIF
    ``orientation``, 1 to 8; `stored_size` is before it).
    ``error`` is None for a usable file, otherwise why it cannot be used.
    ``fixes`` lists the odd-but-readable properties (converted on decode).
    ``convert`` says the source must hold the image re-encoded (`converted_png`).
    """

    __slots__ = ("path", "width", "height", "error", "fixes", "convert", "orientation")

    def __init__(self, path, width=0, height=0, error=None, fixes=(), convert=False, orientation=1):
        self.path = path
        self.width = width
        self.height = height
        self.error = error
        self.fixes = tuple(fixes)
        self.convert = bool(convert)
        self.orientation = orientation

    @property
    def stored_size(self):
        """(width, height) of the stored pixels, before the EXIF orientation."""
        if swaps_sides(self.orientation):
            return self.height, self.width
        return self.width, self.height

    @property
    def ok(self):
        return self.error is None


def _tail(path, n=32):
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - n))
        return f.read()


def check_image(path, verify="header"):
    """Checks one image file cheaply (``verify="header"``) or fully (``"full"``).

    Args:
        path: the image file.
        verify: "header" (header + end marker) or "full" (Pillow decodes it).

    Returns:
        An `ImageInfo`.

    Example:
    >>> check_image("missing.jpg").error
    'missing file'
    """
    if verify not in ("header", "full"):
        raise ValueError(f"verify must be 'header' or 'full'; received {verify!r}.")
    if not os.path.isfile(path):
        return ImageInfo(path, error="missing file")
    if os.path.getsize(path) == 0:
        return ImageInfo(path, error="empty file (0 bytes)")
    try:
        with Image.open(path) as im:
            fmt, mode, (width, height) = im.format, im.mode, im.size
            orientation = exif_orientation(im)
            if verify == "full":
                im.load()
    except Exception as e:  # Pillow raises many types for unreadable files
        return ImageInfo(path, error=f"unreadable image ({type(e).__name__}: {e})")
    if fmt not in _TF_FORMATS:
        return ImageInfo(path, error=f"unsupported image format {fmt}")
    if width < 1 or height < 1:
        return ImageInfo(path, error=f"image has no pixels ({width}x{height})")
    tail = _tail(path).rstrip(b"\x00")
    if fmt == "JPEG" and not tail.endswith(b"\xff\xd9"):
        return ImageInfo(path, error="truncated JPEG (no end-of-image marker)")
    if fmt == "PNG" and b"IEND" not in tail:
        return ImageInfo(path, error="truncated PNG (no IEND chunk)")
    fixes = []
    if not path.lower().endswith(_TF_FORMATS[fmt]):
        fixes.append(
            f"{fmt} data under a {os.path.splitext(path)[1] or 'missing'} extension, "
            f"decoded as {fmt}"
        )
    convert = fmt == "BMP" and mode not in _TF_BMP_MODES
    if convert:
        fixes.append(f"{mode} BMP (which TensorFlow misreads) converted to an RGB PNG")
    elif mode not in _RGB_MODES:
        fixes.append(f"{mode} image converted to RGB")
    if orientation != 1:
        convert = True
        fixes.append(f"EXIF orientation {orientation}: held upright, as a viewer shows it")
        if swaps_sides(orientation):
            width, height = height, width
    return ImageInfo(path, width, height, fixes=fixes, convert=convert, orientation=orientation)


def converted_png(info):
    """The image of ``info``, upright, as RGB PNG bytes if ``info.convert``, else ``b""``."""
    if not info.convert:
        return b""
    with Image.open(info.path) as im:
        buffer = io.BytesIO()
        upright(im.convert("RGB"), info.orientation).save(buffer, "PNG")
    return buffer.getvalue()


def boxes_in_view(info, boxes, declared):
    """Absolute xyxy ``boxes`` of an annotation giving the image size ``declared``, upright.

    Boxes are taken as drawn on the image as displayed, unless the annotation's size is
    only that of the stored pixels (a 90-degree EXIF orientation): then they turn with
    the pixels.

    Returns:
        The boxes on the upright image, or None if ``declared`` (a (width, height) or
        None) is the size of neither.
    """
    if declared is None or declared == (info.width, info.height):
        return boxes
    if declared == info.stored_size:
        return upright_boxes(boxes, info.orientation, *info.stored_size)
    return None


def check_images(paths, verify="header", num_threads=8):
    """`check_image` over many files, in threads (the work is mostly I/O)."""
    paths = list(paths)
    if len(paths) < 64:
        return [check_image(p, verify) for p in paths]
    with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
        return list(pool.map(lambda p: check_image(p, verify), paths))
