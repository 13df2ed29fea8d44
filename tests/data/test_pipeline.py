import numpy as np
import pytest
import tensorflow as tf
from fake_data import write_coco

import cfsam_keras.data as data
from cfsam_keras.anchors import anchor_config
from cfsam_keras.anchors import default_boxes

SIZE = 128


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    paths = data.write_builtin_dataset(str(root), train=10, val=5, seed=3, image_size=96)
    return data.coco(*paths["train"]), data.coco(*paths["val"])


@pytest.fixture(scope="module")
def anchors():
    return default_boxes(**anchor_config("voc", SIZE, feature_sizes=[16, 8, 4, 2, 1, 1]))


def first_batch(ds):
    return [t.numpy() for t in next(iter(ds))]


def test_train_batches_format(shapes, anchors):
    train, _ = shapes
    images, targets = first_batch(data.train_pipeline(train, anchors, SIZE, 4, seed=0))
    assert images.shape == (4, SIZE, SIZE, 3) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 255.0 and images.max() > 1.0
    assert targets.shape == (4, len(anchors), 5) and targets.dtype == np.float32
    labels = targets[..., 4]
    assert (
        set(np.unique(labels)) <= set(range(len(data.BUILTIN_CLASSES) + 1)) and (labels > 0).any()
    )


def test_same_seed_same_batches(shapes, anchors):
    train, _ = shapes
    a = first_batch(data.train_pipeline(train, anchors, SIZE, 4, seed=11))
    b = first_batch(data.train_pipeline(train, anchors, SIZE, 4, seed=11))
    c = first_batch(data.train_pipeline(train, anchors, SIZE, 4, seed=12))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_max_expand_one_never_zooms_out(shapes, anchors):
    from cfsam_keras.data.augment import sample_expand

    canvases = [
        [float(v) for v in sample_expand(50, 70, tf.constant([s, 1], tf.int64), max_ratio=1.0)]
        for s in range(20)
    ]
    assert canvases == [[50.0, 70.0, 0.0, 0.0]] * 20
    assert any(sample_expand(50, 70, tf.constant([s, 1], tf.int64))[0] > 50 for s in range(20))
    # The pipeline passes it on: the same seed gives other images once expand is off.
    train, _ = shapes
    expand = first_batch(data.train_pipeline(train, anchors, SIZE, 8, seed=2, shuffle_buffer=0))
    no_expand = first_batch(
        data.train_pipeline(train, anchors, SIZE, 8, seed=2, shuffle_buffer=0, max_expand=1.0)
    )
    assert not np.array_equal(expand[0], no_expand[0])


def test_repeat_epochs_differ_and_steps_per_epoch(shapes, anchors):
    train, _ = shapes
    steps = data.steps_per_epoch(train, 4)
    assert steps == 2
    batches = [
        b[0].numpy()
        for b in data.train_pipeline(train, anchors, SIZE, 4, seed=0, shuffle_buffer=0).take(
            2 * steps + 1
        )
    ]
    assert len(batches) == 2 * steps + 1  # repeat() keeps going past one epoch
    one_pass = list(data.train_pipeline(train, anchors, SIZE, 4, seed=0, repeat=False))
    assert len(one_pass) == steps
    # without shuffling, epoch 2 reads the same images but augments them differently
    assert not np.array_equal(batches[0], batches[steps])


def test_cache_gives_same_stream(shapes, anchors):
    train, _ = shapes
    plain = first_batch(data.train_pipeline(train, anchors, SIZE, 2, seed=5, shuffle_buffer=0))
    cached = first_batch(
        data.train_pipeline(train, anchors, SIZE, 2, seed=5, shuffle_buffer=0, cache=True)
    )
    # the cached stream augments decoded images; the plain one crop-decodes JPEGs
    np.testing.assert_array_equal(plain[1], cached[1])
    assert np.abs(plain[0] - cached[0]).mean() < 1.0


def test_difficult_and_crowd_left_out_of_targets(anchors):
    boxes = [np.array([[0.2, 0.2, 0.7, 0.7]], np.float32)]
    image = tf.io.encode_jpeg(tf.zeros([64, 64, 3], tf.uint8)).numpy()
    for flag in ("difficult", "is_crowd"):
        record = {
            "path": tf.constant([""]),
            "encoded": tf.constant([image]),
            "boxes": tf.RaggedTensor.from_row_lengths(boxes[0], [1]),
            "classes": tf.RaggedTensor.from_row_lengths(np.array([2], np.int32), [1]),
            "image_id": tf.constant([1], tf.int64),
            "difficult": tf.RaggedTensor.from_row_lengths(np.array([flag == "difficult"]), [1]),
            "is_crowd": tf.RaggedTensor.from_row_lengths(np.array([flag == "is_crowd"]), [1]),
        }
        source = data.Source(
            "one", ["a", "b", "c"], lambda r=record: tf.data.Dataset.from_tensor_slices(r), 1
        )
        kwargs = dict(seed=0, repeat=False, augment=False)
        _, dropped = first_batch(data.train_pipeline(source, anchors, SIZE, 1, **kwargs))
        _, kept = first_batch(
            data.train_pipeline(
                source, anchors, SIZE, 1, keep_difficult=True, keep_crowd=True, **kwargs
            )
        )
        assert (dropped[..., 4] == 0).all()
        assert set(np.unique(kept[..., 4])) == {0.0, 3.0}


def test_eval_batches_keep_ids_sizes_and_ground_truth(shapes):
    _, val = shapes
    batches = list(data.eval_pipeline(val, SIZE, 2))
    assert [len(b["image_id"]) for b in batches] == [2, 2, 1]  # every image, last batch smaller
    ids = np.concatenate([b["image_id"].numpy() for b in batches])
    assert ids.tolist() == [1, 2, 3, 4, 5]
    examples = {int(e["image_id"]): e for e in val.dataset()}
    for b in batches:
        assert b["images"].shape[1:] == (SIZE, SIZE, 3)
        np.testing.assert_array_equal(b["original_size"].numpy(), [[96, 96]] * len(b["image_id"]))
        for i, image_id in enumerate(b["image_id"].numpy()):
            n = int(b["num_boxes"][i])
            ex = examples[int(image_id)]
            np.testing.assert_allclose(b["boxes"][i, :n].numpy(), ex["boxes"].numpy())
            np.testing.assert_array_equal(b["classes"][i, :n].numpy(), ex["classes"].numpy())
            assert (b["classes"][i, n:].numpy() == -1).all()


def test_sharding_with_input_context(shapes):
    _, val = shapes
    ids = []
    for k in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=k)
        ids.append(
            np.concatenate(
                [b["image_id"].numpy() for b in data.eval_pipeline(val, SIZE, 4, input_context=ctx)]
            ).tolist()
        )
    assert ids == [[1, 3, 5], [2, 4]]
    assert data.steps_per_epoch(val, 1, input_context=tf.distribute.InputContext(2, 0, 1)) == 3


def test_argument_errors_name_the_argument(shapes, anchors):
    train, _ = shapes
    with pytest.raises(ValueError, match="batch_size"):
        data.train_pipeline(train, anchors, SIZE, 0)
    with pytest.raises(ValueError, match="input_size"):
        data.eval_pipeline(train, -3, 2)


def test_no_usable_images_is_an_error_not_an_empty_epoch(tmp_path, anchors):
    ann = write_coco(str(tmp_path), [(1, "gone.jpg", 40, 30)], [])
    empty = data.coco(ann, str(tmp_path))
    assert len(empty) == 0 and len(empty.report.skipped) == 1
    for build in (
        lambda: data.train_pipeline(empty, anchors, SIZE, 4, seed=0),
        lambda: data.eval_pipeline(empty, SIZE, 4),
    ):
        with pytest.raises(ValueError, match=r"no usable images \(1 skipped"):
            build()


def test_one_pass_needs_one_full_batch(shapes, anchors):
    train, _ = shapes  # 10 images
    with pytest.raises(ValueError, match="10 usable images, fewer than one batch of 16"):
        data.train_pipeline(train, anchors, SIZE, 16, seed=0, repeat=False)
    # Repeated, the passes run on into each other: a batch of 16 from 10 images is fine.
    images, _ = first_batch(data.train_pipeline(train, anchors, SIZE, 16, seed=0))
    assert images.shape[0] == 16
