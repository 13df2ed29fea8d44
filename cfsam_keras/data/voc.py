"""PASCAL VOC (VOCdevkit folders with XML annotations)."""

import os
import re
import xml.etree.ElementTree as ET

import numpy as np

from cfsam_keras.class_lists import VOC_CLASSES
from cfsam_keras.data.image_check import boxes_in_view
from cfsam_keras.data.image_check import check_images
from cfsam_keras.data.image_check import converted_png
from cfsam_keras.data.report import FIXED
from cfsam_keras.data.report import SKIPPED
from cfsam_keras.data.report import InputReport
from cfsam_keras.data.source import Source
from cfsam_keras.data.source import clean_boxes
from cfsam_keras.data.source import records_from_lists


class VocSource(Source):
    """A `Source` read from a VOCdevkit; see `voc`. ``image_files``: id -> path."""


def _year_dir(devkit_dir, year):
    for candidate in (
        os.path.join(devkit_dir, f"VOC{year}"),
        os.path.join(devkit_dir, "VOCdevkit", f"VOC{year}"),
    ):
        if os.path.isdir(candidate):
            return candidate
    raise FileNotFoundError(
        f"VOC{year} not found under {devkit_dir} (expected {devkit_dir}/VOC{year}/)."
    )


def _image_ids(stems):
    """Integer image ids of a split's stems, one each, never shared.

    '000005' -> 5 and '2008_000002' -> 2008000002 when every stem of the split reads
    as a distinct number; otherwise (a stem such as 'abc', or two stems of one
    number) every image gets its 1-based line number.
    """
    digits = [stem.replace("_", "") for stem in stems]
    if all(re.fullmatch(r"\d{1,18}", d) for d in digits):
        ids = [int(d) for d in digits]
        if len(set(ids)) == len(ids):
            return ids
    return list(range(1, len(stems) + 1))


def voc(devkit_dir, year, split, class_names=VOC_CLASSES, strict=False, verify="header"):
    """Reads a PASCAL VOC split from ``VOCdevkit/VOC<year>/``.

    Reads ``ImageSets/Main/<split>.txt``, ``Annotations/<id>.xml`` and
    ``JPEGImages/<id>.jpg``. VOC's 1-based inclusive pixel indices become
    pixel-edge coordinates ``(xmin - 1, ymin - 1, xmax, ymax)`` before
    normalising. ``difficult`` is kept (evaluation ignores those boxes;
    training pipelines leave them out of targets by default).

    Odd input (one warning line, see `InputReport`): records with a missing or
    unreadable image or XML, an object without ``<bndbox>``, an inverted box
    (``xmax < xmin``), an unknown class name or a size that disagrees with the
    image are *skipped*; zero-area boxes are *dropped*; boxes outside the image
    are *clipped*; odd image modes are converted to RGB. ``strict=True`` raises
    `BadInputError` naming the file instead of skipping or dropping.

    Args:
        devkit_dir: the ``VOCdevkit`` folder (or its parent).
        year: "2007" or "2012" (any ``VOC<year>`` folder).
        split: "train", "val", "trainval" or "test".
        class_names: the class list (default the 20 VOC classes).
        strict: raise instead of skipping.
        verify: "header" (cheap check of each image) or "full" (decode each).

    Returns:
        A `VocSource`.

    Example:
    >>> train = concatenate(
    ...     voc("VOCdevkit", "2007", "trainval"), voc("VOCdevkit", "2012", "trainval")
    ... )
    """
    root = _year_dir(os.fspath(devkit_dir), year)
    split_file = os.path.join(root, "ImageSets", "Main", f"{split}.txt")
    if not os.path.isfile(split_file):
        raise FileNotFoundError(f"VOC split file not found: {split_file}")
    with open(split_file, encoding="utf-8") as f:
        ids = [line.split()[0] for line in f if line.strip()]
    name = f"voc({year}, {split})"
    report = InputReport(name, strict=strict)
    class_of = {c: i for i, c in enumerate(class_names)}

    paths = [os.path.join(root, "JPEGImages", f"{i}.jpg") for i in ids]
    infos = check_images(paths, verify=verify)
    out = {"paths": [], "encoded": [], "boxes": [], "classes": [], "ids": [], "difficult": []}
    for image_id, stem, path, info in zip(_image_ids(ids), ids, paths, infos):
        xml_path = os.path.join(root, "Annotations", f"{stem}.xml")
        if not info.ok:
            report.add(path, info.error, SKIPPED)
            continue
        parsed = _parse_xml(xml_path, class_of)
        if isinstance(parsed, str):
            report.add(xml_path, parsed, SKIPPED)
            continue
        size, xyxy, classes, difficult = parsed
        xyxy = boxes_in_view(info, xyxy, size)
        if xyxy is None:
            report.add(
                path,
                f"image is {info.width}x{info.height} but {stem}.xml says {size[0]}x{size[1]}",
                SKIPPED,
            )
            continue
        for fix in info.fixes:
            report.add(path, fix, FIXED)
        boxes, keep = clean_boxes(xml_path, xyxy, info.width, info.height, report)
        out["paths"].append(path)
        out["encoded"].append(converted_png(info))
        out["boxes"].append(boxes)
        out["classes"].append(classes[keep])
        out["difficult"].append(difficult[keep])
        out["ids"].append(image_id)

    source = VocSource(
        name,
        class_names,
        records_from_lists(
            out["paths"],
            out["boxes"],
            out["classes"],
            out["ids"],
            difficult=out["difficult"],
            encoded=out["encoded"],
        ),
        len(out["paths"]),
        report,
    )
    source.image_files = dict(zip(out["ids"], out["paths"]))
    report.log()
    return source


def _parse_xml(xml_path, class_of):
    """(size or None, xyxy pixel-edge [N,4], classes [N], difficult [N]) or why unusable."""
    if not os.path.isfile(xml_path):
        return "missing annotation file"
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as e:
        return f"unreadable XML ({e})"
    size = None
    size_node = root.find("size")
    if size_node is not None and size_node.findtext("width") and size_node.findtext("height"):
        try:
            size = (
                int(float(size_node.findtext("width"))),
                int(float(size_node.findtext("height"))),
            )
        except ValueError:
            return "unreadable <size>"
        if size[0] <= 0 or size[1] <= 0:
            size = None  # some VOC-style files write 0x0; trust the image instead
    xyxy, classes, difficult = [], [], []
    for k, obj in enumerate(root.findall("object")):
        cls = (obj.findtext("name") or "").strip()
        if cls not in class_of:
            return f"object {k} has unknown class name {cls!r}"
        box = obj.find("bndbox")
        if box is None:
            return f"object {k} ({cls}) has no <bndbox>"
        try:
            x0, y0, x1, y1 = (float(box.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax"))
        except (TypeError, ValueError):
            return f"object {k} ({cls}) has an incomplete or non-numeric <bndbox>"
        if x1 < x0 or y1 < y0:
            return (
                f"object {k} ({cls}) has an inverted box "
                f"(xmin={x0:g}, ymin={y0:g}, xmax={x1:g}, ymax={y1:g})"
            )
        xyxy.append([x0 - 1.0, y0 - 1.0, x1, y1])
        classes.append(class_of[cls])
        difficult.append(obj.findtext("difficult", "0").strip() == "1")
    return (
        size,
        np.asarray(xyxy, np.float64).reshape(-1, 4),
        np.asarray(classes, np.int32),
        np.asarray(difficult, bool),
    )
