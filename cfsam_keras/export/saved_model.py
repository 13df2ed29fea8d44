"""SavedModel export for TensorFlow Serving.

The export holds two signatures over the same detector:

- ``serving_default``: ``images`` uint8 ``[B, H, W, 3]`` RGB of any size;
- ``serving_bytes``: ``images`` string ``[B]`` of encoded JPEG or PNG images,
  turned upright by their EXIF orientation (`cfsam_keras.data.orientation`).

Both resize to the model's input size inside the graph and return detections in
coordinates normalised to the original image, in the TF Object Detection API's
``(ymin, xmin, ymax, xmax)`` order:
``detection_boxes`` float32 ``[B, K, 4]``, ``detection_scores`` float32 ``[B, K]``,
``detection_classes`` int32 ``[B, K]`` (0-based object class ids, as the dataset
numbers them), ``detection_class_names`` string ``[B, K]`` and
``num_detections`` int32 ``[B]``. Rows past ``num_detections`` are padding.
The class names are also stored one a line in ``assets.extra/class_names.txt``.
"""

import os
import re
import shutil
import tempfile

import keras
import tensorflow as tf

from cfsam_keras.data.orientation import decode_upright
from cfsam_keras.export.common import check_tensorflow_backend
from cfsam_keras.export.common import float32_model
from cfsam_keras.export.common import write_class_names
from cfsam_keras.models import check_class_names
from cfsam_keras.models import detector as make_detector
from cfsam_keras.models import model_config
from cfsam_keras.validation import positive_int

SERVING_DEFAULT = "serving_default"
SERVING_BYTES = "serving_bytes"
CLASS_NAMES_FILE = os.path.join("assets.extra", "class_names.txt")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def next_version(export_dir):
    """The next free TF Serving version number under ``export_dir``.

    Args:
        export_dir: the model's base folder (``exports/NAME``); need not exist.

    Returns:
        One more than the largest integer-named sub-folder, or 1.
    """
    if not os.path.isdir(export_dir):
        return 1
    versions = [int(n) for n in os.listdir(export_dir) if re.fullmatch(r"\d+", n)]
    return max(versions, default=0) + 1


def resize_images(images, input_size):
    """Resizes a uint8 or float image batch to ``input_size`` as float32 0..255.

    The one resize every export and predictor uses (bilinear, no aspect-ratio
    padding, like the SSD eval pipeline), so their detections agree.
    """
    images = tf.cast(images, tf.float32)
    return tf.image.resize(images, [input_size, input_size], method="bilinear")


def _assert_rank(tensor, rank, message):
    """A run-time check of the rank a caller sent.

    A signature's input rank is not enforced when it runs (TF Serving and a loaded
    SavedModel pass a tensor of any rank on), and ``tf.rank`` of an input whose rank is
    declared is folded to that constant. The rank is counted from the run-time shape
    instead: its entries are >= 0, the padding is -1.
    """
    padded = tf.concat([tf.shape(tensor), tf.fill([rank + 1], -1)], axis=0)[: rank + 1]
    sent = tf.reduce_sum(tf.cast(padded >= 0, tf.int32))
    return tf.debugging.assert_equal(sent, rank, message=message)


def _build_archive(detector, input_size, class_names):
    class_name_table = tf.constant(list(class_names), dtype=tf.string)
    num_classes = len(class_names)

    def detect(resized):
        out = detector(resized, training=False)
        boxes = tf.gather(tf.cast(out["boxes"], tf.float32), [1, 0, 3, 2], axis=-1)
        classes = tf.cast(out["classes"], tf.int32)
        num = tf.cast(out["num_detections"], tf.int32)
        valid = tf.sequence_mask(num, tf.shape(classes)[1])
        names = tf.gather(class_name_table, tf.clip_by_value(classes, 0, num_classes - 1))
        return {
            "detection_boxes": boxes,
            "detection_scores": tf.cast(out["scores"], tf.float32),
            "detection_classes": classes,
            "detection_class_names": tf.where(valid, names, ""),
            "num_detections": num,
        }

    def serve_images(images):
        with tf.control_dependencies(
            [_assert_rank(images, 4, f"{SERVING_DEFAULT}: `images` must be uint8 [B, H, W, 3]")]
        ):
            images = tf.identity(images)
        shape = tf.shape(images)
        checks = [
            tf.debugging.assert_equal(
                shape[3], 3, message=f"{SERVING_DEFAULT}: `images` must be RGB [B, H, W, 3]"
            ),
            tf.debugging.assert_positive(
                shape[1:3], message=f"{SERVING_DEFAULT}: `images` must have height and width > 0"
            ),
            tf.debugging.assert_positive(
                shape[0], message=f"{SERVING_DEFAULT}: `images` must hold at least one image"
            ),
        ]
        with tf.control_dependencies(checks):
            images = tf.identity(images)
        return detect(resize_images(images, input_size))

    def serve_bytes(images):
        def decode_one(data):
            is_image = tf.logical_or(
                tf.io.is_jpeg(data), tf.equal(tf.strings.substr(data, 0, 8), _PNG_MAGIC)
            )
            check = tf.debugging.Assert(
                is_image, [f"{SERVING_BYTES}: an element of `images` is not a JPEG or PNG image"]
            )
            with tf.control_dependencies([check]):
                image = decode_upright(data)
            return resize_images(image[tf.newaxis], input_size)[0]

        checks = [
            _assert_rank(images, 1, f"{SERVING_BYTES}: `images` must be a string vector [B]"),
            tf.debugging.assert_positive(
                tf.size(images), message=f"{SERVING_BYTES}: `images` must hold at least one image"
            ),
        ]
        with tf.control_dependencies(checks):
            images = tf.identity(images)
        resized = tf.map_fn(
            decode_one,
            images,
            fn_output_signature=tf.TensorSpec([input_size, input_size, 3], tf.float32),
        )
        return detect(resized)

    archive = keras.export.ExportArchive()
    archive.track(detector)
    archive.add_endpoint(
        SERVING_DEFAULT,
        serve_images,
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")],
    )
    archive.add_endpoint(
        SERVING_BYTES,
        serve_bytes,
        input_signature=[tf.TensorSpec([None], tf.string, name="images")],
    )
    return archive


def export_saved_model(
    model,
    export_dir,
    version=None,
    class_names=None,
    **settings,
):
    """Writes an SSD model as a TF Serving SavedModel ``export_dir/<version>/``.

    The version is written to a hidden temporary folder inside ``export_dir``
    and renamed into place only when complete, so a server watching
    ``export_dir`` never loads a half-written version.

    Args:
        model: an SSD Keras model from ``cfsam_keras.models.SSD300`` (raw
            offsets + logits output, with its anchor config).
        export_dir: the model's base folder, e.g. ``"exports/ssd300_cfsam"``.
        version: positive integer version; default: the next free number.
        class_names: list of ``num_classes`` names; default: the model's own
            (``cfsam_keras.models.model_config``).
        **settings: the inference settings of ``cfsam_keras.models.postprocessor``
            (``score_threshold``, ``iou_threshold``, ``max_detections``,
            ``pre_nms_top_k``); SSD's when left out.

    Returns:
        The path of the written version folder.

    Example:

    >>> model = cfsam_keras.models.SSD300(num_classes=20)
    >>> path = export_saved_model(model, "exports/ssd300")  # exports/ssd300/1
    """
    check_tensorflow_backend("export_saved_model")
    model = float32_model(model)
    if version is None:
        version = next_version(export_dir)
    positive_int(version, "version")
    final_dir = os.path.join(export_dir, str(version))
    if os.path.exists(final_dir):
        raise FileExistsError(
            f"{final_dir} already exists; TF Serving versions are immutable, "
            "pick another version (or leave version=None for the next free one)"
        )
    config = model_config(model)
    input_size = config["input_size"]
    class_names = check_class_names(class_names, config["num_classes"]) or config["class_names"]
    detector = make_detector(model, **settings)

    os.makedirs(export_dir, exist_ok=True)
    # A name TF Serving ignores (not an integer) on the same file system, so
    # the final rename is atomic.
    tmp_dir = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=export_dir)
    try:
        _build_archive(detector, input_size, class_names).write_out(tmp_dir, verbose=False)
        # assets.extra/ is where TF Serving expects files the graph does not read.
        write_class_names(os.path.join(tmp_dir, CLASS_NAMES_FILE), class_names)
        os.chmod(tmp_dir, 0o755)  # mkdtemp makes it owner-only; a server may run as another user
        os.rename(tmp_dir, final_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return final_dir
