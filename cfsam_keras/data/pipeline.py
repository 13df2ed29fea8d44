"""tf.data pipelines: SSD training batches and evaluation batches."""

import numpy as np
import tensorflow as tf

from cfsam_keras.data.augment import SSD_MEAN_RGB
from cfsam_keras.data.augment import ssd_augment
from cfsam_keras.data.source import decode_record
from cfsam_keras.data.source import read_record
from cfsam_keras.defaults import MATCH_IOU_THRESHOLD
from cfsam_keras.defaults import VARIANCES
from cfsam_keras.targets import encode
from cfsam_keras.validation import positive_int


def _decode_any(data):
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def _augment_encoded(data, boxes, seed, input_size, fill_value, max_expand):
    """`ssd_augment` on encoded bytes: a JPEG is decoded only inside the crop window."""
    is_jpeg = tf.io.is_jpeg(data)
    shape = tf.cond(
        is_jpeg, lambda: tf.io.extract_jpeg_shape(data)[:2], lambda: tf.shape(_decode_any(data))[:2]
    )

    def read_rect(y, x, h, w):
        return tf.cond(
            is_jpeg,
            lambda: tf.io.decode_and_crop_jpeg(data, tf.stack([y, x, h, w]), channels=3),
            lambda: _decode_any(data)[y : y + h, x : x + w],
        )

    return ssd_augment(shape, boxes, seed, input_size, fill_value, max_expand, read_rect=read_rect)


def _options(deterministic):
    options = tf.data.Options()
    options.deterministic = bool(deterministic)
    # Under tf.distribute every worker reads every file and keeps its share of
    # the elements: sources are often one file or few, so sharding by file fails.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def _records(source, input_context, batch_size=1):
    """The source's records (this pipeline's share); an error if not one batch can be made.

    ``batch_size`` is that of a pipeline that drops an incomplete batch and does not
    repeat (1 otherwise).
    """
    count = source.num_examples
    if count is not None and input_context is not None:
        count = -(-count // input_context.num_input_pipelines)
    if count is not None and count < batch_size:
        skipped = len(source.report.skipped)
        note = f" ({skipped} skipped: see the warning when it was read)" if skipped else ""
        raise ValueError(
            f"{source.name}: {source.num_examples} usable images{note}, fewer than one "
            f"batch of {batch_size}" + (" per input pipeline" if input_context else "") + "."
            if count
            else f"{source.name}: no usable images{note}."
        )
    records = source.records()
    if input_context is not None and input_context.num_input_pipelines > 1:
        records = records.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    return records


def _drop_unwanted(example, keep_difficult, keep_crowd):
    keep = tf.ones_like(example["classes"], tf.bool)
    if not keep_difficult:
        keep &= tf.logical_not(example["difficult"])
    if not keep_crowd:
        keep &= tf.logical_not(example["is_crowd"])
    return tf.boolean_mask(example["boxes"], keep), tf.boolean_mask(example["classes"], keep)


def steps_per_epoch(source, batch_size, input_context=None):
    """Batches in one pass over ``source``: the ``steps_per_epoch`` for ``fit``
    on a repeated `train_pipeline` (incomplete last batches are dropped).

    Example:
    >>> model.fit(train_pipeline(src, anchors, 300, 32), steps_per_epoch=steps_per_epoch(src, 32))
    """
    n = len(source)
    if input_context is not None and input_context.num_input_pipelines > 1:
        n = -(-n // input_context.num_input_pipelines)
    return max(1, n // positive_int(batch_size, "batch_size"))


def train_pipeline(
    source,
    anchors,
    input_size,
    batch_size,
    seed=None,
    shuffle_buffer=1024,
    repeat=True,
    cache=False,
    augment=True,
    keep_difficult=False,
    keep_crowd=False,
    fill_value=SSD_MEAN_RGB,
    max_expand=4.0,
    iou_threshold=MATCH_IOU_THRESHOLD,
    variances=VARIANCES,
    deterministic=True,
    strict=False,
    input_context=None,
    num_parallel_calls=tf.data.AUTOTUNE,
):
    """SSD training batches: ``(images float32 [B, S, S, 3] in 0..255, targets float32 [B, A, 5])``.

    Per example, in one parallel ``map``: decode, SSD augmentation
    (`ssd_augment`: expand, min-IoU crop, flip, resize, photometric
    distortion), then `cfsam_keras.targets.encode`. Difficult and crowd boxes
    are left out of the targets by default; boxes of zero area never reach the
    encoder. Records are shuffled before decoding (or, with ``cache``, the
    decoded examples after the cache). Every example's randomness comes from
    ``seed`` and a number drawn for it on each pass, so the same seed gives the
    same batches (with ``deterministic=True``) and each epoch of a repeated
    stream is augmented differently. Images TensorFlow cannot decode although
    they passed the source's check are skipped within each pass
    (``Dataset.ignore_errors``) unless ``strict=True``; when no image of a pass
    decodes, the stream ends instead of retrying forever.

    Args:
        source: a `Source`.
        anchors: float32 ``[A, 4]`` default boxes (rel_center_xywh).
        input_size: output image side S.
        batch_size: examples per batch (per replica with ``input_context``).
        seed: int seed of shuffling and augmentation; random when None.
        shuffle_buffer: records in the shuffle buffer (0 disables shuffling).
        repeat: repeat forever (use `steps_per_epoch` in ``fit``).
        cache: False, True (memory) or a file path: cache decoded examples.
        augment: False gives resize only (for debugging).
        keep_difficult, keep_crowd: keep those boxes in the targets.
        fill_value: RGB fill of the expand canvas.
        max_expand: largest zoom-out of SSD's expand (4, SSD's; 1 disables it).
        iou_threshold, variances: passed to ``encode``.
        deterministic: keep element order fixed under parallelism.
        strict: let decode errors stop the pipeline instead of skipping.
        input_context: a ``tf.distribute.InputContext`` to shard records by.
        num_parallel_calls: parallelism of the map.

    Returns:
        A batched, prefetched ``tf.data.Dataset``.

    Example:
    >>> anchors = cfsam_keras.anchors.ssd300_default_boxes("voc")
    >>> ds = train_pipeline(source, anchors, 300, 32, seed=0)
    >>> model.fit(ds, steps_per_epoch=steps_per_epoch(source, 32), epochs=10)
    """

    input_size = positive_int(input_size, "input_size")
    batch_size = positive_int(batch_size, "batch_size")
    anchors = tf.constant(np.asarray(anchors, np.float32).reshape(-1, 4))
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**31))
    pipeline_id = input_context.input_pipeline_id if input_context is not None else 0
    stream_seed = int(seed) * 1009 + pipeline_id
    base_seed = tf.constant(stream_seed, tf.int64)

    def finish(draw, example):
        boxes, classes = _drop_unwanted(example, keep_difficult, keep_crowd)
        seed = tf.stack([base_seed, draw])
        if augment and "encoded_image" in example:
            image, boxes, keep = _augment_encoded(
                example["encoded_image"], boxes, seed, input_size, fill_value, max_expand
            )
            classes = tf.boolean_mask(classes, keep)
        elif augment:
            image, boxes, keep = ssd_augment(
                example["image"], boxes, seed, input_size, fill_value, max_expand
            )
            classes = tf.boolean_mask(classes, keep)
        else:
            image = tf.image.resize(tf.cast(example["image"], tf.float32), [input_size, input_size])
            nonzero = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            boxes, classes = tf.boolean_mask(boxes, nonzero), tf.boolean_mask(classes, nonzero)
        image.set_shape([input_size, input_size, 3])
        targets = encode(boxes, classes, anchors, iou_threshold=iou_threshold, variances=variances)
        return image, targets

    # Each example's augmentation seed: a number drawn anew on every pass, so that errors
    # can be skipped within a pass, before the repeat. (Skipped after the repeat, a source
    # whose every image fails would be retried forever.)
    draws = tf.data.Dataset.random(seed=stream_seed, rerandomize_each_iteration=True)
    ds = _records(source, input_context, 1 if repeat else batch_size)
    if cache is not False and cache is not None:
        ds = ds.map(decode_record, num_parallel_calls=num_parallel_calls, deterministic=True)
        if not strict:
            ds = ds.ignore_errors(log_warning=True)
        ds = ds.cache("" if cache is True else str(cache))
        if shuffle_buffer:
            ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        ds = tf.data.Dataset.zip(draws, ds).map(
            finish, num_parallel_calls=num_parallel_calls, deterministic=deterministic
        )
    else:
        if shuffle_buffer:
            ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)

        def undecoded(record):
            if not augment:
                return decode_record(record)
            return dict(record, encoded_image=read_record(record))

        ds = tf.data.Dataset.zip(draws, ds).map(
            lambda draw, record: finish(draw, undecoded(record)),
            num_parallel_calls=num_parallel_calls,
            deterministic=deterministic,
        )
        if not strict:
            ds = ds.ignore_errors(log_warning=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=True)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_options(deterministic))


def resize_example(example, input_size):
    """Eval preprocessing of one decoded example: resize only, keep the originals' size."""
    image = example["image"]
    size = tf.shape(image)[:2]
    resized = tf.image.resize(tf.cast(image, tf.float32), [input_size, input_size])
    resized.set_shape([input_size, input_size, 3])
    return {
        "images": resized,
        "image_id": example["image_id"],
        "original_size": tf.cast(size, tf.int32),
        "boxes": example["boxes"],
        "classes": example["classes"],
        "difficult": example["difficult"],
        "is_crowd": example["is_crowd"],
        "num_boxes": tf.shape(example["classes"])[0],
    }


def eval_pipeline(
    source,
    input_size,
    batch_size,
    cache=False,
    strict=False,
    input_context=None,
    num_parallel_calls=tf.data.AUTOTUNE,
):
    """Evaluation batches: every image once, in source order, resized to S x S.

    Each batch is a dict: ``images`` float32 ``[B, S, S, 3]`` (0..255),
    ``image_id`` int64 ``[B]``, ``original_size`` int32 ``[B, 2]`` (height,
    width) to map normalised detections back to pixels, and the ground truth
    padded to the batch's largest count: ``boxes`` ``[B, M, 4]`` rel_xyxy,
    ``classes`` ``[B, M]`` (padding -1), ``difficult`` / ``is_crowd``
    ``[B, M]`` and ``num_boxes`` ``[B]``. The last batch may be smaller.

    Args:
        source: a `Source`.
        input_size: image side S.
        batch_size: images per batch.
        cache: False, True (memory) or a file path: cache the resized batches' examples.
        strict: let decode errors stop the pipeline instead of skipping.
        input_context: a ``tf.distribute.InputContext`` to shard records by.
        num_parallel_calls: parallelism of decoding.

    Example:
    >>> for batch in eval_pipeline(source, 300, 8): detections = detector(batch["images"])
    """
    input_size = positive_int(input_size, "input_size")
    batch_size = positive_int(batch_size, "batch_size")
    ds = _records(source, input_context).map(
        lambda record: resize_example(decode_record(record), input_size),
        num_parallel_calls=num_parallel_calls,
        deterministic=True,
    )
    if not strict:
        ds = ds.ignore_errors(log_warning=True)
    if cache is not False and cache is not None:
        ds = ds.cache("" if cache is True else str(cache))
    padding = {
        "images": 0.0,
        "image_id": tf.constant(-1, tf.int64),
        "original_size": 0,
        "boxes": 0.0,
        "classes": -1,
        "difficult": False,
        "is_crowd": False,
        "num_boxes": 0,
    }
    ds = ds.padded_batch(batch_size, padding_values=padding)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_options(True))
