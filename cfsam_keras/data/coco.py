"""COCO-format detection datasets (annotation JSON + image folder), via pycocotools."""

import contextlib
import io
import json
import os

import numpy as np
from pycocotools.coco import COCO

from cfsam_keras.data.image_check import boxes_in_view
from cfsam_keras.data.image_check import check_images
from cfsam_keras.data.image_check import converted_png
from cfsam_keras.data.report import DROPPED
from cfsam_keras.data.report import FIXED
from cfsam_keras.data.report import SKIPPED
from cfsam_keras.data.report import InputReport
from cfsam_keras.data.source import Source
from cfsam_keras.data.source import clean_boxes
from cfsam_keras.data.source import records_from_lists


class CocoSource(Source):
    """A `Source` read from a COCO annotation file; see `coco`.

    Extra attributes, for COCO scoring with the original ids:
        annotation_file: path of the JSON file.
        image_dir: the image folder.
        category_ids: list, contiguous class index -> original COCO category id.
        coco: the ``pycocotools.coco.COCO`` object of the annotation file.
        image_files: dict, image id -> image path (usable images only).
    """


def _load_coco(annotation_file):
    if not os.path.isfile(annotation_file):
        raise FileNotFoundError(f"COCO annotation file not found: {annotation_file}")
    try:
        with open(annotation_file, encoding="utf-8") as f:
            dataset = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{annotation_file}: not a valid JSON file ({e}).") from None
    _check_structure(annotation_file, dataset)
    for ann in dataset["annotations"]:
        # pycocotools' evaluation reads both; many hand-written files leave them out.
        ann.setdefault("iscrowd", 0)
        bbox = ann.get("bbox")
        if "area" not in ann and isinstance(bbox, list) and len(bbox) == 4:
            if all(isinstance(v, (int, float)) for v in bbox):
                ann["area"] = float(bbox[2]) * float(bbox[3])
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco.createIndex()
    return coco


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _check_structure(annotation_file, dataset):
    """One-line ValueErrors for what would otherwise mislabel images or raise deep inside."""

    def fail(message):
        raise ValueError(f"{annotation_file}: {message}")

    if not isinstance(dataset, dict):
        fail(f"the top level is a JSON {type(dataset).__name__}, not an object (not a COCO file)")
    for key in ("images", "annotations", "categories"):
        if not isinstance(dataset.get(key), list):
            fail(f"missing or invalid '{key}' list (not a COCO detection file)")
        if not all(isinstance(entry, dict) for entry in dataset[key]):
            fail(f"every entry of '{key}' must be a JSON object")
    if not dataset["images"]:
        fail("the 'images' list is empty")
    files = {}
    for i, image in enumerate(dataset["images"]):
        if not _is_int(image.get("id")):
            fail(f"images[{i}] has id {image.get('id')!r}; image ids must be integers")
        if not isinstance(image.get("file_name"), str) or not image["file_name"]:
            fail(f"images[{i}] (id {image['id']}) has no 'file_name'")
        if image["id"] in files:
            fail(
                f"image id {image['id']} is used twice ({files[image['id']]} and "
                f"{image['file_name']})"
            )
        files[image["id"]] = image["file_name"]
    names = {}
    for i, category in enumerate(dataset["categories"]):
        if not _is_int(category.get("id")):
            fail(f"categories[{i}] has id {category.get('id')!r}; category ids must be integers")
        if category["id"] in names:
            fail(f"category id {category['id']} is used twice")
        names[category["id"]] = category.get("name")


def coco(annotation_file, image_dir, strict=False, verify="header"):
    """Reads a COCO-format detection dataset.

    Category ids are mapped to contiguous classes ``0..C-1`` in increasing id
    order (``source.category_ids`` maps back). Crowd annotations are kept
    with ``is_crowd=True`` (training pipelines leave them out of targets).
    Images without annotations are kept (valid negatives).

    Odd input is handled as follows (`InputReport`, logged as one line):
    images that are missing, empty, truncated or unreadable, whose size differs
    from the JSON, or with an annotation that has no usable ``bbox``, a
    negative width/height or an unknown category are *skipped*; zero-area
    boxes and annotations of unknown images are *dropped*; boxes partly
    outside the image are *clipped*; grayscale/CMYK/RGBA/misnamed files are
    decoded to RGB (*fixed*). With ``strict=True`` anything skipped or dropped
    raises `BadInputError` naming the file.

    Args:
        annotation_file: the ``instances_*.json`` file.
        image_dir: folder the ``file_name`` entries are relative to.
        strict: raise instead of skipping.
        verify: "header" (cheap check of each image) or "full" (decode each).

    Returns:
        A `CocoSource`.

    Example:
    >>> source = coco("data/instances_val.json", "data/val")
    >>> source.class_names, source.category_ids
    """
    annotation_file = os.fspath(annotation_file)
    image_dir = os.fspath(image_dir)
    if not os.path.isdir(image_dir):
        raise FileNotFoundError(f"COCO image folder not found: {image_dir}")
    name = f"coco({os.path.basename(annotation_file)})"
    report = InputReport(name, strict=strict)
    gt = _load_coco(annotation_file)

    categories = sorted(gt.dataset["categories"], key=lambda c: c["id"])
    category_ids = [int(c["id"]) for c in categories]
    class_of = {cid: i for i, cid in enumerate(category_ids)}
    images = sorted(gt.dataset["images"], key=lambda im: im["id"])
    known_ids = {im["id"] for im in images}
    for ann in gt.dataset["annotations"]:
        if ann.get("image_id") not in known_ids:
            report.add(
                annotation_file,
                f"annotation {ann.get('id')} points at unknown image id {ann.get('image_id')}",
                DROPPED,
            )

    paths = [os.path.join(image_dir, im["file_name"]) for im in images]
    infos = check_images(paths, verify=verify)
    out = {"paths": [], "encoded": [], "boxes": [], "classes": [], "ids": [], "crowd": []}
    for im, path, info in zip(images, paths, infos):
        if not info.ok:
            report.add(path, info.error, SKIPPED)
            continue
        parsed = _parse_annotations(gt.imgToAnns.get(im["id"], []), class_of)
        if isinstance(parsed, str):
            report.add(path, parsed, SKIPPED)
            continue
        xyxy, classes, crowd = parsed
        declared = (im.get("width"), im.get("height"))
        xyxy = boxes_in_view(info, xyxy, None if declared == (None, None) else declared)
        if xyxy is None:
            report.add(
                path,
                f"image is {info.width}x{info.height} but "
                f"{os.path.basename(annotation_file)} says {declared[0]}x{declared[1]}",
                SKIPPED,
            )
            continue
        if declared not in ((None, None), (info.width, info.height)):
            _set_upright(im, gt.imgToAnns.get(im["id"], []), xyxy, info)
        for fix in info.fixes:
            report.add(path, fix, FIXED)
        boxes, keep = clean_boxes(path, xyxy, info.width, info.height, report)
        out["paths"].append(path)
        out["encoded"].append(converted_png(info))
        out["boxes"].append(boxes)
        out["classes"].append(classes[keep])
        out["crowd"].append(crowd[keep])
        out["ids"].append(int(im["id"]))

    source = CocoSource(
        name,
        [str(c.get("name", c["id"])) for c in categories],
        records_from_lists(
            out["paths"],
            out["boxes"],
            out["classes"],
            out["ids"],
            is_crowd=out["crowd"],
            encoded=out["encoded"],
        ),
        len(out["paths"]),
        report,
    )
    source.annotation_file = annotation_file
    source.image_dir = image_dir
    source.category_ids = category_ids
    source.coco = gt
    source.image_files = dict(zip(out["ids"], out["paths"]))
    report.log()
    return source


def _set_upright(image, anns, upright, info):
    """Writes one image's upright boxes into its ground truth (in place).

    ``upright`` holds the xyxy boxes of ``anns``, in their order, already turned by
    ``boxes_in_view``. The evaluation scores against these records, so they must be
    in the frame the model sees.
    """
    for ann, (x0, y0, x1, y1) in zip(anns, upright.tolist()):
        ann["bbox"] = [x0, y0, x1 - x0, y1 - y0]
    image["width"], image["height"] = info.width, info.height


def _parse_annotations(anns, class_of):
    """(xyxy [N,4], classes [N], is_crowd [N]) of one image, or why it is unusable."""
    xyxy, classes, crowd = [], [], []
    for ann in anns:
        bbox = ann.get("bbox")
        if not (
            isinstance(bbox, (list, tuple))
            and len(bbox) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)
        ):
            return f"annotation {ann.get('id')} has no usable bbox ({bbox!r})"
        x, y, w, h = (float(v) for v in bbox)
        if not np.all(np.isfinite([x, y, w, h])):
            return f"annotation {ann.get('id')} has a non-finite bbox {bbox}"
        if w < 0 or h < 0:
            return f"annotation {ann.get('id')} has a negative width or height (bbox {bbox})"
        if ann.get("category_id") not in class_of:
            return f"annotation {ann.get('id')} has unknown category_id {ann.get('category_id')}"
        xyxy.append([x, y, x + w, y + h])
        classes.append(class_of[ann["category_id"]])
        crowd.append(bool(ann.get("iscrowd", 0)))
    return (
        np.asarray(xyxy, np.float64).reshape(-1, 4),
        np.asarray(classes, np.int32),
        np.asarray(crowd, bool),
    )
