import numpy as np
import pytest
import tensorflow as tf

from cfsam_keras.data.augment import crop_resize_window
from cfsam_keras.data.augment import photometric_distortion
from cfsam_keras.data.augment import sample_min_iou_crop
from cfsam_keras.data.augment import ssd_augment

SIZE = 64


@pytest.fixture(scope="module")
def augment_fn():
    return tf.function(
        lambda image, boxes, seed: ssd_augment(
            image, boxes, seed, SIZE, fill_value=(0.0, 0.0, 0.0), photometric=False
        )
    )


def test_boxes_still_bound_their_object_pixels(augment_fn):
    """Draw solid rectangles, augment, and find each kept box around its rectangle."""
    h, w = 90, 120
    rects = [(10, 8, 50, 60), (70, 40, 110, 85)]  # pixel-edge xyxy, distinct colours
    colours = [(255, 0, 0), (0, 255, 0)]
    image = np.zeros((h, w, 3), np.uint8)
    for (x0, y0, x1, y1), c in zip(rects, colours):
        image[y0:y1, x0:x1] = c
    boxes = np.array([[x0 / w, y0 / h, x1 / w, y1 / h] for x0, y0, x1, y1 in rects], np.float32)
    checked = cropped = expanded = 0
    for s in range(60):
        out, kept, keep = augment_fn(image, boxes, tf.constant([3, s], tf.int64))
        out, kept, keep = out.numpy(), kept.numpy(), keep.numpy()
        assert kept.shape == (keep.sum(), 4)
        assert np.all((kept >= 0) & (kept <= 1)), "a box left the image"
        assert np.all(kept[:, 2:] > kept[:, :2]), "a zero-area box survived"
        expanded += int((out.sum(-1) == 0).mean() > 0.5)
        cropped += int(keep.sum() < 2)
        for box, idx in zip(kept, np.flatnonzero(keep)):
            channel = int(np.argmax(colours[idx]))
            ys, xs = np.nonzero(out[..., channel] > 127)
            x0, y0, x1, y1 = box * SIZE
            inside = (xs + 1 >= x0) & (xs <= x1) & (ys + 1 >= y0) & (ys <= y1)  # within a pixel
            # the object's pixels lie in its box, and the box is tight to within a pixel
            assert inside.all()
            np.testing.assert_allclose(
                [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], [x0, y0, x1, y1], atol=1.0
            )
            checked += 1
    assert checked > 40 and cropped > 0 and expanded > 0  # the random steps really happened


def test_same_seed_same_result_and_seeds_differ(augment_fn):
    image = np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    boxes = np.array([[0.1, 0.1, 0.6, 0.7]], np.float32)
    a = augment_fn(image, boxes, tf.constant([1, 2], tf.int64))
    b = augment_fn(image, boxes, tf.constant([1, 2], tf.int64))
    c = augment_fn(image, boxes, tf.constant([1, 3], tf.int64))
    np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())
    assert not np.array_equal(a[0].numpy(), c[0].numpy())


def test_image_without_boxes(augment_fn):
    image = np.full((40, 40, 3), 200, np.uint8)
    for s in range(10):
        out, kept, keep = augment_fn(
            image, np.zeros((0, 4), np.float32), tf.constant([0, s], tf.int64)
        )
        assert out.shape == (SIZE, SIZE, 3) and kept.shape == (0, 4) and keep.shape == (0,)


def test_min_iou_crop_meets_its_constraint():
    boxes = tf.constant([[20.0, 20.0, 60.0, 60.0], [70.0, 10.0, 90.0, 30.0]])
    for s in range(40):
        window, keep = sample_min_iou_crop(
            100.0, 100.0, boxes, tf.constant([9, s], tf.int64), min_ious=(0.5,)
        )
        x0, y0, x1, y1 = window.numpy()
        w, h = x1 - x0, y1 - y0
        assert 0 <= x0 < x1 <= 100 and 0 <= y0 < y1 <= 100
        if (w, h) == (100, 100):
            assert keep.numpy().all()  # no trial passed: the whole image
            continue
        assert 0.5 <= h / w <= 2 and w >= 30 - 1e-4 and h >= 30 - 1e-4
        b = boxes.numpy()
        iw = np.clip(np.minimum(b[:, 2], x1) - np.maximum(b[:, 0], x0), 0, None)
        ih = np.clip(np.minimum(b[:, 3], y1) - np.maximum(b[:, 1], y0), 0, None)
        iou = iw * ih / ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) + w * h - iw * ih)
        assert iou.max() >= 0.5 - 1e-6
        centres = (b[:, :2] + b[:, 2:]) / 2
        inside = (
            (centres[:, 0] > x0)
            & (centres[:, 0] < x1)
            & (centres[:, 1] > y0)
            & (centres[:, 1] < y1)
        )
        np.testing.assert_array_equal(keep.numpy(), inside)


def test_min_iou_crop_needs_only_one_box_to_reach_the_minimum():
    """SSD accepts a crop where ANY box reaches the sampled IoU, not only where all do."""
    # No window of sides >= 30 reaches IoU 0.5 with the 15x15 box (at most 225 / 900),
    # so a sampler asking every box to reach 0.5 would keep the whole canvas every time.
    boxes = np.array([[0.0, 0.0, 50.0, 50.0], [85.0, 85.0, 100.0, 100.0]], np.float32)
    accepted = 0
    for s in range(30):
        window, keep = sample_min_iou_crop(
            100.0, 100.0, tf.constant(boxes), tf.constant([5, s], tf.int64), min_ious=(0.5,)
        )
        x0, y0, x1, y1 = window.numpy()
        if (x0, y0, x1, y1) == (0, 0, 100, 100):
            continue
        accepted += 1
        iw = np.clip(np.minimum(boxes[:, 2], x1) - np.maximum(boxes[:, 0], x0), 0, None)
        ih = np.clip(np.minimum(boxes[:, 3], y1) - np.maximum(boxes[:, 1], y0), 0, None)
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        iou = iw * ih / (areas + (x1 - x0) * (y1 - y0) - iw * ih)
        assert iou[0] >= 0.5 - 1e-6 and iou[1] < 0.5
        assert keep.numpy()[0] and not keep.numpy()[1]
    assert accepted >= 10


def test_crop_resize_window_is_pixel_exact_and_fills_outside():
    image = np.arange(16 * 16 * 3, dtype=np.float32).reshape(16, 16, 3)
    out, valid = crop_resize_window(image, [0.0, 0.0, 16.0, 16.0], 16)
    np.testing.assert_allclose(out.numpy(), image, atol=1e-3)  # identity window
    out, _ = crop_resize_window(image, [0.0, 0.0, 16.0, 16.0], 16, flip=True)
    np.testing.assert_allclose(out.numpy(), image[:, ::-1], atol=1e-3)
    out, valid = crop_resize_window(
        image, [-16.0, 0.0, 16.0, 16.0], (16, 32), fill_value=(1.0, 2.0, 3.0)
    )
    assert not valid.numpy()[:, :16].any() and valid.numpy()[:, 16:].all()
    np.testing.assert_allclose(out.numpy()[:, :16], np.broadcast_to([1.0, 2.0, 3.0], (16, 16, 3)))


def test_photometric_distortion_range_and_mask():
    image = tf.constant(np.random.default_rng(1).uniform(0, 255, (20, 20, 3)), tf.float32)
    valid = tf.constant(np.arange(20)[None, :, None] < 10)
    changed = 0
    for s in range(20):
        out = photometric_distortion(image, tf.constant([4, s], tf.int64), valid).numpy()
        assert out.min() >= 0 and out.max() <= 255
        np.testing.assert_array_equal(
            out[:, 10:], image.numpy()[:, 10:]
        )  # outside the mask untouched
        changed += int(np.abs(out - image.numpy()).max() > 1)
    assert changed > 10


def test_pipeline_crop_decoding_matches_full_decoding():
    """The training pipeline decodes only a JPEG's crop window: as if it decoded it all."""
    from cfsam_keras.data.pipeline import _augment_encoded

    rng = np.random.default_rng(0)
    smooth = tf.image.resize(rng.uniform(0, 255, (6, 8, 3)), [96, 128]).numpy().astype(np.uint8)
    boxes = np.array([[0.1, 0.2, 0.5, 0.7], [0.6, 0.1, 0.9, 0.4]], np.float32)
    for encoder in (tf.io.encode_jpeg, tf.io.encode_png):
        data = encoder(smooth)
        decoded = tf.io.decode_image(data, channels=3)
        for s in range(8):
            seed = tf.constant([2, s], tf.int64)
            a = _augment_encoded(data, boxes, seed, SIZE, (0.0, 0.0, 0.0), 4.0)
            b = ssd_augment(decoded, boxes, seed, SIZE, fill_value=(0.0, 0.0, 0.0))
            np.testing.assert_array_equal(a[1].numpy(), b[1].numpy())
            np.testing.assert_array_equal(a[2].numpy(), b[2].numpy())
            assert np.abs(a[0].numpy() - b[0].numpy()).mean() < 2.0
