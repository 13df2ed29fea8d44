"""Small on-disk datasets that tests write themselves (no binary fixtures)."""

import io
import json
import os
import struct

import numpy as np
from PIL import Image


def save_image(path, array, fmt="JPEG", mode=None):
    img = Image.fromarray(array)
    if mode:
        img = img.convert(mode)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img.save(path, format=fmt)
    return path


def rect_image(height, width, rects, seed=0):
    """Noise-free gray image with solid coloured rectangles (pixel xyxy)."""
    img = np.full((height, width, 3), 90, np.uint8)
    rng = np.random.default_rng(seed)
    for x0, y0, x1, y1 in rects:
        img[y0:y1, x0:x1] = rng.integers(150, 256, 3)
    return img


def write_coco(root, images, annotations, categories=((1, "cat"), (3, "dog"))):
    """images: list of (id, file_name, width, height); annotations: dicts."""
    data = {
        "images": [{"id": i, "file_name": f, "width": w, "height": h} for i, f, w, h in images],
        "annotations": [dict(a, id=a.get("id", k + 1)) for k, a in enumerate(annotations)],
        "categories": [{"id": i, "name": n} for i, n in categories],
    }
    path = os.path.join(root, "instances.json")
    with open(path, "w") as f:
        json.dump(data, f)
    return path


def write_voc(root, year, split, entries):
    """entries: list of (stem, image array or None, xml text or None)."""
    base = os.path.join(root, "VOCdevkit", f"VOC{year}")
    for sub in ("JPEGImages", "Annotations", os.path.join("ImageSets", "Main")):
        os.makedirs(os.path.join(base, sub), exist_ok=True)
    for stem, image, xml in entries:
        if image is not None:
            save_image(os.path.join(base, "JPEGImages", f"{stem}.jpg"), image)
        if xml is not None:
            with open(os.path.join(base, "Annotations", f"{stem}.xml"), "w") as f:
                f.write(xml)
    with open(os.path.join(base, "ImageSets", "Main", f"{split}.txt"), "w") as f:
        f.write("".join(f"{stem}\n" for stem, _, _ in entries))
    return os.path.join(root, "VOCdevkit")


def voc_xml(width, height, objects):
    """objects: list of (name, (xmin, ymin, xmax, ymax) or None, difficult)."""
    parts = [
        f"<annotation><size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
    ]
    for name, box, difficult in objects:
        bnd = ""
        if box is not None:
            bnd = (
                "<bndbox>"
                + "".join(f"<{t}>{v}</{t}>" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
                + "</bndbox>"
            )
        parts.append(
            f"<object><name>{name}</name><difficult>{int(difficult)}</difficult>{bnd}</object>"
        )
    parts.append("</annotation>")
    return "".join(parts)


def jpeg_bytes(array, mode=None):
    buf = io.BytesIO()
    img = Image.fromarray(array)
    (img.convert(mode) if mode else img).save(buf, format="JPEG")
    return buf.getvalue()


def broken_huffman_jpeg(path, seed=0):
    """A JPEG whose Huffman table is invalid: its header and end marker look fine."""
    buffer = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "JPEG")
    raw = bytearray(buffer.getvalue())
    table = raw.index(b"\xff\xc4")
    raw[table + 5 : table + 21] = b"\xff" * 16  # the code-length counts
    with open(path, "wb") as f:
        f.write(bytes(raw))


_T = Image.Transpose
# Stored pixels that each EXIF orientation tag turns back into the displayed image.
_STORED = {
    2: _T.FLIP_LEFT_RIGHT,
    3: _T.ROTATE_180,
    4: _T.FLIP_TOP_BOTTOM,
    5: _T.TRANSPOSE,
    6: _T.ROTATE_90,
    7: _T.TRANSVERSE,
    8: _T.ROTATE_270,
}


def oriented_bytes(displayed, orientation, fmt="PNG", big_endian=False):
    """JPEG or PNG bytes whose stored pixels and EXIF tag show ``displayed`` upright."""
    image = Image.fromarray(displayed)
    if orientation in _STORED:
        image = image.transpose(_STORED[orientation])
    order, e = (b"MM", ">") if big_endian else (b"II", "<")
    tiff = (
        order
        + struct.pack(f"{e}HIH", 42, 8, 1)
        + struct.pack(f"{e}HHIHH", 0x0112, 3, 1, orientation, 0)
        + struct.pack(f"{e}I", 0)
    )
    buffer = io.BytesIO()
    image.save(buffer, fmt, exif=b"Exif\x00\x00" + tiff, quality=95)
    return buffer.getvalue()
