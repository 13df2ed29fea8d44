"""Run a detector over an evaluation pipeline and score it with COCO and VOC metrics."""

import logging

import keras
import numpy as np
import tensorflow as tf
from keras.utils import bounding_boxes

from cfsam_keras.data import eval_pipeline
from cfsam_keras.evaluation.coco_metric import build_coco_ground_truth
from cfsam_keras.evaluation.coco_metric import coco_evaluate
from cfsam_keras.evaluation.coco_metric import load_coco_ground_truth
from cfsam_keras.evaluation.voc_metric import VOC_IOU_THRESHOLD
from cfsam_keras.evaluation.voc_metric import to_devkit_boxes
from cfsam_keras.evaluation.voc_metric import voc_map

_DETECTION_KEYS = ("boxes", "scores", "classes", "num_detections")
_log = logging.getLogger("cfsam_keras.evaluation")


def _report_lost_images(source, detections, max_images):
    """Names the source's images the pipeline could not decode; returns their files."""
    expected = getattr(source, "image_files", None)
    if expected is None or max_images is not None:
        return []
    seen = {int(d["image_id"]) for d in detections}
    lost = [expected[i] for i in sorted(set(expected) - seen)]
    if lost:
        _log.warning(
            "%s: %d of %d images could not be decoded and were not scored: %s",
            source.name,
            len(lost),
            len(expected),
            ", ".join(lost[:5]) + (", ..." if len(lost) > 5 else ""),
        )
    return lost


def _to_numpy(value):
    return np.asarray(keras.ops.convert_to_numpy(value))


def _to_pixels(boxes, original_size):
    """rel_xyxy [B, K, 4] -> absolute xyxy pixels of each image's original size."""
    sizes = np.asarray(original_size, np.float32).reshape(-1, 1, 1, 2)[:, 0]
    pixels = bounding_boxes.convert_format(
        np.asarray(boxes, np.float32),
        source="rel_xyxy",
        target="xyxy",
        height=sizes[..., :1],
        width=sizes[..., 1:],
    )
    return _to_numpy(pixels).astype(np.float64)


def _input_size(detector):
    shape = getattr(detector, "input_shape", None)
    if isinstance(shape, tuple) and len(shape) == 4 and shape[1] is not None:
        return int(shape[1])
    return None


def _call_detector(detector, images, pad_to=None):
    """The detector's numpy outputs for a batch.

    A keras.Model runs through ``predict_on_batch`` (its compiled predict
    function, ~20x faster than an eager call); a smaller last batch is padded
    to ``pad_to`` images so that function is not traced a second time.
    """
    if isinstance(detector, keras.Model):
        images = _to_numpy(images)
        count = len(images)
        if pad_to is not None and count < pad_to:
            padding = np.zeros((pad_to - count,) + images.shape[1:], images.dtype)
            images = np.concatenate([images, padding])
        outputs = detector.predict_on_batch(images)
        if isinstance(outputs, dict):
            outputs = {k: v[:count] for k, v in outputs.items()}
    else:
        outputs = detector(images)
    if not isinstance(outputs, dict) or not all(k in outputs for k in _DETECTION_KEYS):
        raise TypeError(
            "The detector must return a dict with keys "
            f"{', '.join(_DETECTION_KEYS)} (wrap a training model with "
            "cfsam_keras.models.detector(model)); got "
            f"{sorted(outputs) if isinstance(outputs, dict) else type(outputs).__name__}."
        )
    return {k: _to_numpy(outputs[k]) for k in _DETECTION_KEYS}


def collect_detections(detector, dataset, max_images=None, progress=None):
    """Runs ``detector`` over an eval pipeline; detections and ground truth in pixels.

    Args:
        detector: a ``cfsam_keras.models.detector`` model, or any callable taking
            images [B, S, S, 3] and returning its dict (``boxes`` rel_xyxy,
            ``scores``, ``classes`` 0-based, ``num_detections``).
        dataset: a ``cfsam_keras.data.eval_pipeline`` dataset (batches with
            ``images``, ``image_id``, ``original_size`` and the padded ground
            truth ``boxes``, ``classes``, ``difficult``, ``is_crowd``, ``num_boxes``).
        max_images: stop after this many images (None: the whole dataset).
        progress: a ``keras.utils.Progbar`` advanced by each batch's images, or None.

    Returns:
        ``(detections, ground_truths)``: lists, one dict per image, with
        ``image_id``, ``height``, ``width``, absolute xyxy pixel ``boxes``,
        ``classes`` and ``scores`` (detections) or ``difficult`` / ``is_crowd``
        (ground truth).
    """
    detections, ground_truths = [], []
    full_batch = None
    for batch in dataset:
        batch_size = int(batch["images"].shape[0])
        full_batch = full_batch or batch_size
        if max_images is not None:
            batch_size = min(batch_size, max_images - len(detections))
            if batch_size <= 0:
                break
        out = _call_detector(detector, batch["images"], pad_to=full_batch)
        sizes = _to_numpy(batch["original_size"])
        det_boxes = _to_pixels(out["boxes"], sizes)
        gt_boxes = _to_pixels(_to_numpy(batch["boxes"]), sizes)
        image_ids = _to_numpy(batch["image_id"])
        gt_classes = _to_numpy(batch["classes"])
        num_boxes = _to_numpy(batch["num_boxes"])
        difficult = _to_numpy(batch["difficult"])
        is_crowd = _to_numpy(batch["is_crowd"])
        for i in range(batch_size):
            height, width = (int(v) for v in sizes[i])
            n = int(out["num_detections"][i])
            m = int(num_boxes[i])
            common = {"image_id": int(image_ids[i]), "height": height, "width": width}
            detections.append(
                dict(
                    common,
                    boxes=det_boxes[i, :n],
                    scores=out["scores"][i, :n].astype(np.float64),
                    classes=out["classes"][i, :n].astype(np.int64),
                )
            )
            ground_truths.append(
                dict(
                    common,
                    boxes=gt_boxes[i, :m],
                    classes=gt_classes[i, :m].astype(np.int64),
                    difficult=difficult[i, :m].astype(bool),
                    is_crowd=is_crowd[i, :m].astype(bool),
                )
            )
        if progress is not None:
            progress.add(batch_size)
    return detections, ground_truths


def _source_coco(source, verbose):
    """The source's own COCO ground truth and category ids, when it is a COCO source."""
    coco_gt = getattr(source, "coco", None)
    if coco_gt is None and getattr(source, "annotation_file", None):
        coco_gt = load_coco_ground_truth(source.annotation_file, verbose=verbose)
    category_ids = getattr(source, "category_ids", None)
    return coco_gt, (list(category_ids) if category_ids is not None else None)


def evaluate_detector(
    detector,
    data,
    input_size=None,
    batch_size=8,
    num_classes=None,
    class_names=None,
    coco_gt=None,
    category_ids=None,
    iou_threshold=VOC_IOU_THRESHOLD,
    max_images=None,
    verbose=False,
    progress=False,
):
    """COCO and VOC metrics of a detector on a validation set, in one pass.

    Detections (rel_xyxy) are mapped back to each image's original size. COCO
    scoring uses the source's own annotation file and original category ids
    when ``data`` is a COCO source (or ``coco_gt`` is given); otherwise the
    COCO ground truth is built in memory from the evaluation examples, so any
    source can be COCO-scored. VOC mAP follows the devkit (difficult boxes
    ignored), with both the VOC07 11-point and the VOC2010+ area metric; boxes
    go to the devkit's 1-based pixel convention with ``to_devkit_boxes``, so
    for VOC sources the ground truth is exactly the XML's. Crowd boxes are
    treated as difficult by the VOC metric.

    Args:
        detector: a ``cfsam_keras.models.detector`` model, or any callable
            returning its output dict.
        data: a ``cfsam_keras.data`` source (given to
            ``cfsam_keras.data.eval_pipeline``, unshuffled) or an already
            built eval pipeline dataset.
        input_size: square input side of the detector; read from the
            detector's input shape when None. Used only when ``data`` is a source.
        batch_size: batch size of the pipeline built from a source.
        num_classes: object classes; ``len(class_names)`` or the source's
            ``class_names`` when None.
        class_names: names for the in-memory COCO categories.
        coco_gt: a ``pycocotools.coco.COCO`` or annotation file path to score
            against instead of the source's own / an in-memory one.
        category_ids: class index -> COCO category id for ``coco_gt``.
        iou_threshold: VOC matching threshold.
        max_images: evaluate only the first images of the set.
        verbose: print pycocotools' progress and summary table.
        progress: show a progress bar of the images run through the detector.

    Returns:
        Dict: ``coco`` (the 12 COCO numbers, see ``COCO_METRIC_NAMES``),
        ``voc_map`` (VOC07 11-point), ``voc_map_area`` (VOC2010+),
        ``voc_per_class_ap`` and ``voc_per_class_ap_area`` (NaN for a class
        with no ground truth), ``num_images`` (scored) and ``undecodable_images``
        (files of a file-based source that TensorFlow could not decode, named in a
        warning too; they are not scored).

    Example:
    >>> model = keras.saving.load_model("ssd.keras")
    >>> source = cfsam_keras.data.coco("instances_val.json", "val")
    >>> evaluate_detector(cfsam_keras.models.detector(model), source)["coco"]["AP50"]
    """
    source = None
    if isinstance(data, tf.data.Dataset):
        dataset = data
    else:
        source = data
        input_size = input_size or _input_size(detector)
        if input_size is None:
            raise ValueError(
                "input_size is needed: the detector has no fixed input shape to read it from."
            )
        dataset = eval_pipeline(source, input_size, batch_size)
        if class_names is None:
            class_names = list(getattr(source, "class_names", None) or []) or None
    if num_classes is None and class_names is not None:
        num_classes = len(class_names)

    bar = None
    if progress:
        total = len(source) if source is not None else None
        if max_images is not None:
            total = max_images if total is None else min(total, max_images)
        bar = keras.utils.Progbar(total, unit_name="image")
    detections, ground_truths = collect_detections(detector, dataset, max_images, bar)
    if bar is not None:
        bar.update(len(detections), finalize=True)
    lost = _report_lost_images(source, detections, max_images) if source is not None else []
    if not detections:
        raise ValueError(
            "The evaluation dataset is empty: there is nothing to score"
            + (f" (none of its {len(lost)} images could be decoded)." if lost else ".")
        )

    voc_dets = [dict(d, boxes=to_devkit_boxes(d["boxes"])) for d in detections]
    # Crowd regions (COCO) are ignored like VOC's difficult boxes.
    voc_gts = [
        dict(g, boxes=to_devkit_boxes(g["boxes"]), difficult=g["difficult"] | g["is_crowd"])
        for g in ground_truths
    ]
    voc_07 = voc_map(voc_dets, voc_gts, iou_threshold, True, num_classes)
    voc_area = voc_map(voc_dets, voc_gts, iou_threshold, False, num_classes)

    if source is not None:
        if coco_gt is None:
            coco_gt, source_category_ids = _source_coco(source, verbose)
        else:  # e.g. a TFDS coco/2017 source scored against the official JSON
            source_category_ids = getattr(source, "category_ids", None)
        if category_ids is None and source_category_ids is not None:
            category_ids = list(source_category_ids)
    if coco_gt is None:
        coco_gt = build_coco_ground_truth(
            ground_truths,
            class_names=class_names,
            num_classes=num_classes or len(voc_07["per_class_ap"]),
            verbose=verbose,
        )
        category_ids = None  # in-memory ids are class + 1, the sorted default
    coco = coco_evaluate(detections, coco_gt, category_ids=category_ids, verbose=verbose)

    return {
        "coco": coco,
        "voc_map": voc_07["mAP"],
        "voc_map_area": voc_area["mAP"],
        "voc_per_class_ap": voc_07["per_class_ap"],
        "voc_per_class_ap_area": voc_area["per_class_ap"],
        "num_images": len(detections),
        "undecodable_images": lost,
    }
