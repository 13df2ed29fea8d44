"""PASCAL VOC mean average precision, as the VOC devkit computes it.

A line-by-line port of ``voc_eval.py`` (py-faster-rcnn's Python version of the
VOC devkit's ``VOCevaldet.m``), vectorised only where that cannot change the
result:

- detections of a class are ranked by score over the whole set; each one is
  matched to the ground truth box of its image with the highest IoU;
- IoU uses the devkit's inclusive pixel convention: a box (xmin, ymin, xmax,
  ymax) is ``xmax - xmin + 1`` pixels wide;
- IoU must be strictly greater than the threshold;
- a detection whose best match is a *difficult* box is neither a true nor a
  false positive; difficult boxes do not count in the recall denominator;
- a second detection of an already matched box is a false positive;
- the VOC2007 metric averages the interpolated precision at the 11 recalls
  0, 0.1, ..., 1; the VOC2010+ metric is the area under the interpolated
  precision / recall curve.
"""

import numpy as np

from cfsam_keras.validation import positive_int

#: PASCAL VOC's criterion: a detection matches a ground-truth box whose IoU with it
#: exceeds this.
VOC_IOU_THRESHOLD = 0.5


def to_devkit_boxes(boxes):
    """Pixel-edge boxes -> the devkit's 1-based inclusive pixel indices.

    Inside the library a box covering pixels 1..10 of a VOC image (XML
    ``xmin=1, xmax=10``) is ``(0, 10)`` in continuous pixel-edge coordinates
    (``cfsam_keras.data.voc`` and TFDS both subtract 1 from ``xmin`` /
    ``ymin``). Adding 1 back to the minimum coordinates restores the XML
    values, and makes the devkit's ``+ 1`` IoU equal the continuous IoU.

    Args:
        boxes: array [..., 4] absolute (xmin, ymin, xmax, ymax), pixel edges.

    Returns:
        float64 array [..., 4] in the devkit convention.

    Example:
    >>> to_devkit_boxes(np.array([[0.0, 0.0, 10.0, 5.0]]))
    array([[ 1.,  1., 10.,  5.]])
    """
    boxes = np.array(boxes, dtype=np.float64)
    boxes[..., :2] += 1.0
    return boxes


def voc_ap(recall, precision, use_07_metric=True):
    """Average precision from a recall / precision curve (devkit ``voc_ap``).

    Args:
        recall: 1-D array, cumulative recall at each ranked detection.
        precision: 1-D array, cumulative precision at each ranked detection.
        use_07_metric: if True, the VOC2007 11-point interpolated AP;
            otherwise the VOC2010+ area under the interpolated curve.

    Returns:
        The average precision, a Python float.

    Example:
    >>> voc_ap(np.array([0.5, 1.0]), np.array([1.0, 1.0]))
    1.0
    """
    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    if use_07_metric:
        ap = 0.0
        # np.arange(0., 1.1, 0.1) exactly as the devkit, float rounding included.
        for t in np.arange(0.0, 1.1, 0.1):
            above = recall >= t
            p = np.max(precision[above]) if np.any(above) else 0.0
            ap += p / 11.0
        return float(ap)
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    # Precision envelope: make precision monotonically non-increasing.
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    change = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[change + 1] - mrec[change]) * mpre[change + 1]))


def _as_boxes(value, where):
    boxes = np.asarray(value, dtype=np.float64)
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{where}: boxes must have shape [N, 4], got {boxes.shape}.")
    return boxes


def _as_vector(value, length, dtype, where, name):
    array = np.asarray(value, dtype=dtype).reshape(-1)
    if array.shape[0] != length:
        raise ValueError(
            f"{where}: '{name}' has {array.shape[0]} entries but there are {length} boxes."
        )
    return array


def _check_classes(classes, num_classes, where):
    if classes.size and (classes.min() < 0 or classes.max() >= num_classes):
        raise ValueError(
            f"{where}: classes must be in 0..{num_classes - 1} (num_classes={num_classes}), "
            f"got values {classes.min()}..{classes.max()}."
        )


def _parse(detections, ground_truths, num_classes):
    if len(detections) != len(ground_truths):
        raise ValueError(
            f"detections has {len(detections)} images but ground_truths has "
            f"{len(ground_truths)}; give one entry per image, in the same order."
        )
    dets, gts = [], []
    for i, (det, gt) in enumerate(zip(detections, ground_truths)):
        where = f"ground_truths[{i}]"
        boxes = _as_boxes(gt["boxes"], where)
        classes = _as_vector(gt["classes"], len(boxes), np.int64, where, "classes")
        difficult = gt.get("difficult")
        if difficult is None:
            difficult = np.zeros(len(boxes), bool)
        difficult = _as_vector(difficult, len(boxes), bool, where, "difficult")
        gts.append((boxes, classes, difficult))

        where = f"detections[{i}]"
        boxes = _as_boxes(det["boxes"], where)
        scores = _as_vector(det["scores"], len(boxes), np.float64, where, "scores")
        classes = _as_vector(det["classes"], len(boxes), np.int64, where, "classes")
        dets.append((boxes, scores, classes))

    if num_classes is None:
        highest = [c.max() for _, c, _ in gts if c.size] + [c.max() for _, _, c in dets if c.size]
        num_classes = int(max(highest)) + 1 if highest else 0
    else:
        num_classes = positive_int(num_classes, "num_classes")
    num_classes = int(num_classes)
    for i, ((_, gt_classes, _), (_, _, det_classes)) in enumerate(zip(gts, dets)):
        _check_classes(gt_classes, num_classes, f"ground_truths[{i}]")
        _check_classes(det_classes, num_classes, f"detections[{i}]")
    return dets, gts, num_classes


def _iou_devkit(box, gt_boxes):
    """IoU of one box with many, inclusive pixel convention (+1)."""
    ixmin = np.maximum(gt_boxes[:, 0], box[0])
    iymin = np.maximum(gt_boxes[:, 1], box[1])
    ixmax = np.minimum(gt_boxes[:, 2], box[2])
    iymax = np.minimum(gt_boxes[:, 3], box[3])
    iw = np.maximum(ixmax - ixmin + 1.0, 0.0)
    ih = np.maximum(iymax - iymin + 1.0, 0.0)
    inters = iw * ih
    union = (
        (box[2] - box[0] + 1.0) * (box[3] - box[1] + 1.0)
        + (gt_boxes[:, 2] - gt_boxes[:, 0] + 1.0) * (gt_boxes[:, 3] - gt_boxes[:, 1] + 1.0)
        - inters
    )
    return inters / union


def _class_ap(dets, gts, class_id, iou_threshold, use_07_metric):
    """AP of one class, or None when it has no non-difficult ground truth."""
    per_image_gt = []
    num_positives = 0
    for boxes, classes, difficult in gts:
        keep = classes == class_id
        per_image_gt.append((boxes[keep], difficult[keep], np.zeros(int(keep.sum()), bool)))
        num_positives += int(np.sum(~difficult[keep]))
    if num_positives == 0:
        return None

    image_index, det_boxes, det_scores = [], [], []
    for i, (boxes, scores, classes) in enumerate(dets):
        keep = classes == class_id
        image_index.append(np.full(int(keep.sum()), i))
        det_boxes.append(boxes[keep])
        det_scores.append(scores[keep])
    image_index = np.concatenate(image_index) if image_index else np.zeros(0, int)
    det_boxes = np.concatenate(det_boxes) if det_boxes else np.zeros((0, 4))
    det_scores = np.concatenate(det_scores) if det_scores else np.zeros(0)
    # Highest score first; ties keep input order (stable sort).
    order = np.argsort(-det_scores, kind="stable")

    tp = np.zeros(len(order))
    fp = np.zeros(len(order))
    for rank, d in enumerate(order):
        gt_boxes, gt_difficult, gt_detected = per_image_gt[image_index[d]]
        best_iou, best = -np.inf, -1
        if len(gt_boxes):
            overlaps = _iou_devkit(det_boxes[d], gt_boxes)
            best = int(np.argmax(overlaps))
            best_iou = overlaps[best]
        if best_iou > iou_threshold:
            if not gt_difficult[best]:
                if not gt_detected[best]:
                    tp[rank] = 1.0
                    gt_detected[best] = True
                else:
                    fp[rank] = 1.0
        else:
            fp[rank] = 1.0

    tp = np.cumsum(tp)
    fp = np.cumsum(fp)
    recall = tp / float(num_positives)
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return voc_ap(recall, precision, use_07_metric)


def voc_map(
    detections, ground_truths, iou_threshold=VOC_IOU_THRESHOLD, use_07_metric=True, num_classes=None
):
    """PASCAL VOC mean average precision over a set of images.

    Boxes are absolute pixel coordinates (xmin, ymin, xmax, ymax) in the
    devkit's 1-based inclusive convention (the VOC XML values; a box is
    ``xmax - xmin + 1`` pixels wide). Convert the library's pixel-edge boxes
    with ``to_devkit_boxes`` first (``evaluate_detector`` does).

    A class with no non-difficult ground truth box in the set has no defined
    AP: its ``per_class_ap`` entry is NaN and it is left out of the mean, as the
    devkit effectively does by evaluating only classes present in the test set.
    If no class has ground truth, ``mAP`` is NaN.

    Args:
        detections: list with one dict per image: ``boxes`` [N, 4],
            ``scores`` [N], ``classes`` [N] int (0-based object classes).
        ground_truths: list with one dict per image, same order: ``boxes``
            [M, 4], ``classes`` [M] int, optional ``difficult`` [M] bool.
        iou_threshold: a detection matches a box when IoU > this value.
        use_07_metric: True for the VOC2007 11-point metric, False for the
            VOC2010+ area metric.
        num_classes: number of object classes; inferred from the largest class
            index seen when None.

    Returns:
        ``{"mAP": float, "per_class_ap": [float] * num_classes}``.

    Example:
    >>> gt = [{"boxes": [[10, 10, 50, 50]], "classes": [0]}]
    >>> det = [{"boxes": [[10, 10, 50, 50]], "scores": [0.9], "classes": [0]}]
    >>> voc_map(det, gt)["mAP"]
    1.0
    """
    dets, gts, num_classes = _parse(detections, ground_truths, num_classes)
    per_class = []
    for class_id in range(num_classes):
        ap = _class_ap(dets, gts, class_id, iou_threshold, use_07_metric)
        per_class.append(float("nan") if ap is None else ap)
    defined = [ap for ap in per_class if not np.isnan(ap)]
    mean = float(np.mean(defined)) if defined else float("nan")
    return {"mAP": mean, "per_class_ap": per_class}
