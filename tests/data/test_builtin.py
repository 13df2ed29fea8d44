import argparse
import importlib
import os

import numpy as np
from pycocotools.coco import COCO

import cfsam_keras.data as data
from cfsam_keras.cli import make_dataset


def test_generation_is_deterministic_and_splits_differ():
    a = data.generate_image(seed=4, index=2, image_size=96)
    b = data.generate_image(seed=4, index=2, image_size=96)
    c = data.generate_image(seed=4, index=2, image_size=96, split="val")
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_objects_span_scales_and_boxes_are_tight():
    sizes, counts, classes = [], [], set()
    for i in range(60):
        image, boxes, cls = data.generate_image(seed=0, index=i, image_size=128)
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8
        assert (
            np.all(boxes[:, :2] >= 0)
            and np.all(boxes[:, 2:] <= 128)
            and np.all(boxes[:, 2:] > boxes[:, :2])
        )
        sizes += np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).tolist()
        counts.append(len(cls))
        classes |= set(cls.tolist())
    rel = np.array(sizes) / 128
    assert rel.min() < 0.08 and rel.max() > 0.6  # small and large objects both occur
    assert np.mean(rel < 0.1) > 0.15 and np.mean(rel > 0.3) > 0.15
    assert max(counts) >= 4 and classes == set(range(len(data.BUILTIN_CLASSES)))


def _run_make_dataset(argv):
    """Through the real CLI when every sub-command module exists, else this module alone."""
    modules = importlib.import_module("cfsam_keras.cli").SUBCOMMANDS
    if all(importlib.util.find_spec(f"cfsam_keras.cli.{m}") for m in modules):
        from cfsam_keras.cli import main

        return main(argv)
    parser = argparse.ArgumentParser()
    make_dataset.add_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.run(args)


def test_make_dataset_writes_coco_that_round_trips(tmp_path, capsys):
    out = str(tmp_path / "shapes")
    assert (
        _run_make_dataset(
            [
                "make-dataset",
                "--out",
                out,
                "--train",
                "6",
                "--val",
                "3",
                "--seed",
                "7",
                "--image-size",
                "96",
            ]
        )
        == 0
    )
    assert "wrote 9 images" in capsys.readouterr().out
    assert sorted(os.listdir(out)) == [
        "builtin-dataset.json",
        "instances_train.json",
        "instances_val.json",
        "train",
        "val",
    ]
    gt = COCO(os.path.join(out, "instances_train.json"))
    assert len(gt.getImgIds()) == 6 and [c["name"] for c in gt.loadCats(gt.getCatIds())] == list(
        data.BUILTIN_CLASSES
    )
    source = data.coco(os.path.join(out, "instances_train.json"), os.path.join(out, "train"))
    assert (
        len(source) == 6 and not source.report and source.class_names == list(data.BUILTIN_CLASSES)
    )
    for ex in source.dataset():
        image, boxes, classes = data.generate_image(7, int(ex["image_id"]) - 1, 96)
        np.testing.assert_allclose(ex["boxes"].numpy() * 96, boxes, atol=1e-4)
        np.testing.assert_array_equal(ex["classes"].numpy(), classes)

        # the JPEG holds the same image: 8x8 block means agree (pixel noise is lossy)
        def blocks(a):
            return a.astype(float).reshape(12, 8, 12, 8, 3).mean(axis=(1, 3))

        assert np.abs(blocks(ex["image"].numpy()) - blocks(image)).mean() < 4


def test_make_dataset_rejects_bad_arguments(tmp_path):
    import pytest

    from cfsam_keras.cli import CLIError

    parser = argparse.ArgumentParser()
    make_dataset.add_parser(parser.add_subparsers())
    args = parser.parse_args(["make-dataset", "--out", str(tmp_path), "--train", "-1"])
    with pytest.raises(CLIError, match="--train"):
        args.run(args)
