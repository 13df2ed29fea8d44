"""One interface over the ways to run a detector: Keras, SavedModel, TFLite, ONNX.

``load_predictor`` gives an object whose ``predict(image)`` takes one RGB uint8
image ``[H, W, 3]`` of any size and returns its detections as NumPy arrays:
``boxes`` ``[N, 4]`` normalised ``(xmin, ymin, xmax, ymax)`` of the original
image (the library's ``rel_xyxy``), ``scores`` ``[N]`` and ``classes`` ``[N]``
(0-based), best first. All resize with the same bilinear resize, so they see the
same pixels (the TFLite and ONNX inputs are additionally rounded to uint8).
``cfsam-keras predict`` is built on it.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from cfsam_keras.export.common import read_class_names
from cfsam_keras.export.onnx import read_metadata
from cfsam_keras.export.saved_model import CLASS_NAMES_FILE
from cfsam_keras.export.saved_model import SERVING_DEFAULT
from cfsam_keras.export.saved_model import resize_images
from cfsam_keras.export.tflite import class_names_path
from cfsam_keras.models import check_class_names
from cfsam_keras.models import detector
from cfsam_keras.models import model_config

PREDICTOR_KINDS = ("keras", "saved_model", "tflite", "onnx")


def _check_image(image):
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected one RGB uint8 image [H, W, 3], got {image.dtype} {image.shape}")
    return image


def _first_image(out):
    """The first image's detections from a file's outputs (boxes yxyx -> xyxy)."""
    return _trim(
        np.asarray(out["detection_boxes"])[0][:, [1, 0, 3, 2]],
        out["detection_scores"][0],
        out["detection_classes"][0],
        out["num_detections"][0],
    )


def _uint8_batch(image, input_size):
    """``[1, S, S, 3]`` uint8: ``image`` resized as the Keras predictor resizes, rounded."""
    image = _check_image(image)
    if image.shape[:2] != (input_size, input_size):
        image = resize_images(image[None], input_size).numpy()[0]
        image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return image[None]


def _trim(boxes, scores, classes, num):
    num = int(num)
    return {
        "boxes": np.asarray(boxes, np.float32)[:num],
        "scores": np.asarray(scores, np.float32)[:num],
        "classes": np.asarray(classes).astype(np.int32)[:num],
    }


class _Predictor:
    """What every predictor shares: ``predict(image)`` is ``preprocess`` then
    ``predict_preprocessed`` (which ``batch_detector`` calls on its own)."""

    def predict(self, image):
        """Detections of one RGB uint8 image ``[H, W, 3]`` of any size (see the module)."""
        return self.predict_preprocessed(self.preprocess(image))


class KerasPredictor(_Predictor):
    """Runs ``cfsam_keras.models.detector(model)`` on one image at a time.

    Args:
        model: an SSD Keras model (``SSD300``) or the path of a ``.keras`` file.
        class_names: optional list of names; default: the model's own.
        **settings: the inference settings of ``cfsam_keras.models.postprocessor``;
            SSD's when left out.
    """

    kind = "keras"

    def __init__(self, model, class_names=None, **settings):
        if isinstance(model, (str, os.PathLike)):
            model = keras.saving.load_model(model)
        config = model_config(model)
        self.model = model
        self.input_size = config["input_size"]
        self.class_names = (
            check_class_names(class_names, config["num_classes"]) or config["class_names"]
        )
        self.detector = detector(model, **settings)

    def preprocess(self, image):
        """The float32 ``[1, S, S, 3]`` batch the model sees for ``image``."""
        return resize_images(_check_image(image)[None], self.input_size)

    def predict_preprocessed(self, batch):
        out = self.detector.predict_on_batch(batch)
        return _trim(out["boxes"][0], out["scores"][0], out["classes"][0], out["num_detections"][0])


class SavedModelPredictor(_Predictor):
    """Runs the ``serving_default`` signature of an exported SavedModel.

    Needs only TensorFlow (not ``cfsam_keras``'s model code).

    Args:
        export_dir: a version folder written by ``export_saved_model``
            (``exports/NAME/1``).
    """

    kind = "saved_model"

    def __init__(self, export_dir):
        if not os.path.isfile(os.path.join(export_dir, "saved_model.pb")):
            raise FileNotFoundError(
                f"{export_dir} is not a SavedModel folder (no saved_model.pb); pass a "
                "version folder such as exports/NAME/1"
            )
        self._loaded = tf.saved_model.load(export_dir)
        if SERVING_DEFAULT not in self._loaded.signatures:
            raise ValueError(f"{export_dir} has no {SERVING_DEFAULT!r} signature")
        self._serve = self._loaded.signatures[SERVING_DEFAULT]
        names_file = os.path.join(export_dir, CLASS_NAMES_FILE)
        self.class_names = read_class_names(names_file) if os.path.isfile(names_file) else None
        self.input_size = None  # resized inside the signature

    def preprocess(self, image):
        return tf.constant(_check_image(image)[None])

    def predict_preprocessed(self, batch):
        return _first_image(self._serve(images=batch))


class TFLitePredictor(_Predictor):
    """Runs a ``.tflite`` file from ``export_tflite`` with the LiteRT interpreter.

    Args:
        path: the ``.tflite`` file.
        num_threads: interpreter threads; default: every CPU core, as the Keras
            and SavedModel predictors use.
    """

    kind = "tflite"

    def __init__(self, path, num_threads=None):
        try:
            from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415 (optional extra)
        except ImportError:
            raise ImportError(
                "running a .tflite file needs the LiteRT interpreter: "
                "pip install 'cfsam-keras[litert]' (or ai-edge-litert)"
            ) from None

        if not os.path.isfile(path):
            raise FileNotFoundError(f"no such TFLite file: {path}")
        self.num_threads = int(num_threads or os.cpu_count() or 1)
        self.interpreter = Interpreter(model_path=str(path), num_threads=self.num_threads)
        self._runner = self.interpreter.get_signature_runner()
        details = self._runner.get_input_details()["images"]
        self.input_size = int(details["shape"][1])
        names_file = class_names_path(str(path))
        self.class_names = read_class_names(names_file) if os.path.isfile(names_file) else None

    def preprocess(self, image):
        return _uint8_batch(image, self.input_size)

    def run(self, batch):
        """All outputs of the TFLite model for a uint8 ``[1, S, S, 3]`` batch."""
        return self._runner(images=batch)

    def predict_preprocessed(self, batch):
        return _first_image(self.run(batch))


class ONNXPredictor(_Predictor):
    """Runs a ``.onnx`` file from ``export_onnx`` with ONNX Runtime on the CPU.

    Args:
        path: the ``.onnx`` file.
        num_threads: intra-op threads; default: every CPU core, as the other
            predictors use.
    """

    kind = "onnx"

    def __init__(self, path, num_threads=None):
        try:
            import onnxruntime  # noqa: PLC0415 (optional extra)
        except ImportError:
            raise ImportError(
                "running an .onnx file needs ONNX Runtime: pip install 'cfsam-keras[onnx]'"
            ) from None

        if not os.path.isfile(path):
            raise FileNotFoundError(f"no such ONNX file: {path}")
        self.num_threads = int(num_threads or os.cpu_count() or 1)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.num_threads
        self.session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        (images,) = self.session.get_inputs()
        if images.name != "images" or len(images.shape) != 4:
            raise ValueError(f"{path} was not written by export_onnx (input {images.name!r})")
        metadata = read_metadata(self.session.get_modelmeta().custom_metadata_map)
        self.input_size = int(images.shape[1])
        self.class_names = metadata["class_names"]
        self._names = [o.name for o in self.session.get_outputs()]

    def preprocess(self, image):
        return _uint8_batch(image, self.input_size)

    def run(self, batch):
        """All outputs of the ONNX model for a uint8 ``[B, S, S, 3]`` batch, by name."""
        return dict(zip(self._names, self.session.run(None, {"images": np.asarray(batch)})))

    def predict_preprocessed(self, batch):
        return _first_image(self.run(batch))


def load_predictor(kind, path_or_model, **kwargs):
    """Loads a predictor of the given kind.

    Args:
        kind: ``"keras"`` (a ``.keras`` file or a model object),
            ``"saved_model"`` (a SavedModel version folder), ``"tflite"``
            (a ``.tflite`` file) or ``"onnx"`` (an ``.onnx`` file).
        path_or_model: what to load.
        **kwargs: passed to the predictor class.

    Returns:
        A `KerasPredictor`, `SavedModelPredictor`, `TFLitePredictor` or `ONNXPredictor`.

    Example:

    >>> predictor = load_predictor("tflite", "exports/ssd300/ssd300.tflite")
    >>> detections = predictor.predict(image)  # boxes, scores, classes
    """
    classes = {
        "keras": KerasPredictor,
        "saved_model": SavedModelPredictor,
        "tflite": TFLitePredictor,
        "onnx": ONNXPredictor,
    }
    if kind not in classes:
        raise ValueError(f"kind must be one of {PREDICTOR_KINDS}, got {kind!r}")
    return classes[kind](path_or_model, **kwargs)


def batch_detector(predictor):
    """A predictor as a detector over batches, e.g. for ``evaluate_detector``.

    Args:
        predictor: from `load_predictor`.

    Returns:
        A callable: images float32 ``[B, S, S, 3]`` (RGB 0..255 at the model's input
        size, as ``cfsam_keras.data.eval_pipeline`` gives them) -> dict of ``boxes``
        ``[B, K, 4]`` rel_xyxy, ``scores``, ``classes``, ``num_detections``, padded to
        the largest count of the batch. SavedModel and TFLite get the images rounded to
        uint8 (their input type); Keras gets them as they are.

    Example:

    >>> tflite = batch_detector(load_predictor("tflite", "ssd.tflite"))
    >>> evaluate_detector(tflite, val_source, input_size=300)["coco"]["AP50"]
    """

    def run(images):
        outs = []
        for image in np.asarray(images):
            if predictor.kind == "keras":
                batch = image[None].astype(np.float32)
            else:
                batch = predictor.preprocess(np.clip(np.round(image), 0, 255).astype(np.uint8))
            outs.append(predictor.predict_preprocessed(batch))
        k = max([len(o["scores"]) for o in outs] + [1])

        def pad(key, shape):
            return np.stack(
                [
                    np.concatenate([o[key], np.zeros((k - len(o[key]),) + shape, o[key].dtype)])
                    for o in outs
                ]
            )

        return {
            "boxes": pad("boxes", (4,)),
            "scores": pad("scores", ()),
            "classes": pad("classes", ()),
            "num_detections": np.array([len(o["scores"]) for o in outs], np.int32),
        }

    return run
