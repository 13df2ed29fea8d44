"""ONNX export: standard operators only, parity with Keras in ONNX Runtime, CLI."""

import json
import sys

import numpy as np
import pytest
from export_helpers import NUM_CLASSES
from export_helpers import SIZE
from export_helpers import assert_matched
from export_helpers import cli
from export_helpers import keras_detections
from export_helpers import random_images

from cfsam_keras.models import model_config


@pytest.fixture(scope="session")
def onnx_files(trained_model, tmp_path_factory):
    """The small trained model as ONNX files: batch 1 and a dynamic batch."""
    from cfsam_keras.export import export_onnx

    folder = tmp_path_factory.mktemp("onnx")
    return {
        batch: export_onnx(trained_model[0], str(folder / f"b{batch}.onnx"), batch_size=batch)
        for batch in (1, None)
    }


def _builtin_images(shapes_dataset, split, count, size):
    from cfsam_keras.data import coco
    from cfsam_keras.data import eval_pipeline

    batch = next(iter(eval_pipeline(coco(*shapes_dataset[split]), size, count)))["images"]
    return np.round(batch.numpy()).astype(np.uint8)


def _standard_operators_only(path):
    import onnx

    from cfsam_keras.export import operator_domains

    ops = operator_domains(onnx.load(path))
    assert {domain for domain, _ in ops} <= {"", "ai.onnx"}, ops
    assert ("", "NonMaxSuppression") in ops, ops
    return {op for _, op in ops}


def _check_parity(model, path, batches):
    """ONNX Runtime against Keras: raw outputs within 1e-4; every Keras detection scoring
    0.3 or more has a same-class ONNX one with IoU >= 0.99; equal detection counts."""
    from cfsam_keras.export import load_predictor

    predictor = load_predictor("onnx", path)
    checked = 0
    for images in batches:
        out = predictor.run(images)
        expected = model.predict_on_batch(images.astype(np.float32))
        assert out["raw_predictions"].shape == expected.shape
        assert np.abs(out["raw_predictions"] - expected).max() <= 1e-4
        reference = keras_detections(model, images)
        found = [
            {
                "boxes": out["detection_boxes"][i, :n][:, [1, 0, 3, 2]],
                "scores": out["detection_scores"][i, :n],
                "classes": out["detection_classes"][i, :n],
            }
            for i, n in enumerate(out["num_detections"])
        ]
        assert [len(r["scores"]) for r in reference] == list(out["num_detections"])
        checked += assert_matched(reference, found, 0.3, 0.99)
    return predictor, checked


# --- quick tests ---------------------------------------------------------------------------


def test_export_onnx_errors(monkeypatch, tmp_path):
    from cfsam_keras.export import export_onnx
    from cfsam_keras.models import SSD300

    model = SSD300(NUM_CLASSES, backbone="small_vgg", attention="none", input_size=SIZE)
    with pytest.raises(ValueError, match="batch_size"):
        export_onnx(model, str(tmp_path / "m.onnx"), batch_size=0)
    with pytest.raises(TypeError, match="score_treshold"):
        export_onnx(model, str(tmp_path / "m.onnx"), score_treshold=0.5)
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    with pytest.raises(ImportError, match=r"cfsam-keras\[onnx\]"):
        export_onnx(model, str(tmp_path / "m.onnx"))
    assert not list(tmp_path.iterdir())


def test_cli_onnx_argument_errors(tmp_path):
    keras_file = str(tmp_path / "x.keras")
    code, message = cli(
        "export", "--model", keras_file, "--format", "tflite", "--batch-size", "2", "--out", "o"
    )
    assert code == 2 and "--batch-size applies to --format onnx only" in message
    code, message = cli(
        "export", "--model", keras_file, "--format", "onnx", "--quantization", "int8", "--out", "o"
    )
    assert code == 2 and "--quantization applies to --format tflite only" in message
    (tmp_path / "a.png").write_bytes(b"not a png")
    code, message = cli("predict", "--onnx", str(tmp_path / "none.onnx"), str(tmp_path))
    assert code == 2 and "--onnx must be an existing .onnx file" in message


# --- the small trained model ---------------------------------------------------------------


@pytest.mark.slow
def test_onnx_matches_keras(trained_model, onnx_files, shapes_dataset):
    model, _, train_images = trained_model
    val_images = _builtin_images(shapes_dataset, "val", 8, SIZE)
    fresh = random_images(3, seed=5)
    singles = [images[i : i + 1] for images in (train_images, val_images, fresh) for i in (0, 1)]
    predictor, checked = _check_parity(model, onnx_files[1], singles)
    assert checked >= 2  # the trained model finds objects
    assert predictor.input_size == SIZE
    assert predictor.class_names == model_config(model)["class_names"]
    ops = _standard_operators_only(onnx_files[1])
    assert "Loop" not in ops  # batch 1: no loop around the NMS

    predictor, checked = _check_parity(model, onnx_files[None], [train_images, fresh, singles[0]])
    assert checked >= 5
    assert "Loop" in _standard_operators_only(onnx_files[None])
    # The single-image interface gives the Keras predictor's detections.
    from cfsam_keras.export import load_predictor

    keras_predictor = load_predictor("keras", model)
    for image in (train_images[0], fresh[0]):
        ref, got = keras_predictor.predict(image), predictor.predict(image)
        assert len(ref["scores"]) == len(got["scores"])
        assert assert_matched([ref], [got], 0.3, 0.99) >= 0


@pytest.mark.slow
def test_onnx_metadata_and_settings(trained_model, tmp_path):
    import onnxruntime

    from cfsam_keras.export import export_onnx
    from cfsam_keras.export.onnx import read_metadata

    model, _, train_images = trained_model
    names = [f"thing_{i}" for i in range(NUM_CLASSES)]
    path = export_onnx(
        model, str(tmp_path / "m.onnx"), class_names=names, score_threshold=0.5, max_detections=7
    )
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    metadata = read_metadata(session.get_modelmeta().custom_metadata_map)
    assert metadata["class_names"] == names
    assert metadata["input_size"] == SIZE
    assert metadata["settings"]["score_threshold"] == 0.5
    assert metadata["settings"]["max_detections"] == 7
    assert metadata["settings"]["iou_threshold"] == 0.45  # SSD's, recorded
    names = [o.name for o in session.get_outputs()]
    assert names == [  # TensorFlow's (sorted) order of the outputs
        "detection_boxes",
        "detection_classes",
        "detection_scores",
        "num_detections",
        "raw_predictions",
    ]
    boxes, classes, scores, num, raw = session.run(None, {"images": train_images[:1]})
    assert boxes.shape == (1, 7, 4) and scores.shape == (1, 7) and classes.dtype == np.int32
    assert (scores[0, : num[0]] >= 0.5).all()
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.slow
def test_cli_export_onnx_then_predict(trained_model, shapes_dataset, tmp_path):
    _, keras_path, _ = trained_model
    code, _ = cli("export", "--model", keras_path, "--format", "onnx", "--out", str(tmp_path))
    onnx_path = tmp_path / "small.onnx"
    assert code == 0 and onnx_path.is_file()
    images = shapes_dataset["train"][1]
    results = {}
    for flag, value in (("--model", keras_path), ("--onnx", str(onnx_path))):
        out = tmp_path / flag.strip("-")
        assert cli("predict", flag, value, images, "--out", str(out))[0] == 0
        with open(out / "detections.json") as f:
            results[flag] = json.load(f)["images"]
    assert sum(len(r["detections"]) for r in results["--model"]) > 0
    for ref, got in zip(results["--model"], results["--onnx"]):
        assert [d["class_name"] for d in got["detections"]] == [
            d["class_name"] for d in ref["detections"]
        ]
        for a, b in zip(ref["detections"], got["detections"]):
            np.testing.assert_allclose(a["box"], b["box"], atol=1e-4)
            assert abs(a["score"] - b["score"]) <= 1e-4


@pytest.mark.slow
def test_onnx_ap50_matches_keras(trained_model, shapes_dataset, onnx_files):
    """Scored with pycocotools through the predictor interface, as the demo scores it."""
    from cfsam_keras.data import coco
    from cfsam_keras.evaluation.detector_eval import evaluate_detector
    from cfsam_keras.export import batch_detector
    from cfsam_keras.export import load_predictor
    from cfsam_keras.models import detector

    model, _, _ = trained_model
    source = coco(*shapes_dataset["train"])
    keras_ap = evaluate_detector(detector(model), source, input_size=SIZE)["coco"]["AP50"]
    onnx = batch_detector(load_predictor("onnx", onnx_files[None]))
    onnx_ap = evaluate_detector(onnx, source, input_size=SIZE)["coco"]["AP50"]
    assert keras_ap > 0.3
    assert abs(onnx_ap - keras_ap) <= 0.005, (keras_ap, onnx_ap)


# --- SSD300-VGG16 with CFSAM ----------------------------------------------------------------


@pytest.mark.slow
def test_vgg16_cfsam_onnx_matches_keras(vgg16_cfsam, tmp_path):
    from cfsam_keras.export import export_onnx

    model, images = vgg16_cfsam
    path = export_onnx(model, str(tmp_path / "vgg.onnx"))
    ops = _standard_operators_only(path)
    assert {"Erf", "TopK", "Loop"} <= ops, ops  # CFSAM's GELU, the per-class top 400, the batch
    _, checked = _check_parity(model, path, [images, images[2:3]])
    assert checked >= 10
