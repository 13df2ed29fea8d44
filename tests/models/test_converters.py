"""Trained SSD300 weights from torchvision and ssd.pytorch (cfsam_keras.models.converters).

No torch here: the state dicts have the peers' exact keys and shapes (written down in
peer_reference.py) with seeded values, and the converted models are compared with an
evaluation of the same weights that follows the peers' modules.
"""

import json
import re

import keras
import numpy as np
import pytest
from peer_reference import seeded_state
from peer_reference import ssd_pytorch_forward
from peer_reference import ssd_pytorch_shapes
from peer_reference import torchvision_forward
from peer_reference import torchvision_shapes

from cfsam_keras.class_lists import COCO_CATEGORIES
from cfsam_keras.class_lists import VOC_CLASSES
from cfsam_keras.models import from_ssd_pytorch
from cfsam_keras.models import from_torchvision
from cfsam_keras.models import model_config
from cfsam_keras.models import model_default_boxes

RNG = np.random.default_rng(0)
IMAGES = RNG.uniform(0, 255, (2, 300, 300, 3)).astype(np.float32)


def assert_close(ours, theirs):
    scale = np.abs(theirs).max()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * scale)


@pytest.fixture(scope="module")
def torchvision_state():
    return seeded_state(torchvision_shapes(91), seed=1)


@pytest.fixture(scope="module")
def torchvision_model(torchvision_state):
    return from_torchvision(torchvision_state)


def test_torchvision_coco_outputs_match_its_forward(torchvision_state, torchvision_model):
    boxes, logits = torchvision_forward(torchvision_state, IMAGES)
    ours = np.asarray(torchvision_model(IMAGES))
    ids = sorted(COCO_CATEGORIES)
    assert ours.shape == (2, 8732, 4 + 81)
    assert_close(ours[..., :4], boxes)
    # The 80 used slots, background first, become the contiguous classes.
    assert_close(ours[..., 4:], logits[..., [0] + ids])
    config = model_config(torchvision_model)
    assert config["class_names"] == [COCO_CATEGORIES[i] for i in ids]
    assert config["class_names"][:3] == ["person", "bicycle", "car"]


def test_torchvision_keep_unused_slots_gives_all_91(torchvision_state):
    model = from_torchvision(torchvision_state, unused_slots="keep")
    _, logits = torchvision_forward(torchvision_state, IMAGES[:1])
    assert_close(np.asarray(model(IMAGES[:1]))[..., 4:], logits)
    names = model_config(model)["class_names"]
    assert len(names) == 90 and names[11] == "unused_12" and names[12] == "stop sign"


def test_torchvision_default_boxes_are_the_coco_preset(torchvision_model):
    # torchvision's DefaultBoxGenerator(scales 0.07 .. 1.05, steps 8 .. 300, clip=True),
    # written out: centres (j + 0.5) / (300 / step), widths and heights clamped to 1.
    scales = [0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05]
    ratios = [[2], [2, 3], [2, 3], [2, 3], [2], [2]]
    steps, sizes = [8, 16, 32, 64, 100, 300], [38, 19, 10, 5, 3, 1]
    expected = []
    for k, f in enumerate(sizes):
        s, s_next = scales[k], np.sqrt(scales[k] * scales[k + 1])
        wh = [(s, s), (s_next, s_next)]
        for r in ratios[k]:
            wh += [(s * np.sqrt(r), s / np.sqrt(r)), (s / np.sqrt(r), s * np.sqrt(r))]
        wh = np.clip(np.array(wh), 0, 1)
        centres = (np.arange(f) + 0.5) / (300 / steps[k])
        for cy in centres:
            for cx in centres:
                expected += [(cx, cy, w, h) for w, h in wh]
    np.testing.assert_allclose(model_default_boxes(torchvision_model), expected, atol=1e-6)


def test_ssd_pytorch_voc_outputs_and_boxes():
    state = seeded_state(ssd_pytorch_shapes(21), seed=2)
    model = from_ssd_pytorch(state)
    loc, conf = ssd_pytorch_forward(state, IMAGES)
    ours = np.asarray(model(IMAGES))
    assert_close(ours[..., :4], loc)
    assert_close(ours[..., 4:], conf)
    config = model_config(model)
    assert config["class_names"] == list(VOC_CLASSES)
    # ssd.pytorch's PriorBox (voc config), written out: clamps all four coordinates.
    min_sizes, max_sizes = [30, 60, 111, 162, 213, 264], [60, 111, 162, 213, 264, 315]
    ratios = [[2], [2, 3], [2, 3], [2, 3], [2], [2]]
    steps, sizes = [8, 16, 32, 64, 100, 300], [38, 19, 10, 5, 3, 1]
    priors = []
    for k, f in enumerate(sizes):
        for i in range(f):
            for j in range(f):
                cx, cy = (j + 0.5) / (300 / steps[k]), (i + 0.5) / (300 / steps[k])
                s = min_sizes[k] / 300
                priors += [(cx, cy, s, s)]
                s_next = np.sqrt(s * (max_sizes[k] / 300))
                priors += [(cx, cy, s_next, s_next)]
                for r in ratios[k]:
                    priors += [(cx, cy, s * np.sqrt(r), s / np.sqrt(r))]
                    priors += [(cx, cy, s / np.sqrt(r), s * np.sqrt(r))]
    np.testing.assert_allclose(model_default_boxes(model), np.clip(priors, 0, 1), atol=1e-6)


def test_files_without_torch_and_checkpoint_wrappers(tmp_path):
    import safetensors.numpy

    from cfsam_keras.models.state_dicts import read_state_dict

    state = seeded_state(ssd_pytorch_shapes(3), seed=3)
    npz, tensors = str(tmp_path / "ssd.npz"), str(tmp_path / "ssd.safetensors")
    np.savez(npz, **{f"module.{k}": v for k, v in state.items()})  # a DataParallel checkpoint
    safetensors.numpy.save_file(state, tensors)
    for read in (
        read_state_dict(npz),
        read_state_dict({"model": state, "epoch": 3}),  # torchvision's references' checkpoints
        read_state_dict({"state_dict": state}),
    ):
        assert read.keys() == state.keys()
        for key, value in state.items():
            np.testing.assert_array_equal(read[key], value)
    model = from_ssd_pytorch(tensors, class_names=["a", "b"])
    _, conf = ssd_pytorch_forward(state, IMAGES[:1])
    assert_close(np.asarray(model(IMAGES[:1]))[..., 4:], conf)
    assert model_config(model)["class_names"] == ["a", "b"]


def test_bad_state_dicts_name_what_is_wrong(tmp_path):
    state = seeded_state(ssd_pytorch_shapes(21), seed=4)
    with pytest.raises(ValueError, match=r"lacks 'head.classification_head.module_list.0.bias'"):
        from_torchvision(state)
    with pytest.raises(ValueError, match=r"lacks 2 expected keys.*extras.7"):
        from_ssd_pytorch({k: v for k, v in state.items() if not k.startswith("extras.7")})
    with pytest.raises(ValueError, match=r"has 1 keys this model has no place for.*stray"):
        from_ssd_pytorch({**state, "stray.weight": np.zeros(3, np.float32)})
    bad = dict(state, **{"vgg.0.weight": np.zeros((64, 3, 5, 5), np.float32)})
    with pytest.raises(ValueError, match=r"vgg.0.weight.*block1_conv1"):
        from_ssd_pytorch(bad)
    odd = seeded_state(ssd_pytorch_shapes(6), seed=4)
    with pytest.raises(ValueError, match="predict 5 object classes.*pass class_names"):
        from_ssd_pytorch(odd)
    path = tmp_path / "broken.pth"
    path.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"broken.pth: (not a readable|reading a .pth)"):
        from_ssd_pytorch(str(path))
    with pytest.raises(ValueError, match=r"missing.npz: no such file"):
        from_ssd_pytorch(str(tmp_path / "missing.npz"))
    with pytest.raises(ValueError, match=r"weights.h5: expected a file ending in"):
        from_torchvision(str(tmp_path / "weights.h5"))


@pytest.mark.slow
def test_converted_model_reloads_and_exports_with_its_names(tmp_path, torchvision_model):
    from cfsam_keras.export import export_saved_model
    from cfsam_keras.export import export_tflite
    from cfsam_keras.export import load_predictor

    path = str(tmp_path / "torchvision.keras")
    torchvision_model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(reloaded(IMAGES[:1]), torchvision_model(IMAGES[:1]))
    names = model_config(torchvision_model)["class_names"]
    assert model_config(reloaded)["class_names"] == names
    image = IMAGES[0].astype(np.uint8)
    saved_model = load_predictor("saved_model", export_saved_model(reloaded, str(tmp_path / "sm")))
    assert saved_model.class_names == names
    expected = load_predictor("keras", reloaded).predict(image)
    got = saved_model.predict(image)
    assert len(expected["scores"]) > 10
    np.testing.assert_array_equal(got["classes"], expected["classes"])
    np.testing.assert_allclose(got["boxes"], expected["boxes"], atol=1e-3)
    # Random weights saturate the softmax (ties at 1.0), so TFLite is compared raw.
    tflite = load_predictor("tflite", export_tflite(reloaded, str(tmp_path / "m.tflite")))
    assert tflite.class_names == names
    raw = np.asarray(tflite.run(image[None])["raw_predictions"])
    keras_raw = np.asarray(reloaded(image[None].astype(np.float32)))
    assert np.abs(raw - keras_raw).max() <= 1e-4 * np.abs(keras_raw).max()


def test_convert_weights_command(tmp_path, capsys):
    from cfsam_keras.cli import main

    state = seeded_state(ssd_pytorch_shapes(3), seed=5)
    weights = str(tmp_path / "ssd300.npz")
    np.savez(weights, **state)
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\n")
    out = str(tmp_path / "ssd.keras")
    argv = ["convert-weights", weights, "--from", "ssd.pytorch", "--out", out]
    assert main(argv + ["--class-names", str(names)]) == 0
    assert "2 classes (cat, dog, ...)" in capsys.readouterr().out
    model = keras.saving.load_model(out, safe_mode=True)
    _, conf = ssd_pytorch_forward(state, IMAGES[:1])
    assert_close(np.asarray(model(IMAGES[:1]))[..., 4:], conf)
    assert model_config(model)["class_names"] == ["cat", "dog"]
    # Nothing is overwritten, and every refusal is one line with exit status 2.
    for extra, message in (
        (["--class-names", str(names)], "exists; pick a new name"),
        (["--out", str(tmp_path / "new.keras")], "predict 2 object classes.*pass class_names"),
        (["--out", str(tmp_path / "x.keras"), "--unused-slots", "keep"], "is for --from torch"),
    ):
        assert main(argv + extra) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
        assert re.search(message, err), err
    assert not (tmp_path / "new.keras").exists()


def test_coco_classes_are_those_the_coco_reader_gives(tmp_path, torchvision_model):
    from PIL import Image

    from cfsam_keras.data import coco

    ids = list(COCO_CATEGORIES)
    np.random.default_rng(0).shuffle(ids)  # the file's order does not matter
    Image.new("RGB", (40, 30)).save(tmp_path / "a.jpg")
    annotations = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 90, "bbox": [1, 1, 10, 10], "iscrowd": 0}
        ],
        "categories": [{"id": i, "name": COCO_CATEGORIES[i]} for i in ids],
    }
    path = tmp_path / "instances_val2017.json"
    path.write_text(json.dumps(annotations))
    source = coco(str(path), str(tmp_path))
    assert list(source.class_names) == model_config(torchvision_model)["class_names"]
    assert list(source.category_ids) == sorted(COCO_CATEGORIES)  # class i scores as its id
