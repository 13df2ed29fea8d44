"""TensorFlow Datasets detection sets (``voc/2007``, ``voc/2012``, ``coco/2017``)."""

import tensorflow as tf

from cfsam_keras.data.source import Source

_SUPPORTED = ("voc", "coco")


class TfdsSource(Source):
    """A `Source` over a TFDS split; see `tfds_source`. ``info``: the TFDS info."""


def tfds_source(name, split, data_dir=None, download=True):
    """A TFDS detection dataset in the common format.

    TFDS boxes are normalised ``(ymin, xmin, ymax, xmax)``; they are reordered to
    rel_xyxy. Images are read as encoded bytes (``tfds.decode.SkipDecoding``)
    so pipelines shuffle before decoding. ``voc`` keeps ``is_difficult`` as
    ``difficult``; ``coco`` keeps ``is_crowd``. TFDS's ``coco/2017`` numbers
    its 80 classes contiguously; ``category_ids`` maps them back to the
    original COCO ids for scoring against the official annotation files.

    Args:
        name: "voc/2007", "voc/2012" or "coco/2017" (any config of those).
        split: a TFDS split string, e.g. "train", "validation", "test".
        data_dir: TFDS data folder (TFDS's default when None).
        download: download and prepare the data if it is not there yet.

    Returns:
        A `TfdsSource`.

    Example:
    >>> train = tfds_source("voc/2007", "train+validation")
    """
    import tensorflow_datasets as tfds  # noqa: PLC0415 (optional extra)

    family = name.split("/")[0]
    if family not in _SUPPORTED:
        raise ValueError(
            f"tfds_source supports {', '.join(n + '/*' for n in _SUPPORTED)}; received {name!r}."
        )
    builder = tfds.builder(name, data_dir=data_dir)
    if download:
        builder.download_and_prepare()
    label_feature = builder.info.features["objects"]["label"]
    class_names = list(label_feature.names)

    def to_record(ex):
        objects = ex["objects"]
        n = tf.shape(objects["label"])[0]
        yxyx = tf.reshape(tf.cast(objects["bbox"], tf.float32), [-1, 4])
        boxes = tf.clip_by_value(tf.gather(yxyx, [1, 0, 3, 2], axis=1), 0.0, 1.0)
        no_flag = tf.zeros([n], tf.bool)
        image_id = ex["image/id"] if "image/id" in ex else _id_from_filename(ex["image/filename"])
        return {
            "path": tf.constant(""),
            "encoded": ex["image"],
            "boxes": boxes,
            "classes": tf.cast(objects["label"], tf.int32),
            "image_id": tf.cast(image_id, tf.int64),
            "difficult": tf.cast(objects["is_difficult"], tf.bool)
            if "is_difficult" in objects
            else no_flag,
            "is_crowd": tf.cast(objects["is_crowd"], tf.bool) if "is_crowd" in objects else no_flag,
        }

    def records_fn():
        ds = builder.as_dataset(
            split=split, decoders={"image": tfds.decode.SkipDecoding()}, shuffle_files=False
        )
        return ds.map(to_record, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    try:
        num_examples = builder.info.splits[split].num_examples or None
    except (KeyError, ValueError):
        num_examples = None
    source = TfdsSource(f"tfds({name}, {split})", class_names, records_fn, num_examples)
    source.info = builder.info
    if family == "coco":
        source.category_ids = list(COCO_2017_CATEGORY_IDS)
    return source


def _id_from_filename(filename):
    """VOC file names ('000005.jpg', '2008_000002.jpg') -> the digits as int64."""
    stem = tf.strings.regex_replace(tf.strings.regex_replace(filename, r"\.[^.]*$", ""), r"\D", "")
    return tf.strings.to_number(tf.strings.substr(stem, 0, 18), tf.int64)


#: The original COCO 2017 category ids of TFDS's 80 contiguous classes.
COCO_2017_CATEGORY_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27,
    28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53,
    54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80,
    81, 82, 84, 85, 86, 87, 88, 89, 90,
)  # fmt: skip
