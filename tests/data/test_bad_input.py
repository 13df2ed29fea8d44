"""The bad-input corpus: what each broken or odd input gets."""

import json
import logging
import os

import numpy as np
import pytest

import cfsam_keras.data as data
from cfsam_keras.data.source import Source
from cfsam_keras.data.source import records_from_lists


@pytest.fixture
def coco_corpus(tmp_path, helpers):
    d = tmp_path / "images"
    d.mkdir()
    img = helpers.rect_image(40, 60, [(10, 10, 30, 30)])
    helpers.save_image(str(d / "ok.jpg"), img)
    good = helpers.jpeg_bytes(img)
    (d / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (d / "empty.jpg").write_bytes(b"")
    helpers.save_image(str(d / "png_named.jpg"), img, fmt="PNG")
    helpers.save_image(str(d / "gray.jpg"), img, mode="L")
    helpers.save_image(str(d / "cmyk.jpg"), img, mode="CMYK")
    helpers.save_image(str(d / "rgba.png"), img, fmt="PNG", mode="RGBA")
    helpers.save_image(str(d / "no_objects.jpg"), img)
    names = [
        "ok.jpg",
        "truncated.jpg",
        "empty.jpg",
        "png_named.jpg",
        "gray.jpg",
        "cmyk.jpg",
        "rgba.png",
        "missing.jpg",
        "no_objects.jpg",
    ]
    images = [(i + 1, n, 60, 40) for i, n in enumerate(names)]

    def box(image_id, bbox):
        return {
            "image_id": image_id,
            "category_id": 1,
            "bbox": bbox,
            "iscrowd": 0,
        }

    annotations = [box(i, [10, 10, 20, 20]) for i in range(1, 8)]
    annotations += [
        box(1, [50, 30, 20, 20]),  # partly outside the 60x40 image: clipped
        box(1, [5, 5, 0, 10]),  # zero width: dropped
        box(99, [1, 1, 5, 5]),  # unknown image id: dropped
    ]
    ann = helpers.write_coco(str(tmp_path), images, annotations)
    return ann, str(d)


def test_coco_corpus_fixes_skips_and_reports(coco_corpus, caplog):
    ann, image_dir = coco_corpus
    with caplog.at_level(logging.WARNING, logger="cfsam_keras.data"):
        source = data.coco(ann, image_dir)
    report = source.report
    skipped = {os.path.basename(p.file): p.reason for p in report.skipped}
    assert skipped.keys() == {"truncated.jpg", "empty.jpg", "missing.jpg"}
    assert "truncated" in skipped["truncated.jpg"].lower()
    assert "empty" in skipped["empty.jpg"] and "missing" in skipped["missing.jpg"]
    fixed = [(os.path.basename(p.file), p.reason) for p in report.fixed]
    assert ("png_named.jpg", "PNG data under a .jpg extension, decoded as PNG") in fixed
    assert ("gray.jpg", "L image converted to RGB") in fixed
    assert ("cmyk.jpg", "CMYK image converted to RGB") in fixed
    assert ("rgba.png", "RGBA image converted to RGB") in fixed
    assert any(f == "ok.jpg" and "clipped" in r for f, r in fixed)
    dropped = [p.reason for p in report.dropped]
    assert len(dropped) == 2
    assert any("zero-area" in r for r in dropped) and any(
        "unknown image id 99" in r for r in dropped
    )

    # one summary line names counts and the first files
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert "skipped 3 records (" in lines[0] and "truncated.jpg" in lines[0]
    assert "dropped 2 boxes" in lines[0] and "fixed 5 inputs" in lines[0]

    # what is kept decodes to RGB; the negative image is kept; nothing stops the epoch
    examples = {int(ex["image_id"]): ex for ex in source.dataset()}
    assert sorted(examples) == [1, 4, 5, 6, 7, 9] and len(source) == 6
    for ex in examples.values():
        assert ex["image"].shape == (40, 60, 3)
    assert examples[9]["boxes"].shape == (0, 4)
    np.testing.assert_allclose(
        examples[1]["boxes"].numpy()[1], [50 / 60, 30 / 40, 1.0, 1.0], atol=1e-6
    )
    # colour survives the conversions (the rectangle is brighter than the background)
    for i in (4, 5, 6, 7):
        img = examples[i]["image"].numpy().astype(float)
        assert img[15:25, 15:25].mean() > img[:5, 40:].mean() + 20


def test_coco_corpus_strict_names_the_file(coco_corpus):
    ann, image_dir = coco_corpus
    with pytest.raises(
        data.BadInputError, match="instances.json: annotation 10 points at unknown image id 99"
    ):
        data.coco(ann, image_dir, strict=True)
    with open(ann) as f:
        content = json.load(f)
    content["annotations"] = [
        a for a in content["annotations"] if a["image_id"] != 99 and a["bbox"][2] > 0
    ]
    with open(ann, "w") as f:
        json.dump(content, f)
    with pytest.raises(data.BadInputError, match=r"images/truncated.jpg: .*runcated"):
        data.coco(ann, image_dir, strict=True)


def test_coco_size_mismatch_and_bad_annotations(tmp_path, helpers):
    d = tmp_path / "images"
    for name in ("a.jpg", "b.jpg", "c.jpg", "e.jpg"):
        helpers.save_image(str(d / name), helpers.rect_image(20, 20, []))
    ann = helpers.write_coco(
        str(tmp_path),
        [(1, "a.jpg", 30, 20), (2, "b.jpg", 20, 20), (3, "c.jpg", 20, 20), (4, "e.jpg", 20, 20)],
        [
            {"image_id": 2, "category_id": 1, "bbox": [5, 5, -3, 4]},
            {"image_id": 3, "category_id": 42, "bbox": [1, 1, 4, 4]},
            {"image_id": 4, "category_id": 1},
        ],
    )
    report = data.coco(ann, str(d)).report
    reasons = {os.path.basename(p.file): p.reason for p in report.skipped}
    assert "says 30x20" in reasons["a.jpg"]
    assert "negative width" in reasons["b.jpg"]
    assert "unknown category_id 42" in reasons["c.jpg"]
    assert "no usable bbox" in reasons["e.jpg"]


def test_voc_corpus(tmp_path, helpers, caplog):
    img = helpers.rect_image(40, 40, [(5, 5, 20, 20)])
    xml = helpers.voc_xml
    devkit = helpers.write_voc(
        str(tmp_path),
        "2007",
        "test",
        [
            ("000001", img, xml(40, 40, [("cat", (6, 6, 20, 20), 0)])),
            ("000002", img, xml(40, 40, [("cat", None, 0)])),  # no <bndbox>
            ("000003", img, xml(40, 40, [("cat", (30, 6, 10, 20), 0)])),  # xmax < xmin
            ("000004", img, xml(40, 40, [("unicorn", (6, 6, 20, 20), 0)])),
            ("000005", img, xml(40, 40, [("dog", (-5, 6, 60, 20), 1)])),  # outside: clipped
            ("000006", img, xml(40, 40, [])),  # no objects: kept
            ("000007", None, xml(40, 40, [("cat", (6, 6, 20, 20), 0)])),  # image missing
            ("000008", img, None),  # annotation missing
        ],
    )
    with caplog.at_level(logging.WARNING, logger="cfsam_keras.data"):
        source = data.voc(devkit, "2007", "test")
    reasons = {os.path.basename(p.file): p.reason for p in source.report.skipped}
    assert "no <bndbox>" in reasons["000002.xml"]
    assert "inverted box" in reasons["000003.xml"]
    assert "unknown class name 'unicorn'" in reasons["000004.xml"]
    assert reasons["000007.jpg"] == "missing file"
    assert reasons["000008.xml"] == "missing annotation file"
    assert [os.path.basename(p.file) for p in source.report.fixed] == ["000005.xml"]
    assert len(caplog.records) == 1 and "skipped 5 records" in caplog.records[0].getMessage()
    examples = list(source.dataset())
    assert [int(e["image_id"]) for e in examples] == [1, 5, 6]
    np.testing.assert_allclose(examples[1]["boxes"].numpy(), [[0, 5 / 40, 1, 0.5]], atol=1e-6)
    with pytest.raises(data.BadInputError, match="000002.xml"):
        data.voc(devkit, "2007", "test", strict=True)


def test_undecodable_record_never_stops_an_epoch(tmp_path, helpers):
    """The pipelines' last line of defence: a file that fails in TensorFlow is skipped."""
    good = helpers.save_image(
        str(tmp_path / "good.jpg"), helpers.rect_image(30, 30, [(5, 5, 20, 20)])
    )
    (tmp_path / "garbage.jpg").write_bytes(b"\xff\xd8 not really a jpeg \xff\xd9")
    paths = [good, str(tmp_path / "garbage.jpg"), good]
    boxes = [np.array([[0.1, 0.1, 0.6, 0.6]], np.float32)] * 3
    source = Source(
        "handmade",
        ["a"],
        records_from_lists(paths, boxes, [np.zeros(1, np.int32)] * 3, [1, 2, 3]),
        3,
    )
    batches = list(data.eval_pipeline(source, 32, 2))
    assert [b["image_id"].numpy().tolist() for b in batches] == [[1, 3]]
    anchors = np.array([[0.35, 0.35, 0.5, 0.5]], np.float32)
    train = list(data.train_pipeline(source, anchors, 32, 1, seed=0, repeat=False))
    assert len(train) == 2
    with pytest.raises(Exception, match="(?i)jpeg|image"):
        list(data.eval_pipeline(source, 32, 2, strict=True))
