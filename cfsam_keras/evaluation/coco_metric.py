"""COCO box AP / AR with pycocotools' ``COCOeval``."""

import contextlib
import copy
import io
import os

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

#: The 12 numbers of ``COCOeval.summarize()``, in its order.
COCO_METRIC_NAMES = (
    "AP",
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR1",
    "AR10",
    "AR100",
    "AR_small",
    "AR_medium",
    "AR_large",
)


@contextlib.contextmanager
def _quiet(verbose):
    """pycocotools prints progress on stdout; keep it out unless asked."""
    if verbose:
        yield
    else:
        with contextlib.redirect_stdout(io.StringIO()):
            yield


def xyxy_to_xywh(boxes):
    """Absolute (xmin, ymin, xmax, ymax) -> COCO's absolute (x, y, width, height)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def build_coco_ground_truth(ground_truths, class_names=None, num_classes=None, verbose=False):
    """A pycocotools ``COCO`` object built in memory from per-image ground truth.

    Lets any source (VOC, TFDS, the built-in set) be scored with COCOeval.
    Class ``c`` becomes category id ``c + 1``. Box area is ``w * h`` (there are
    no masks). Difficult (VOC) and crowd boxes are given ``iscrowd=1``, so, as
    in the VOC devkit, detections on them are ignored rather than counted.

    Args:
        ground_truths: list of dicts, one per image: ``image_id`` int,
            ``height`` and ``width`` (original size, pixels), ``boxes`` [M, 4]
            absolute xyxy pixels, ``classes`` [M] int 0-based, optional
            ``difficult`` [M] and ``is_crowd`` [M] bool.
        class_names: optional category names, one per class.
        num_classes: number of classes; ``len(class_names)`` or inferred.
        verbose: let pycocotools print its progress.

    Returns:
        A ``pycocotools.coco.COCO`` with its index built.

    Example:
    >>> gt = build_coco_ground_truth([{"image_id": 1, "height": 100, "width": 100,
    ...     "boxes": [[10, 10, 50, 50]], "classes": [0]}])
    >>> gt.getCatIds()
    [1]
    """
    if num_classes is None:
        if class_names is not None:
            num_classes = len(class_names)
        else:
            seen = [int(np.max(g["classes"])) for g in ground_truths if np.size(g["classes"])]
            num_classes = max(seen) + 1 if seen else 1
    if class_names is None:
        class_names = [str(c) for c in range(num_classes)]
    if len(class_names) != num_classes:
        raise ValueError(
            f"class_names has {len(class_names)} names but num_classes is {num_classes}."
        )

    images, annotations, seen_ids = [], [], set()
    for i, gt in enumerate(ground_truths):
        image_id = int(gt["image_id"])
        if image_id in seen_ids:
            raise ValueError(f"ground_truths[{i}]: image_id {image_id} appears twice.")
        seen_ids.add(image_id)
        images.append({"id": image_id, "height": int(gt["height"]), "width": int(gt["width"])})
        boxes = xyxy_to_xywh(gt["boxes"])
        classes = np.asarray(gt["classes"], dtype=np.int64).reshape(-1)
        if len(classes) != len(boxes):
            raise ValueError(f"ground_truths[{i}]: {len(boxes)} boxes but {len(classes)} classes.")
        if classes.size and (classes.min() < 0 or classes.max() >= num_classes):
            raise ValueError(
                f"ground_truths[{i}]: classes must be in 0..{num_classes - 1}, "
                f"got {classes.min()}..{classes.max()}."
            )
        ignore = np.zeros(len(boxes), bool)
        for key in ("difficult", "is_crowd"):
            if gt.get(key) is not None:
                ignore |= np.asarray(gt[key], bool).reshape(-1)
        for box, cls, crowd in zip(boxes, classes, ignore):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(cls) + 1,
                    "bbox": [float(v) for v in box],
                    "area": float(box[2] * box[3]),
                    "iscrowd": int(crowd),
                }
            )
    categories = [{"id": c + 1, "name": str(name)} for c, name in enumerate(class_names)]

    with _quiet(verbose):
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": annotations, "categories": categories}
        coco_gt.createIndex()
    return coco_gt


def load_coco_ground_truth(annotation_file, verbose=False):
    """A pycocotools ``COCO`` read from an instances JSON file (clear error if missing)."""
    if not os.path.isfile(annotation_file):
        raise FileNotFoundError(f"COCO annotation file not found: {annotation_file}")
    with _quiet(verbose):
        return COCO(str(annotation_file))


def detections_to_coco(detections, category_ids):
    """Per-image detections -> the COCO results list ``COCO.loadRes`` takes.

    Args:
        detections: list of dicts, one per image: ``image_id``, ``boxes``
            [N, 4] absolute xyxy pixels in the original image, ``scores`` [N],
            ``classes`` [N] int 0-based.
        category_ids: sequence mapping class index -> COCO category id.

    Returns:
        A list of ``{"image_id", "category_id", "bbox" (xywh), "score"}``.
    """
    category_ids = np.asarray(category_ids, dtype=np.int64)
    results = []
    for i, det in enumerate(detections):
        boxes = xyxy_to_xywh(det["boxes"])
        scores = np.asarray(det["scores"], dtype=np.float64).reshape(-1)
        classes = np.asarray(det["classes"], dtype=np.int64).reshape(-1)
        if not len(boxes) == len(scores) == len(classes):
            raise ValueError(
                f"detections[{i}]: {len(boxes)} boxes, {len(scores)} scores and "
                f"{len(classes)} classes; they must be equal."
            )
        if classes.size and (classes.min() < 0 or classes.max() >= len(category_ids)):
            raise ValueError(
                f"detections[{i}]: classes must be in 0..{len(category_ids) - 1} "
                f"({len(category_ids)} categories), got {classes.min()}..{classes.max()}."
            )
        image_id = int(det["image_id"])
        for box, score, cls in zip(boxes, scores, classes):
            results.append(
                {
                    "image_id": image_id,
                    "category_id": int(category_ids[cls]),
                    "bbox": [float(v) for v in box],
                    "score": float(score),
                }
            )
    return results


def _empty_results(coco_gt):
    """A results ``COCO`` with no detections (``loadRes([])`` crashes)."""
    res = COCO()
    res.dataset = {
        "images": list(coco_gt.dataset["images"]),
        "categories": copy.deepcopy(coco_gt.dataset["categories"]),
        "annotations": [],
    }
    res.createIndex()
    return res


def coco_evaluate(detections, coco_gt, category_ids=None, image_ids=None, verbose=False):
    """COCO box metrics of detections against a COCO ground truth.

    With no detections at all the result is the one COCOeval gives an empty
    result set: 0 for every number whose area range has ground truth (and -1,
    COCOeval's "undefined", for an area range with none).

    Args:
        detections: list of per-image dicts (see ``detections_to_coco``) with
            boxes in original image pixels, xyxy.
        coco_gt: a ``pycocotools.coco.COCO`` (e.g. from
            ``load_coco_ground_truth`` or ``build_coco_ground_truth``) or the
            path of an instances JSON file.
        category_ids: class index -> original COCO category id; defaults to the
            ground truth's category ids in ascending order (the usual
            contiguous mapping).
        image_ids: images to score; defaults to the images in ``detections``
            (so a subset of a large annotation file can be scored).
        verbose: print pycocotools' progress and summary table.

    Returns:
        Dict of the 12 standard numbers, keys ``COCO_METRIC_NAMES``.

    Example:
    >>> metrics = coco_evaluate(detections, "instances_val.json")
    >>> metrics["AP50"]
    """
    if isinstance(coco_gt, (str, bytes)) or hasattr(coco_gt, "__fspath__"):
        coco_gt = load_coco_ground_truth(coco_gt, verbose=verbose)
    if category_ids is None:
        category_ids = sorted(coco_gt.getCatIds())
    unknown = set(int(c) for c in category_ids) - set(coco_gt.getCatIds())
    if unknown:
        raise ValueError(
            f"category_ids {sorted(unknown)} are not categories of the ground truth "
            f"(it has {sorted(coco_gt.getCatIds())})."
        )
    if image_ids is None:
        image_ids = [int(d["image_id"]) for d in detections]
    image_ids = sorted(set(int(i) for i in image_ids))
    if not image_ids:
        raise ValueError("No images to evaluate: detections and image_ids are empty.")
    missing = set(image_ids) - set(coco_gt.getImgIds())
    if missing:
        raise ValueError(
            f"{len(missing)} image ids are not in the ground truth, e.g. {sorted(missing)[:5]}."
        )

    results = detections_to_coco(detections, category_ids)
    with _quiet(verbose):
        coco_dt = coco_gt.loadRes(results) if results else _empty_results(coco_gt)
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.params.imgIds = image_ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(v) for name, v in zip(COCO_METRIC_NAMES, evaluator.stats)}
