"""Images the input check lets through: decoded to the pixels a viewer shows, or named
and counted when TensorFlow cannot decode them; never a hang. The corpus is written here."""

import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from fake_data import broken_huffman_jpeg
from PIL import Image

import cfsam_keras.data as data

HERE = os.path.dirname(os.path.abspath(__file__))


def _rgb(seed=0, height=30, width=40):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _coco_of(tmp_path, helpers, files):
    images = [(i + 1, name, 40, 30) for i, name in enumerate(files)]
    boxes = [
        {"image_id": i + 1, "category_id": 1, "bbox": [5, 5, 20, 15]} for i in range(len(files))
    ]
    return helpers.write_coco(str(tmp_path), images, boxes)


def test_palette_and_one_bit_bmps_reach_the_pipeline_as_shown(tmp_path, helpers):
    palette = Image.fromarray(_rgb()).convert("P", palette=Image.ADAPTIVE, colors=16)
    palette.save(tmp_path / "palette.bmp")
    Image.fromarray(_rgb(1)).convert("1").save(tmp_path / "one_bit.bmp")
    Image.fromarray(_rgb(2)).save(tmp_path / "rgb.bmp")
    source = data.coco(
        _coco_of(tmp_path, helpers, ["palette.bmp", "one_bit.bmp", "rgb.bmp"]), str(tmp_path)
    )
    assert len(source) == 3
    fixed = {os.path.basename(p.file): p.reason for p in source.report.fixed}
    assert set(fixed) == {"palette.bmp", "one_bit.bmp"}
    assert "converted to an RGB PNG" in fixed["palette.bmp"]
    shown = {
        name: np.asarray(Image.open(tmp_path / name).convert("RGB"))
        for name in ("palette.bmp", "one_bit.bmp", "rgb.bmp")
    }
    for example, name in zip(source.dataset(), ("palette.bmp", "one_bit.bmp", "rgb.bmp")):
        np.testing.assert_array_equal(example["image"].numpy(), shown[name], err_msg=name)
    batch = next(iter(data.eval_pipeline(source, 32, 3)))
    assert batch["images"].shape[0] == 3  # none lost


def test_undecodable_images_are_named(tmp_path, helpers):
    broken_huffman_jpeg(str(tmp_path / "bad.jpg"))
    helpers.save_image(str(tmp_path / "good.jpg"), _rgb())
    source = data.coco(_coco_of(tmp_path, helpers, ["good.jpg", "bad.jpg"]), str(tmp_path))
    assert len(source) == 2  # the header check cannot see the broken table
    ((name, error),) = data.undecodable_images(source)
    assert name.endswith("bad.jpg") and error


def test_evaluation_names_and_counts_what_it_could_not_decode(tmp_path, helpers, caplog):
    from cfsam_keras.evaluation.detector_eval import evaluate_detector

    for i in range(2):
        helpers.save_image(str(tmp_path / f"good_{i}.jpg"), _rgb(i))
        broken_huffman_jpeg(str(tmp_path / f"bad_{i}.jpg"), seed=i)
    files = ["good_0.jpg", "bad_0.jpg", "good_1.jpg", "bad_1.jpg"]
    source = data.coco(_coco_of(tmp_path, helpers, files), str(tmp_path))

    def detector(images):
        count = len(images)
        return {
            "boxes": np.tile([[[0.1, 0.1, 0.6, 0.6]]], (count, 1, 1)).astype(np.float32),
            "scores": np.full((count, 1), 0.9, np.float32),
            "classes": np.zeros((count, 1), np.int32),
            "num_detections": np.ones(count, np.int32),
        }

    with caplog.at_level(logging.WARNING, logger="cfsam_keras.evaluation"):
        results = evaluate_detector(detector, source, input_size=32, batch_size=4)
    assert results["num_images"] == 2
    assert [os.path.basename(p) for p in results["undecodable_images"]] == [
        "bad_0.jpg",
        "bad_1.jpg",
    ]
    assert "2 of 4 images could not be decoded" in caplog.text and "bad_0.jpg" in caplog.text


_FIT_ALL_UNDECODABLE = """
import sys
sys.path.insert(0, {tests!r})
import keras
import cfsam_keras.data as data
from cfsam_keras.losses import MultiBoxLoss
from cfsam_keras.models import SSD300, model_default_boxes
from cfsam_keras.training import DataRanOutError, RequireFullEpochs
import fake_data
from fake_data import broken_huffman_jpeg

root = {root!r}
for i in range(4):
    broken_huffman_jpeg(f"{{root}}/b{{i}}.jpg", seed=i)
images = [(i + 1, f"b{{i}}.jpg", 40, 30) for i in range(4)]
boxes = [{{"image_id": i + 1, "category_id": 1, "bbox": [5, 5, 20, 15]}} for i in range(4)]
source = data.coco(fake_data.write_coco(root, images, boxes), root)
model = SSD300(2, backbone="small_vgg", attention="none", input_size=64, anchor_preset="coco",
               backbone_kwargs={{"widths": (8, 8, 16, 16)}})
stream = data.train_pipeline(source, model_default_boxes(model), 64, 2, seed=0, augment=False)
print("batches in the repeated stream:", sum(1 for _ in stream))
model.compile(optimizer="adam", loss=MultiBoxLoss(2))
try:
    model.fit(stream, steps_per_epoch=2, epochs=2, verbose=0,
              callbacks=[RequireFullEpochs(source)])
except DataRanOutError as e:
    print("error:", e)
"""


@pytest.mark.slow
def test_no_decodable_training_image_ends_with_an_error_not_a_hang(tmp_path):
    script = _FIT_ALL_UNDECODABLE.format(tests=os.path.dirname(HERE), root=str(tmp_path))
    ran = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=240,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "batches in the repeated stream: 0" in ran.stdout
    (line,) = [line for line in ran.stdout.splitlines() if line.startswith("error:")]
    assert "epoch 1 got 0 of 2 batches: the training data ran out" in line
    assert "b0.jpg" in line
