import numpy as np
import pytest
import tensorflow as tf

import cfsam_keras.data as data

EXAMPLE_SPEC = {
    "image": (tf.uint8, 3),
    "boxes": (tf.float32, 2),
    "classes": (tf.int32, 1),
    "image_id": (tf.int64, 0),
    "difficult": (tf.bool, 1),
    "is_crowd": (tf.bool, 1),
}


def check_format(example):
    assert set(example) == set(EXAMPLE_SPEC)
    for key, (dtype, rank) in EXAMPLE_SPEC.items():
        assert example[key].dtype == dtype, key
        assert example[key].shape.rank == rank, key
    n = example["classes"].shape[0]
    assert example["boxes"].shape == (n, 4)
    assert example["image"].shape[-1] == 3
    assert example["difficult"].shape == (n,) and example["is_crowd"].shape == (n,)
    boxes = example["boxes"].numpy()
    assert np.all((boxes >= 0) & (boxes <= 1))
    assert np.all(boxes[:, 2:] > boxes[:, :2])


def test_coco_source_format_and_category_mapping(tmp_path, helpers):
    img_dir = tmp_path / "images"
    helpers.save_image(str(img_dir / "a.jpg"), helpers.rect_image(60, 80, [(10, 10, 50, 40)]))
    helpers.save_image(str(img_dir / "b.jpg"), helpers.rect_image(50, 50, []))
    ann = helpers.write_coco(
        str(tmp_path),
        [(7, "a.jpg", 80, 60), (9, "b.jpg", 50, 50)],
        [
            {"image_id": 7, "category_id": 3, "bbox": [10, 10, 40, 30], "iscrowd": 0},
            {"image_id": 7, "category_id": 1, "bbox": [0, 0, 20, 20], "iscrowd": 1},
        ],
    )
    source = data.coco(ann, str(img_dir))
    assert source.class_names == ["cat", "dog"]
    assert source.category_ids == [1, 3]
    assert len(source) == 2 and not source.report
    assert source.coco.getImgIds() == [7, 9]
    examples = list(source.dataset())
    for ex in examples:
        check_format(ex)
    a, b = examples
    assert int(a["image_id"]) == 7 and a["image"].shape == (60, 80, 3)
    np.testing.assert_allclose(
        a["boxes"].numpy()[0], [10 / 80, 10 / 60, 50 / 80, 40 / 60], atol=1e-6
    )
    assert a["classes"].numpy().tolist() == [1, 0]  # category 3 -> class 1, category 1 -> class 0
    assert a["is_crowd"].numpy().tolist() == [False, True]
    assert int(b["image_id"]) == 9 and b["boxes"].shape == (0, 4)  # a negative image is kept


def test_voc_source_format(tmp_path, helpers):
    devkit = helpers.write_voc(
        str(tmp_path),
        "2007",
        "trainval",
        [
            (
                "000005",
                helpers.rect_image(40, 60, [(5, 5, 30, 20)]),
                helpers.voc_xml(
                    60, 40, [("dog", (6, 6, 30, 20), 0), ("person", (1, 1, 60, 40), 1)]
                ),
            ),
            ("000007", helpers.rect_image(30, 30, []), helpers.voc_xml(30, 30, [])),
        ],
    )
    source = data.voc(devkit, "2007", "trainval")
    assert source.class_names == list(data.VOC_CLASSES) and len(source) == 2
    examples = list(source.dataset())
    for ex in examples:
        check_format(ex)
    first = examples[0]
    assert int(first["image_id"]) == 5
    assert first["classes"].numpy().tolist() == [
        data.VOC_CLASSES.index("dog"),
        data.VOC_CLASSES.index("person"),
    ]
    assert first["difficult"].numpy().tolist() == [False, True]
    # 1-based inclusive pixel indices -> pixel edges (xmin - 1, ymin - 1, xmax, ymax)
    np.testing.assert_allclose(
        first["boxes"].numpy()[0], [5 / 60, 5 / 40, 30 / 60, 20 / 40], atol=1e-6
    )
    np.testing.assert_allclose(first["boxes"].numpy()[1], [0, 0, 1, 1], atol=1e-6)


def test_concatenate_sources(tmp_path, helpers):
    def entries(stem):
        return [
            (
                stem,
                helpers.rect_image(30, 30, [(2, 2, 20, 20)]),
                helpers.voc_xml(30, 30, [("cat", (3, 3, 20, 20), 0)]),
            )
        ]

    devkit = helpers.write_voc(str(tmp_path), "2007", "trainval", entries("000001"))
    helpers.write_voc(str(tmp_path), "2012", "trainval", entries("2008_000002"))
    both = data.voc(devkit, "2007", "trainval") + data.voc(devkit, "2012", "trainval")
    assert len(both) == 2
    assert [int(ex["image_id"]) for ex in both.dataset()] == [1, 2008000002]
    with pytest.raises(ValueError, match="class names differ"):
        data.concatenate(both, data.voc(devkit, "2007", "trainval", class_names=("cat", "dog")))


def _mock_as_dataset(features_by_name, with_crowd):
    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
        rng = np.random.default_rng(0)
        import tensorflow_datasets as tfds

        skip = decoders is not None and isinstance(decoders.get("image"), tfds.decode.SkipDecoding)
        examples = []
        for i in range(3):
            h, w = 40 + 10 * i, 50
            image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            n = i  # 0, 1, 2 objects
            objects = {
                "bbox": np.array([[0.1, 0.2, 0.5, 0.6]] * n, np.float32).reshape(-1, 4),  # yxyx
                "label": np.arange(n, dtype=np.int64),
            }
            if with_crowd:
                objects.update(
                    is_crowd=np.array([True] * n, bool).reshape(-1),
                    area=np.ones(n, np.int64),
                    id=np.arange(n, dtype=np.int64),
                )
            else:
                objects.update(
                    is_difficult=np.array([True] * n, bool).reshape(-1),
                    is_truncated=np.zeros(n, bool),
                    pose=np.zeros(n, np.int64),
                )
            ex = {
                "image": tf.constant(_encode(image)) if skip else image,
                "image/filename": f"00000{i}.jpg",
                "objects": objects,
            }
            if with_crowd:
                ex["image/id"] = np.int64(100 + i)
            else:
                ex["labels"] = objects["label"]
                ex["labels_no_difficult"] = objects["label"]
            examples.append(ex)
        return tf.data.Dataset.from_generator(
            lambda: iter(examples),
            output_signature=tf.nest.map_structure(
                lambda t: tf.TensorSpec(t.shape, t.dtype), _first_specs(examples[2])
            ),
        )

    return as_dataset


def _first_specs(example):
    def spec(v):
        t = tf.convert_to_tensor(v)
        shape = [None] * t.shape.rank if t.shape.rank else []
        if t.shape.rank == 2:
            shape = [None, t.shape[1]]
        return tf.TensorSpec(shape, t.dtype)

    return tf.nest.map_structure(spec, example)


def _encode(image):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("name", ["voc/2007", "coco/2017"])
def test_tfds_source_with_mock_data(name, tmp_path):
    import tensorflow_datasets as tfds

    coco_like = name.startswith("coco")
    with tfds.testing.mock_data(
        as_dataset_fn=_mock_as_dataset(None, coco_like), data_dir=str(tmp_path)
    ):
        source = data.tfds_source(name, "train")
        examples = list(source.dataset())
    assert len(source.class_names) == (80 if coco_like else 20)
    assert len(examples) == 3
    for ex in examples:
        check_format(ex)
    last = examples[2]
    np.testing.assert_allclose(
        last["boxes"].numpy(), [[0.2, 0.1, 0.6, 0.5]] * 2, atol=1e-6
    )  # yxyx -> xyxy
    assert last["classes"].numpy().tolist() == [0, 1]
    assert last["image"].shape == (60, 50, 3)
    if coco_like:
        assert [int(ex["image_id"]) for ex in examples] == [100, 101, 102]
        assert last["is_crowd"].numpy().all() and not last["difficult"].numpy().any()
        assert len(source.category_ids) == 80 and source.category_ids[-1] == 90
    else:
        assert [int(ex["image_id"]) for ex in examples] == [0, 1, 2]
        assert last["difficult"].numpy().all() and not last["is_crowd"].numpy().any()


def test_tfds_source_rejects_other_datasets():
    with pytest.raises(ValueError, match="mnist"):
        data.tfds_source("mnist", "train", download=False)


def test_missing_paths_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        data.coco(str(tmp_path / "nope.json"), str(tmp_path))
    with pytest.raises(FileNotFoundError, match="VOC2007"):
        data.voc(str(tmp_path), "2007", "train")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        data.coco(str(tmp_path / "bad.json"), str(tmp_path))
