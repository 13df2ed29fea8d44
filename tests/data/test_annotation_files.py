"""Malformed COCO and VOC annotation files: one-line errors that name the file, and ids
that never mislabel an image."""

import json

import numpy as np
import pytest

import cfsam_keras.data as data


def _coco_file(tmp_path, helpers, images=None, annotations=None, categories=None):
    """A one-image COCO file (a.jpg, 40x30, one cat box) with parts replaced."""
    helpers.save_image(str(tmp_path / "a.jpg"), helpers.rect_image(30, 40, [(5, 5, 20, 20)]))
    helpers.save_image(str(tmp_path / "b.jpg"), helpers.rect_image(30, 40, [(10, 10, 30, 25)]))
    dataset = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30}]
        if images is None
        else images,
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 15, 15]}]
        if annotations is None
        else annotations,
        "categories": [{"id": 1, "name": "cat"}] if categories is None else categories,
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(dataset))
    return str(path)


@pytest.mark.parametrize(
    "part, value, message",
    [
        (
            "images",
            [
                {"id": 1, "file_name": "a.jpg", "width": 40, "height": 30},
                {"id": 1, "file_name": "b.jpg", "width": 40, "height": 30},
            ],
            r"image id 1 is used twice \(a.jpg and b.jpg\)",
        ),
        (
            "categories",
            [{"id": 1, "name": "cat"}, {"id": 1, "name": "dog"}],
            "category id 1 is used twice",
        ),
        ("images", [{"id": "a", "file_name": "a.jpg"}], "image ids must be integers"),
        (
            "images",
            [{"id": 1, "width": 40, "height": 30}],
            r"images\[0\] \(id 1\) has no 'file_name'",
        ),
        ("images", [], "the 'images' list is empty"),
        ("categories", [{"name": "cat"}], "category ids must be integers"),
        ("annotations", [3], "every entry of 'annotations' must be a JSON object"),
    ],
)
def test_coco_structure_errors_name_the_file(tmp_path, helpers, part, value, message):
    path = _coco_file(tmp_path, helpers, **{part: value})
    with pytest.raises(ValueError, match=message) as info:
        data.coco(path, str(tmp_path))
    assert str(info.value).startswith(path) and "\n" not in str(info.value)


def test_coco_top_level_list_is_an_error(tmp_path):
    path = tmp_path / "instances.json"
    path.write_text("[]")
    with pytest.raises(ValueError, match="top level is a JSON list"):
        data.coco(str(path), str(tmp_path))


def test_coco_null_inside_a_bbox_skips_that_image(tmp_path, helpers):
    annotations = [{"id": 4, "image_id": 1, "category_id": 1, "bbox": [5, None, 15, 15]}]
    source = data.coco(_coco_file(tmp_path, helpers, annotations=annotations), str(tmp_path))
    assert len(source) == 0
    (problem,) = source.report.skipped
    assert "annotation 4 has no usable bbox" in problem.reason
    with pytest.raises(data.BadInputError, match="annotation 4 has no usable bbox"):
        data.coco(str(tmp_path / "instances.json"), str(tmp_path), strict=True)


def test_voc_ids_are_unique_when_stems_are_not_all_numbers(tmp_path, helpers):
    image = helpers.rect_image(30, 40, [(5, 5, 20, 20)])
    xml = helpers.voc_xml(40, 30, [("cat", (6, 6, 20, 20), 0)])
    root = helpers.write_voc(
        str(tmp_path), 2007, "val", [("000002", image, xml), ("abc", image, xml)]
    )
    source = data.voc(root, "2007", "val")
    ids = [int(ex["image_id"]) for ex in source.dataset()]
    assert ids == [1, 2]
    assert sorted(source.image_files) == [1, 2]
    assert source.image_files[2].endswith("abc.jpg")  # not the id '000002' reads as

    numeric = helpers.write_voc(
        str(tmp_path / "n"), 2007, "val", [("000005", image, xml), ("2008_000002", image, xml)]
    )
    ids = [int(ex["image_id"]) for ex in data.voc(numeric, "2007", "val").dataset()]
    assert ids == [5, 2008000002]  # VOC's own numbers where they are unique
    assert np.unique(ids).size == 2
