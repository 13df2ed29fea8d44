"""Every recipe's checkpoint loads everywhere and names its classes, with no extra flags.

The SSD300 recipe trains two steps on tiny data it reads as it would read the real
dataset (a VOCdevkit, a COCO folder), with its default optimizer and schedule
(SGDL2, WarmupStepDecay); its ``last.keras`` then loads with plain
``keras.saving.load_model`` and goes through ``cfsam-keras evaluate``, ``predict``
and an export (the SavedModel from the VOC run, TFLite from the COCO run) without
``--class-names``. The demo's checkpoint (AdamW, one-cycle) is loaded the same way
by ``tests/recipes/test_demo.py``, whose run exports every format.
"""

import json
import os

import fake_data
import numpy as np
import pytest

from cfsam_keras.data import VOC_CLASSES

# A small backbone at 64 px: the recipes' own model code, at a test's cost.
SMALL = [
    "--backbone",
    "small_vgg",
    "--input-size",
    "64",
    "--backbone-weights",
    "none",
    "--batch-size",
    "2",
    "--eval-every",
    "0",
]


def _voc_devkit(root):
    rng = np.random.default_rng(0)
    entries = []
    for i in range(4):
        image = fake_data.rect_image(60, 80, [(10, 10, 50, 40)], seed=i)
        xml = fake_data.voc_xml(80, 60, [(VOC_CLASSES[i % 3], (11, 11, 50, 40), False)])
        entries.append((f"{i:06d}", image + rng.integers(0, 5, image.shape, np.uint8), xml))
    for year, split in (("2007", "trainval"), ("2007", "test"), ("2012", "trainval")):
        devkit = fake_data.write_voc(str(root), year, split, entries)
    return devkit


def _coco_folder(root):
    for split in ("train2017", "val2017"):
        images, annotations = [], []
        for i in range(4):
            name = f"{i:012d}.jpg"
            fake_data.save_image(
                os.path.join(root, split, name),
                fake_data.rect_image(60, 80, [(10, 10, 50, 40)], seed=i),
            )
            images.append((i + 1, name, 80, 60))
            annotations.append(
                {
                    "image_id": i + 1,
                    "category_id": (1, 3)[i % 2],
                    "bbox": [10, 10, 40, 30],
                    "area": 1200,
                    "iscrowd": 0,
                }
            )
        path = fake_data.write_coco(os.path.join(root, split), images, annotations)
        os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
        os.replace(path, os.path.join(root, "annotations", f"instances_{split}.json"))
    return str(root)


def _train(recipe, tmp_path):
    out = str(tmp_path / "run")
    import ssd300

    if recipe == "voc":
        data_dir, names = _voc_devkit(tmp_path), list(VOC_CLASSES)
        dataset = ["--voc-devkit", data_dir, "--year", "2007", "--split", "test"]
    else:
        data_dir, names = _coco_folder(tmp_path / "coco"), ["cat", "dog"]
        dataset = [
            "--coco-annotations",
            os.path.join(data_dir, "annotations", "instances_val2017.json"),
            "--image-dir",
            os.path.join(data_dir, "val2017"),
        ]
    argv = ["--dataset", recipe, "--data-dir", data_dir, "--iterations", "2", "--out", out, *SMALL]
    assert ssd300.main(argv) == 0
    return out, names, dataset


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["voc", "coco"])
def test_recipe_checkpoint_names_its_classes_everywhere(recipe, tmp_path):
    import keras

    from cfsam_keras import cli
    from cfsam_keras.export.predictors import TFLitePredictor
    from cfsam_keras.models import model_config

    out, names, dataset = _train(recipe, tmp_path)
    images = (
        dataset[dataset.index("--image-dir") + 1]
        if "--image-dir" in dataset
        else os.path.join(dataset[1], "VOC2007", "JPEGImages")
    )
    checkpoint = os.path.join(out, "checkpoints", "last.keras")
    # The recipe's optimizer and schedule (SGDL2 + WarmupStepDecay for VOC and COCO)
    # are restored too.
    model = keras.saving.load_model(checkpoint)
    assert model_config(model)["class_names"] == names
    assert type(model.optimizer).__name__ == "SGDL2"
    assert "WarmupStepDecay" in str(model.optimizer.get_config()["learning_rate"])

    assert (
        cli.main(
            ["evaluate", "--model", checkpoint, *dataset, "--out", str(tmp_path / "scores.json")]
        )
        == 0
    )
    with open(tmp_path / "scores.json") as f:
        assert json.load(f)["class_names"] == names
    assert (
        cli.main(
            [
                "predict",
                "--model",
                checkpoint,
                images,
                "--out",
                str(tmp_path / "p"),
                "--min-score",
                "0",
            ]
        )
        == 0
    )
    with open(tmp_path / "p" / "detections.json") as f:
        found = {d["class_name"] for image in json.load(f)["images"] for d in image["detections"]}
    assert found and found <= set(names)

    export = str(tmp_path / "e")
    if recipe == "voc":
        argv = ["--format", "saved_model", "--out", export]
        assert cli.main(["export", "--model", checkpoint, *argv]) == 0
        with open(os.path.join(export, "1", "assets.extra", "class_names.txt")) as f:
            assert f.read().split("\n")[:-1] == names
    else:
        tflite = os.path.join(export, "m.tflite")
        argv = ["--format", "tflite", "--out", tflite]
        assert cli.main(["export", "--model", checkpoint, *argv]) == 0
        assert TFLitePredictor(tflite).class_names == names
