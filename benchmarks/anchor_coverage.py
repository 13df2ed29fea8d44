"""How well default boxes cover a dataset's objects: the best IoU each object can get.

    python benchmarks/anchor_coverage.py [--data-dir DIR] [--split train]
        [--candidates "coco,voc"] [--out docs/results]

SSD makes a default box positive for an object when their IoU is at least 0.5 (and
forces the best box of each object positive whatever its IoU), and AP50 asks the same
overlap of a detection. So for each object of the split this finds its best IoU with
any default box of the demo's model (``configs.DEMO_MODEL``: its backbone, input size and
so its source-map sizes) and counts the boxes at IoU >= 0.5, per size of the object at
the model's input (its side ``sqrt(w * h)`` in pixels). Each candidate is a set of
default-box sizes on that model's grid (`CANDIDATES`). The objects are the split as
stored, before augmentation. Without ``--data-dir`` the demo's built-in dataset
(``configs.DEMO_DATASET``) is written to a temporary folder first.
Writes OUT/anchor_coverage.json and .md.
"""

import argparse
import os
import shlex
import sys
import tempfile

import harness
import numpy as np

#: Name (no comma: ``--candidates`` is comma-separated) -> (preset of
#: ``cfsam_keras.anchors.PRESETS``, sizes replacing the preset's or None). Sizes are
#: ``(min_sizes, max_sizes)`` as fractions of the input side, six each.
CANDIDATES = {
    "coco": ("coco", None),
    "voc": ("voc", None),
    # The preset's first level smaller (10 px instead of 13.4 at 192), the rest as coco.
    "coco first level 0.052": (
        "coco",
        ((0.052, 0.15, 0.33, 0.51, 0.69, 0.87), (0.15, 0.33, 0.51, 0.69, 0.87, 1.05)),
    ),
    # Sizes spaced evenly in log from 4.5% to 90% of the side, the range the built-in
    # dataset draws its objects from (3% to 90%), whatever the levels' strides.
    "geometric 0.045-0.9": (
        "coco",
        tuple(tuple(0.045 * 20 ** ((k + first) / 5) for k in range(6)) for first in (0, 1)),
    ),
}
#: Upper bounds (pixels at the model's input) of the object-size bins; the last is open.
SIDE_BINS = (16, 32, 96)
#: The IoU at which a default box is positive (SSD's matching threshold).
POSITIVE_IOU = 0.5


def object_boxes(source):
    """Every object box of a source, float64 ``[N, 4]`` normalised (xmin, ymin, xmax, ymax)."""
    boxes = [record["boxes"].numpy() for record in source.records()]
    return np.concatenate(boxes).astype(np.float64) if boxes else np.zeros((0, 4))


def best_overlaps(boxes, anchors):
    """Per object: its best IoU with any default box and the boxes at IoU >= 0.5.

    Args:
        boxes: ``[N, 4]`` normalised (xmin, ymin, xmax, ymax).
        anchors: ``[A, 4]`` default boxes, normalised (cx, cy, w, h).

    Returns:
        ``(best_iou [N], positives [N])``.
    """
    corners = np.concatenate(
        [anchors[:, :2] - anchors[:, 2:] / 2, anchors[:, :2] + anchors[:, 2:] / 2], 1
    )
    anchor_area = np.prod(corners[:, 2:] - corners[:, :2], axis=-1)
    best, positives = [], []
    for chunk in np.array_split(boxes, max(1, len(boxes) // 512)):
        low = np.maximum(chunk[:, None, :2], corners[None, :, :2])
        high = np.minimum(chunk[:, None, 2:], corners[None, :, 2:])
        inter = np.prod(np.clip(high - low, 0.0, None), axis=-1)
        area = np.prod(chunk[:, 2:] - chunk[:, :2], axis=-1)
        iou = inter / (area[:, None] + anchor_area[None, :] - inter)
        best.append(iou.max(axis=1))
        positives.append((iou >= POSITIVE_IOU).sum(axis=1))
    return np.concatenate(best), np.concatenate(positives)


def candidate_config(base, preset, sizes):
    """The anchor configuration of a candidate on the grid of ``base`` (a model's)."""
    from cfsam_keras.anchors import anchor_config

    config = anchor_config(preset, base["input_size"], base["feature_sizes"])
    if sizes is not None:
        side = base["input_size"]
        config["min_sizes"] = [s * side for s in sizes[0]]
        config["max_sizes"] = [s * side for s in sizes[1]]
    return config


def coverage(boxes, config):
    """Best IoU and positives of ``boxes`` under ``config``, overall and per size bin."""
    from cfsam_keras.anchors import default_boxes

    best, positives = best_overlaps(boxes, default_boxes(**config))
    side = np.sqrt(np.prod(boxes[:, 2:] - boxes[:, :2], axis=-1)) * config["input_size"]
    bins = {"all": np.ones(len(boxes), bool)}
    edges = (0,) + SIDE_BINS + (np.inf,)
    for low, high in zip(edges[:-1], edges[1:]):
        name = f"{low}-{high} px" if np.isfinite(high) else f">= {low} px"
        bins[name] = (side >= low) & (side < high)
    return {
        name: {
            "objects": int(mask.sum()),
            "mean_best_iou": float(best[mask].mean()) if mask.any() else None,
            "share_below_positive_iou": float((best[mask] < POSITIVE_IOU).mean())
            if mask.any()
            else None,
            "mean_positives": float(positives[mask].mean()) if mask.any() else None,
        }
        for name, mask in bins.items()
    }


def table(record):
    lines = [
        "# Default-box coverage of the demo's dataset",
        "",
        f"`{record['command']}`. Objects of the `{record['split']}` split as stored, at the "
        f"demo model's input ({record['input_size']} px, source maps "
        f"{record['feature_sizes']}). Per object: best IoU with any default box; below "
        f"{POSITIVE_IOU} only SSD's forced match makes it positive. "
        f"Load average {harness.load_text(record['machine'])}.",
        "",
        "| default boxes | objects | mean best IoU | best IoU < 0.5 | boxes at IoU >= 0.5 |",
        "|---|---|---|---|---|",
    ]
    for name, bins in record["candidates"].items():
        for bin_name, row in bins.items():
            if not row["objects"]:
                continue
            label = name if bin_name == "all" else f"{name}, side {bin_name}"
            lines.append(
                f"| {label} | {row['objects']} | {row['mean_best_iou']:.3f} | "
                f"{row['share_below_positive_iou']:.1%} | {row['mean_positives']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", help="COCO-format folder: instances_SPLIT.json and SPLIT/")
    p.add_argument("--split", default="train", help="split to read (default %(default)s)")
    p.add_argument(
        "--candidates",
        default=",".join(CANDIDATES),
        help=f"comma-separated names of CANDIDATES (default: all, {list(CANDIDATES)})",
    )
    p.add_argument("--out", default="docs/results", help="results folder (default %(default)s)")
    return p


def main(argv=None):
    p = parser()
    args = p.parse_args(argv)
    names = [n.strip() for n in args.candidates.split(",") if n.strip()]
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown or not names:
        p.error(f"--candidates: {unknown or 'none given'}; expected names of {list(CANDIDATES)}")
    if args.data_dir is not None:
        annotations = os.path.join(args.data_dir, f"instances_{args.split}.json")
        if not os.path.isfile(annotations):
            p.error(f"--data-dir: {annotations} does not exist")
    load_before = harness.load_average()
    configs = harness.recipe_configs()
    from cfsam_keras import data
    from cfsam_keras.models import SSD300
    from cfsam_keras.models import model_config

    settings = configs.DEMO_MODEL
    model = SSD300(
        num_classes=1,
        backbone=settings["backbone"],
        attention="none",
        input_size=settings["input_size"],
        anchor_preset=settings["anchor_preset"],
        backbone_kwargs=settings["backbone_kwargs"],
    )
    base = model_config(model)["anchor_config"]
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.data_dir
        if data_dir is None:
            data_dir = scratch
            data.write_builtin_dataset(scratch, **configs.DEMO_DATASET)
        annotations = os.path.join(data_dir, f"instances_{args.split}.json")
        boxes = object_boxes(data.coco(annotations, os.path.join(data_dir, args.split)))
    if not len(boxes):
        p.error(f"--data-dir: {annotations} holds no object boxes")
    record = {
        "command": shlex.join(["python", "benchmarks/anchor_coverage.py", *(argv or sys.argv[1:])]),
        "split": args.split,
        "input_size": base["input_size"],
        "feature_sizes": base["feature_sizes"],
        "candidates": {
            name: coverage(boxes, candidate_config(base, *CANDIDATES[name])) for name in names
        },
    }
    record["machine"] = harness.machine(load_before)
    harness.write_results(args.out, "anchor_coverage", record, table(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
