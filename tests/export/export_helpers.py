"""Constants and helpers shared by the export tests (not fixtures)."""

import os

import numpy as np
import pytest

SIZE = 96
NUM_CLASSES = 5


def random_images(count, size=SIZE, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def saved_model_cli():
    import sys

    path = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    if not os.path.exists(path):
        pytest.skip("saved_model_cli is not installed beside the Python interpreter")
    return path


def box_iou(a, b):
    """IoU matrix of two float arrays of boxes in any (min, min, max, max) order."""
    a = np.asarray(a, np.float64)[:, None, :]
    b = np.asarray(b, np.float64)[None, :, :]
    lo = np.maximum(a[..., :2], b[..., :2])
    hi = np.minimum(a[..., 2:], b[..., 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    area_a = np.prod(np.clip(a[..., 2:] - a[..., :2], 0, None), axis=-1)
    area_b = np.prod(np.clip(b[..., 2:] - b[..., :2], 0, None), axis=-1)
    return inter / np.maximum(area_a + area_b - inter, 1e-12)


def keras_detections(model, images, **kwargs):
    from cfsam_keras.models import detector

    out = detector(model, **kwargs).predict_on_batch(images.astype(np.float32))
    return [
        {
            k: np.asarray(out[key][i])[: out["num_detections"][i]]
            for k, key in (("boxes", "boxes"), ("scores", "scores"), ("classes", "classes"))
        }
        for i in range(len(images))
    ]


def assert_matched(reference, candidate, min_score, min_iou):
    """Every reference detection >= min_score has a same-class candidate with IoU >= min_iou."""
    checked = 0
    for ref, cand in zip(reference, candidate):
        for box, score, cls in zip(ref["boxes"], ref["scores"], ref["classes"]):
            if score < min_score:
                continue
            same = cand["classes"] == cls
            best = box_iou(box[None], cand["boxes"][same]).max(initial=0.0)
            assert best >= min_iou, (box, score, cls, best)
            checked += 1
    return checked


def cli(*argv):
    """Runs one of this package's sub-commands in-process; returns (code, stderr line)."""
    import argparse
    import importlib

    from cfsam_keras.cli import CLIError

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    for name in ("export", "predict"):
        importlib.import_module(f"cfsam_keras.cli.{name}").add_parser(sub)
    args = parser.parse_args(argv)
    try:
        return args.run(args), ""
    except CLIError as e:
        return 2, str(e)
