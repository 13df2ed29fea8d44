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


def test_encode_batch_gives_the_targets_of_encode_bit_for_bit():
    import numpy as np
    from batch_encoding import encode_batch

    from cfsam_keras.anchors import ssd300_default_boxes
    from cfsam_keras.targets import encode

    anchors = ssd300_default_boxes("voc")
    rng = np.random.default_rng(0)
    images = []
    for n in (3, 0, 1, 6, 2):
        low = rng.uniform(0, 0.8, (n, 2))
        boxes = np.concatenate([low, low + rng.uniform(0.01, 0.5, (n, 2))], 1).astype(np.float32)
        images.append((boxes, rng.integers(0, 20, n).astype(np.int32)))
    images[0][0][1] = images[0][0][0]  # two ground truths on one box: the later one forces it
    images[3][0][2, 2] = images[3][0][2, 0]  # zero width: matches nothing
    images[3][0][4] = [1.2, 1.2, 1.5, 1.5]  # outside the image: overlaps no default box
    width = max(len(c) for _, c in images)
    padded = np.zeros((len(images), width, 4), np.float32)
    classes = np.full((len(images), width), -1, np.int32)
    for i, (b, c) in enumerate(images):
        padded[i, : len(c)], classes[i, : len(c)] = b, c
    batched = encode_batch(padded, classes, anchors).numpy()
    for i, (b, c) in enumerate(images):
        np.testing.assert_array_equal(batched[i], encode(b, c, anchors).numpy())
    assert (batched[..., 4] > 0).sum() > 10


def test_encoding_pipelines_time_the_same_targets(tmp_path):
    import numpy as np

    from cfsam_keras.anchors import ssd300_default_boxes

    paths = write_builtin_dataset(tmp_path, train=5, val=0, seed=0, image_size=64)
    boxes, classes = pipeline.annotation_boxes(paths["train"][0])
    assert len(boxes) == 5 and all(b.shape == (len(c), 4) for b, c in zip(boxes, classes))
    assert all(((b >= 0) & (b <= 1)).all() for b in boxes)
    per_example, batched = pipeline.encoding_pipelines(
        boxes, classes, ssd300_default_boxes("voc"), 4
    )
    for a, b in zip(per_example.take(3), batched.take(3)):  # repeats past the 5 images
        assert a.shape == (4, 8732, 5)
        np.testing.assert_array_equal(a.numpy(), b.numpy())
