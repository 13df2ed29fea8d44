"""`Source`: a dataset of detection examples in the library's one format.

Every source yields dicts::

    image       uint8 [H, W, 3] RGB
    boxes       float32 [N, 4] normalised (xmin, ymin, xmax, ymax) ("rel_xyxy")
    classes     int32 [N] object classes 0 .. num_classes - 1
    image_id    int64
    difficult   bool [N] (all False where the source has no such flag)
    is_crowd    bool [N] (all False where the source has no such flag)

Internally a source is a dataset of *records* (the same dict with the image
still encoded: ``path`` to a file or ``encoded`` bytes), so that pipelines can
shuffle, shard and repeat before paying for decoding.
"""

import numpy as np
import tensorflow as tf

from cfsam_keras.data.report import DROPPED
from cfsam_keras.data.report import FIXED
from cfsam_keras.data.report import InputReport

RECORD_SIGNATURE = {
    "path": tf.TensorSpec([], tf.string),
    "encoded": tf.TensorSpec([], tf.string),
    "boxes": tf.TensorSpec([None, 4], tf.float32),
    "classes": tf.TensorSpec([None], tf.int32),
    "image_id": tf.TensorSpec([], tf.int64),
    "difficult": tf.TensorSpec([None], tf.bool),
    "is_crowd": tf.TensorSpec([None], tf.bool),
}


class Source:
    """A detection dataset: class names plus a ``tf.data`` dataset of examples.

    Build one with `cfsam_keras.data.coco`, `voc`, `tfds_source` or
    `concatenate`; pass it to `train_pipeline` / `eval_pipeline`.

    Args:
        name: how the source is named in messages.
        class_names: list of object class names, index = class.
        records_fn: callable returning a ``tf.data.Dataset`` of records
            (see `RECORD_SIGNATURE`).
        num_examples: number of records, or None when unknown.
        report: the `InputReport` of problems met while reading.

    Example:
    >>> source = cfsam_keras.data.coco("instances_val.json", "val")
    >>> source.class_names[:2], len(source)
    >>> for example in source.dataset().take(1): print(example["boxes"])
    """

    def __init__(self, name, class_names, records_fn, num_examples=None, report=None):
        self.name = name
        self.class_names = list(class_names)
        self._records_fn = records_fn
        self.num_examples = num_examples
        self.report = report if report is not None else InputReport(name)

    @property
    def num_classes(self):
        return len(self.class_names)

    def __len__(self):
        if self.num_examples is None:
            raise TypeError(f"{self.name}: the number of examples is unknown.")
        return int(self.num_examples)

    def __add__(self, other):
        return concatenate(self, other)

    def __repr__(self):
        return f"<Source {self.name}: {self.num_examples} examples, {self.num_classes} classes>"

    def records(self):
        """The undecoded records, a ``tf.data.Dataset`` (see `RECORD_SIGNATURE`)."""
        return self._records_fn()

    def dataset(
        self, shuffle=False, seed=None, shuffle_buffer=1024, num_parallel_calls=tf.data.AUTOTUNE
    ):
        """Decoded examples in the common format, a ``tf.data.Dataset``.

        Args:
            shuffle: shuffle records (before decoding) with ``shuffle_buffer``.
            seed: shuffle seed.
            shuffle_buffer: records in the shuffle buffer.
            num_parallel_calls: parallelism of decoding.
        """
        records = self.records()
        if shuffle:
            records = records.shuffle(shuffle_buffer, seed=seed)
        return records.map(decode_record, num_parallel_calls=num_parallel_calls, deterministic=True)


def read_record(record):
    """The encoded image bytes of a record (read from its file or held inline)."""
    return tf.cond(
        tf.strings.length(record["path"]) > 0,
        lambda: tf.io.read_file(record["path"]),
        lambda: record["encoded"],
    )


def decode_record(record):
    """Decodes a record's image (file or bytes) to uint8 RGB; returns an example.

    ``tf.io.decode_image`` reads JPEG, PNG, GIF and BMP whatever the file
    extension, and with ``channels=3`` converts grayscale, CMYK and RGBA to RGB.
    """
    data = read_record(record)
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    example = {k: record[k] for k in ("boxes", "classes", "image_id", "difficult", "is_crowd")}
    example["image"] = image
    return example


def undecodable_images(source, limit=None):
    """The images of ``source`` that ``tf.io.decode_image`` cannot decode, by name.

    Decodes every record eagerly, one at a time (slow: meant for diagnosing a pipeline
    that skipped images, not for every run).

    Args:
        source: a `Source`.
        limit: stop after this many failures; ``None`` for all.

    Returns:
        A list of ``(name, error)``: the file path (or ``image id N`` for inline
        bytes) and TensorFlow's message.
    """
    failures = []
    for record in source.records():
        try:
            tf.io.decode_image(read_record(record), channels=3, expand_animations=False)
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
            path = record["path"].numpy().decode()
            name = path or f"image id {int(record['image_id'])}"
            failures.append((name, e.message.split("[Op:")[0].split("}}")[-1].strip()))
            if limit is not None and len(failures) >= limit:
                break
    return failures


def records_from_lists(
    paths, boxes, classes, image_ids, difficult=None, is_crowd=None, encoded=None
):
    """A records dataset from per-image Python lists (file-based sources).

    ``encoded``: per image, bytes to decode instead of its file, or ``b""`` (the file).
    """
    n = len(paths)
    encoded = list(encoded) if encoded is not None else [b""] * n
    paths = ["" if data else path for path, data in zip(paths, encoded)]
    lengths = [len(c) for c in classes]

    def ragged(values, dtype, width=None):
        flat = (
            np.concatenate([np.asarray(v, dtype).reshape(-1, *(width or ())) for v in values])
            if n
            else np.zeros((0, *(width or ())), dtype)
        )
        return tf.RaggedTensor.from_row_lengths(flat.astype(dtype), np.asarray(lengths, np.int64))

    difficult = difficult if difficult is not None else [np.zeros(k, bool) for k in lengths]
    is_crowd = is_crowd if is_crowd is not None else [np.zeros(k, bool) for k in lengths]
    tensors = {
        "path": np.asarray(paths, dtype=object).astype(str) if n else np.zeros((0,), str),
        "encoded": np.asarray(encoded, dtype=object) if n else np.zeros((0,), str),
        "boxes": ragged(boxes, np.float32, (4,)),
        "classes": ragged(classes, np.int32),
        "image_id": np.asarray(image_ids, np.int64).reshape(-1),
        "difficult": ragged(difficult, bool),
        "is_crowd": ragged(is_crowd, bool),
    }
    tensors = {
        k: (v if isinstance(v, tf.RaggedTensor) else tf.constant(v)) for k, v in tensors.items()
    }
    return lambda: tf.data.Dataset.from_tensor_slices(tensors)


def clean_boxes(file, boxes, width, height, report, what="box"):
    """Absolute xyxy pixel boxes -> normalised rel_xyxy, clipped; reports each fix.

    Boxes partly outside the image are clipped (reported as fixed). Boxes with
    no area inside the image are dropped (reported). Callers check inverted
    boxes themselves, before this.

    Returns:
        (float32 [K, 4] rel_xyxy boxes, bool [N] mask of the kept inputs).
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scale = np.array([width, height, width, height], np.float64)
    clipped = np.clip(boxes, 0.0, scale)
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    for i in np.flatnonzero(~keep):
        report.add(
            file,
            f"zero-area {what} {boxes[i].round(2).tolist()} inside {width}x{height} image",
            DROPPED,
        )
    moved = keep & np.any(np.abs(clipped - boxes) > 1e-6, axis=1)
    for i in np.flatnonzero(moved):
        report.add(
            file,
            f"{what} {boxes[i].round(2).tolist()} clipped to the {width}x{height} image",
            FIXED,
        )
    return (clipped[keep] / scale).astype(np.float32), keep


def concatenate(*sources):
    """One source reading ``sources`` one after the other (e.g. VOC07+12 trainval).

    All sources must have the same class names.

    Example:
    >>> trainval = concatenate(voc(devkit, "2007", "trainval"), voc(devkit, "2012", "trainval"))
    """
    if not sources:
        raise ValueError("concatenate() needs at least one source.")
    first = sources[0]
    for s in sources[1:]:
        if s.class_names != first.class_names:
            raise ValueError(
                f"Cannot concatenate {first.name} and {s.name}: their class names differ "
                f"({first.class_names[:5]}... vs {s.class_names[:5]}...)."
            )

    def records_fn():
        ds = sources[0].records()
        for s in sources[1:]:
            ds = ds.concatenate(s.records())
        return ds

    counts = [s.num_examples for s in sources]
    report = InputReport(" + ".join(s.name for s in sources))
    for s in sources:
        report.extend(s.report)
    return Source(
        report.source_name,
        first.class_names,
        records_fn,
        None if any(c is None for c in counts) else sum(counts),
        report,
    )
