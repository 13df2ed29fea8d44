"""``cfsam-keras predict`` on awkward inputs: colliding names, unreadable entries,
16-bit images, a bad ``--out``."""

import json
import os

import numpy as np
import pytest
from export_helpers import cli
from PIL import Image


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from cfsam_keras.models import SSD300

    model = SSD300(
        class_names=["a", "b"],
        backbone="small_vgg",
        attention="none",
        input_size=64,
        anchor_preset="coco",
        backbone_kwargs={"widths": (8, 8, 16, 16)},
    )
    path = str(tmp_path_factory.mktemp("model") / "tiny.keras")
    model.save(path)
    return path


def _image(path, value=100, mode="RGB", fmt=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new(mode, (40, 30), value if mode != "RGB" else (value, value, value)).save(path, fmt)


def _predict(model, *inputs, out):
    code, message = cli("predict", "--model", model, *map(str, inputs), "--out", str(out))
    with open(out / "detections.json") as f:
        return code, message, json.load(f)["images"]


def test_colliding_names_get_their_own_pictures(tiny_model, tmp_path):
    for name in ("a/img.jpg", "b/img.jpg", "c/x.jpg", "c/x.png"):
        _image(str(tmp_path / "in" / name))
    inputs = [tmp_path / "in" / n for n in ("a/img.jpg", "b/img.jpg")] + [tmp_path / "in" / "c"]
    code, _, records = _predict(tiny_model, *inputs, out=tmp_path / "out")
    assert code == 0
    pictures = [r["picture"] for r in records]
    assert pictures == ["img.png", "img_2.png", "x.png", "x_2.png"]
    assert sorted(os.listdir(tmp_path / "out")) == sorted(pictures + ["detections.json"])


def test_unreadable_entries_are_reported_and_the_rest_done(tiny_model, tmp_path):
    folder = tmp_path / "in"
    _image(str(folder / "good_1.jpg"))
    _image(str(folder / "good_2.png"))
    (folder / "fake.jpg").write_text("not an image")
    _image(str(folder / "whole.jpg"))
    data = (folder / "whole.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    os.remove(folder / "whole.jpg")
    os.symlink(folder / "nowhere.jpg", folder / "dangling.jpg")
    os.mkdir(folder / "dir.jpg")
    code, message, records = _predict(tiny_model, folder, out=tmp_path / "out")
    assert code == 2 and "3 of 5 images could not be read" in message and "\n" not in message
    by_name = {os.path.basename(r["file"]): r for r in records}
    assert sorted(by_name) == [
        "dangling.jpg",
        "fake.jpg",
        "good_1.jpg",
        "good_2.png",
        "truncated.jpg",
    ]
    for bad in ("dangling.jpg", "fake.jpg", "truncated.jpg"):
        assert bad in by_name[bad]["error"] and "detections" not in by_name[bad]
    for good in ("good_1.jpg", "good_2.png"):
        assert "detections" in by_name[good]
    assert sorted(os.listdir(tmp_path / "out")) == ["detections.json", "good_1.png", "good_2.png"]


def test_sixteen_bit_grayscale_keeps_its_brightness(tmp_path):
    from cfsam_keras.cli.predict import read_image

    path = str(tmp_path / "deep.png")
    Image.fromarray(np.full((30, 40), 32896, np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")
    image = read_image(path)
    assert image.shape == (30, 40, 3) and image.dtype == np.uint8
    assert (image == 128).all()  # 32896 / 257; Pillow's own convert("RGB") gives 255


def test_out_that_is_a_file_fails_before_any_work(tmp_path):
    (tmp_path / "out").write_text("a file")
    _image(str(tmp_path / "a.jpg"))
    code, message = cli(
        "predict",
        "--model",
        str(tmp_path / "none.keras"),
        str(tmp_path / "a.jpg"),
        "--out",
        str(tmp_path / "out"),
    )
    assert code == 2 and "--out" in message and "is not a folder" in message
