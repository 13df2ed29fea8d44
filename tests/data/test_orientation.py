"""One EXIF orientation policy: every tag, on every path, as Pillow's `exif_transpose`
shows the image. The oriented files are written here."""

import io
import os

import numpy as np
import pytest
import tensorflow as tf
from fake_data import oriented_bytes
from fake_data import rect_image
from PIL import Image
from PIL import ImageOps

import cfsam_keras.data as data
from cfsam_keras.data import orientation

TAGS = range(1, 9)
# 30 wide, 20 high; the rectangle (pixel xyxy) is off-centre so every turn moves it.
DISPLAYED_BOX = (4, 3, 13, 9)
DISPLAYED = rect_image(20, 30, [DISPLAYED_BOX])


def _pillow_view(encoded):
    return np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(encoded))).convert("RGB"))


decode_upright = tf.function(orientation.decode_upright)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("big_endian", [False, True])
def test_every_tag_reads_and_turns_as_pillow_does(fmt, big_endian):
    for tag in TAGS:
        encoded = oriented_bytes(DISPLAYED, tag, fmt, big_endian)
        shown = _pillow_view(encoded)
        with Image.open(io.BytesIO(encoded)) as image:
            assert orientation.exif_orientation(image) == tag
            np.testing.assert_array_equal(
                np.asarray(orientation.upright(image).convert("RGB")), shown
            )
        assert int(orientation.encoded_orientation(tf.constant(encoded))) == tag, (fmt, tag)
        got = decode_upright(tf.constant(encoded)).numpy()
        if fmt == "PNG":
            np.testing.assert_array_equal(got, shown, err_msg=str(tag))
            np.testing.assert_array_equal(got, DISPLAYED, err_msg=str(tag))
        else:  # TensorFlow's JPEG decoder and Pillow's round differently: turn TF's pixels
            stored = tf.io.decode_image(encoded, channels=3).numpy()
            want = np.asarray(orientation.upright(Image.fromarray(stored), tag))
            np.testing.assert_array_equal(got, want, err_msg=str(tag))


def test_odd_bytes_read_as_tag_one_without_error():
    plain = io.BytesIO()
    Image.fromarray(DISPLAYED).save(plain, "JPEG")
    oriented = oriented_bytes(DISPLAYED, 6, "JPEG")
    bad_tag = bytearray(oriented)
    at = bad_tag.index(b"\x12\x01\x03\x00")  # the little-endian orientation entry
    bad_tag[at + 8] = 9
    bad_offset = bytearray(oriented)
    ifd = bad_offset.index(b"II*\x00") + 4
    bad_offset[ifd : ifd + 4] = b"\xff\xff\xff\x7f"
    for encoded in (
        b"",
        b"\xff\xd8",
        b"garbage" * 10,
        plain.getvalue(),
        oriented[:40],
        bytes(bad_tag),
        bytes(bad_offset),
        oriented_bytes(DISPLAYED, 1, "PNG"),
    ):
        assert int(orientation.encoded_orientation(tf.constant(encoded))) == 1


def test_upright_boxes_follow_the_pixels():
    for tag in TAGS:
        encoded = oriented_bytes(DISPLAYED, tag, "PNG")
        stored = np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB"))
        ys, xs = np.nonzero(stored[..., 0] != 90)
        stored_box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        height, width = stored.shape[:2]
        turned = orientation.upright_boxes([stored_box], tag, width, height)[0]
        np.testing.assert_allclose(turned, DISPLAYED_BOX, err_msg=str(tag))


def _write(folder, name, encoded):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(encoded)


def test_coco_source_holds_oriented_images_upright(tmp_path, helpers):
    x0, y0, x1, y1 = DISPLAYED_BOX
    stored_box = orientation.upright_boxes([DISPLAYED_BOX], 8, 30, 20)[0]  # tag 8 undoes 6
    for name in ("on_stored.png", "on_displayed.jpg", "wrong_size.png"):
        _write(
            str(tmp_path),
            name,
            oriented_bytes(DISPLAYED, 6, name[-3:].replace("jpg", "JPEG").upper()),
        )
    sx, sy, sx1, sy1 = (float(v) for v in stored_box)
    annotation_file = helpers.write_coco(
        str(tmp_path),
        [
            (1, "on_stored.png", 20, 30),
            (2, "on_displayed.jpg", 30, 20),
            (3, "wrong_size.png", 50, 50),
        ],
        [
            {"image_id": 1, "category_id": 1, "bbox": [sx, sy, sx1 - sx, sy1 - sy]},
            {"image_id": 2, "category_id": 1, "bbox": [x0, y0, x1 - x0, y1 - y0]},
            {"image_id": 3, "category_id": 1, "bbox": [x0, y0, x1 - x0, y1 - y0]},
        ],
    )
    source = data.coco(annotation_file, str(tmp_path))
    assert len(source) == 2
    assert [os.path.basename(p.file) for p in source.report.skipped] == ["wrong_size.png"]
    fixed = [p.reason for p in source.report.fixed]
    assert sum("EXIF orientation 6" in r for r in fixed) == 2, fixed
    want = np.array(DISPLAYED_BOX, np.float32) / [30, 20, 30, 20]
    for example in source.dataset():
        image = example["image"].numpy()
        assert image.shape == (20, 30, 3)
        np.testing.assert_allclose(example["boxes"].numpy(), [want], atol=1e-6)
    np.testing.assert_array_equal(next(iter(source.dataset()))["image"].numpy(), DISPLAYED)
    # The ground truth the evaluation scores against is turned the same way.
    gt = source.coco
    assert (gt.imgs[1]["width"], gt.imgs[1]["height"]) == (30, 20)
    np.testing.assert_allclose(gt.imgToAnns[1][0]["bbox"], [x0, y0, x1 - x0, y1 - y0])


def test_voc_source_turns_boxes_drawn_on_stored_pixels(tmp_path, helpers):
    x0, y0, x1, y1 = (int(v) for v in orientation.upright_boxes([DISPLAYED_BOX], 8, 30, 20)[0])
    stored_box = (x0 + 1, y0 + 1, x1, y1)  # VOC's 1-based inclusive pixel indices
    root = helpers.write_voc(
        str(tmp_path),
        2007,
        "test",
        [("000001", None, helpers.voc_xml(20, 30, [("cat", stored_box, 0)]))],
    )
    _write(
        os.path.join(root, "VOC2007", "JPEGImages"),
        "000001.jpg",
        oriented_bytes(DISPLAYED, 6, "JPEG"),
    )
    source = data.voc(root, 2007, "test", class_names=["cat"])
    (example,) = list(source.dataset())
    assert example["image"].shape == (20, 30, 3)
    np.testing.assert_allclose(
        example["boxes"].numpy(), [np.array(DISPLAYED_BOX) / [30, 20, 30, 20]], atol=1e-6
    )
