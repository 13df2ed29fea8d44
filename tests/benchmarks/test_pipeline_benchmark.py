"""``benchmarks/pipeline.py``: the VOC-like copy of the built-in dataset, the rates it prints."""

import json

import pipeline
import pytest
from PIL import Image

from cfsam_keras.data import coco
from cfsam_keras.data import write_builtin_dataset


def test_voc_like_cuts_images_and_keeps_boxes_mostly_inside(tmp_path):
    paths = write_builtin_dataset(tmp_path / "square", train=6, val=0, seed=0, image_size=128)
    annotations, folder = pipeline.voc_like(tmp_path / "square", tmp_path / "voc", 128, 96)
    with open(paths["train"][0]) as f:
        before = json.load(f)
    with open(annotations) as f:
        after = json.load(f)
    assert {(i["width"], i["height"]) for i in after["images"]} == {(128, 96)}
    with Image.open(f"{folder}/{after['images'][0]['file_name']}") as im:
        assert im.size == (128, 96)
    expected = 0
    for a in before["annotations"]:
        x, y, w, h = a["bbox"]
        inside = (min(x + w, 128) - x) * (min(y + h, 96) - y)
        expected += y < 96 and inside >= pipeline.KEEP_AREA * w * h
    assert len(after["annotations"]) == expected > 0
    assert all(a["bbox"][1] + a["bbox"][3] <= 96 for a in after["annotations"])
    assert len(coco(annotations, folder)) == 6
    with pytest.raises(ValueError, match="--voc-size 500x375"):
        pipeline.voc_like(tmp_path / "square", tmp_path / "big", 500, 375)


def test_train_step_rates_read_the_results(tmp_path):
    rows = {"vgg16 none": {"train_images_per_s": 0.5}, "other": {}}
    (tmp_path / "train_step_jax_float32.json").write_text(json.dumps({"rows": rows}))
    [(path, rates)] = pipeline.train_step_rates(str(tmp_path))
    assert path.endswith("train_step_jax_float32.json") and rates == {"vgg16 none": 0.5}
