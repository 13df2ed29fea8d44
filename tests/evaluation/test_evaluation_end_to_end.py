"""Evaluation on the real data pipeline, a real (tiny) SSD model and the CLI."""

import json
import math
import os

import numpy as np
import pytest
from PIL import Image

from cfsam_keras import data
from cfsam_keras.evaluation import EvaluationCallback
from cfsam_keras.evaluation import evaluate_detector

# Images of different sizes and ids; category ids {1, 5, 9} (not contiguous).
IMAGES = [  # (image id, width, height, [(category id, xywh)])
    (7, 64, 48, [(9, [4, 6, 30, 20]), (1, [36, 10, 24, 30])]),
    (30, 40, 80, [(5, [2, 40, 36, 38])]),
    (101, 64, 64, [(1, [10, 10, 40, 40]), (5, [0, 0, 16, 12]), (9, [44, 44, 18, 18])]),
]


@pytest.fixture
def coco_folder(tmp_path):
    images, annotations = [], []
    os.makedirs(tmp_path / "img")
    rng = np.random.default_rng(0)
    for image_id, w, h, objects in IMAGES:
        name = f"{image_id}.jpg"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), np.uint8)).save(tmp_path / "img" / name)
        images.append({"id": image_id, "file_name": name, "width": w, "height": h})
        for cat, box in objects:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cat,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
    categories = [{"id": c, "name": f"cat{c}"} for c in (1, 5, 9)]
    ann = tmp_path / "instances.json"
    ann.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    return str(ann), str(tmp_path / "img")


class GroundTruthOracle:
    """A 'detector' answering each batch with the next images' ground truth.

    The eval pipeline is unshuffled, in source order, so it can read the
    source's own examples alongside. Boxes are rel_xyxy, as a detector's.
    """

    def __init__(self, source):
        self.examples = iter(source.dataset())

    def __call__(self, images):
        batch = [next(self.examples) for _ in range(int(images.shape[0]))]
        k = max(len(ex["classes"]) for ex in batch)
        out = {
            "boxes": np.zeros((len(batch), k, 4), np.float32),
            "scores": np.zeros((len(batch), k), np.float32),
            "classes": np.zeros((len(batch), k), np.int32),
            "num_detections": np.zeros(len(batch), np.int32),
        }
        for i, ex in enumerate(batch):
            n = len(ex["classes"])
            out["boxes"][i, :n] = ex["boxes"].numpy()
            out["scores"][i, :n] = 0.9
            out["classes"][i, :n] = ex["classes"].numpy()
            out["num_detections"][i] = n
        return out


def test_real_pipeline_maps_back_to_original_ids_and_sizes(coco_folder):
    source = data.coco(*coco_folder)
    assert source.category_ids == [1, 5, 9]
    results = evaluate_detector(GroundTruthOracle(source), source, input_size=32, batch_size=2)
    # Scored against the annotation file itself (pixels, ids 1/5/9): only a
    # correct mapping of ids and of each image's own size gives 1.0.
    assert results["num_images"] == 3
    assert results["coco"]["AP"] == pytest.approx(1.0)
    assert results["voc_map"] == pytest.approx(1.0)
    assert results["voc_map_area"] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def tiny_model():
    from cfsam_keras.models import SSD300

    return SSD300(
        3, backbone="mobilenet_v2", attention="none", input_size=64, backbone_kwargs={"alpha": 0.35}
    )


def test_callback_wraps_a_tiny_ssd_model(coco_folder, tiny_model):
    # model.fit integration (logs seen by CSVLogger, history) is covered in
    # test_evaluation_callback.py; tracing a real SSD train step costs ~40 s on CPU.
    source = data.coco(*coco_folder)
    callback = EvaluationCallback(val_data=source, batch_size=2, max_detections=20)
    callback.set_model(tiny_model)
    logs = {"loss": 1.0}
    callback.on_epoch_end(0, logs)
    # The detector is built once around the training model and shares its weights.
    assert callback.detector.get_layer(tiny_model.name) is tiny_model
    for key in (
        "val_AP",
        "val_AP50",
        "val_AP75",
        "val_AP_small",
        "val_AP_medium",
        "val_AP_large",
        "val_voc_map",
        "val_voc_map_area",
    ):
        assert not math.isnan(logs[key]) and -1.0 <= logs[key] <= 1.0, key
    assert callback.last_results["num_images"] == 3


@pytest.mark.slow
def test_cli_evaluate_saved_model(coco_folder, tiny_model, tmp_path, capsys, monkeypatch):
    from cfsam_keras import cli
    from cfsam_keras.cli import main
    from cfsam_keras.models import SSD300

    monkeypatch.setattr(cli, "SUBCOMMANDS", ("evaluate",))  # independent of the others

    path = str(tmp_path / "tiny.keras")
    tiny_model.save(path)
    out = str(tmp_path / "out" / "eval.json")
    ann, images = coco_folder
    rc = main(
        [
            "evaluate",
            "--model",
            path,
            "--coco-annotations",
            ann,
            "--image-dir",
            images,
            "--batch-size",
            "2",
            "--out",
            out,
        ]
    )
    printed = capsys.readouterr().out
    assert rc == 0
    assert "AP50" in printed and "cat9" in printed and "mAP VOC07 11-point" in printed
    assert "3/3" in printed and "/image" in printed  # the progress bar
    with open(out) as f:
        report = json.load(f)
    assert report["num_images"] == 3 and report["class_names"] == ["cat1", "cat5", "cat9"]
    assert set(report["coco"]) >= {"AP", "AP50", "AR100"}

    wrong = str(tmp_path / "wrong.keras")
    SSD300(
        4, backbone="mobilenet_v2", attention="none", input_size=64, backbone_kwargs={"alpha": 0.35}
    ).save(wrong)
    rc = main(["evaluate", "--model", wrong, "--coco-annotations", ann, "--image-dir", images])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err == (
        "cfsam-keras evaluate: error: the model predicts 4 classes but the dataset has 3"
    )
