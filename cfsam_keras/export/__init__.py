"""Export for serving: TF Serving SavedModels and TFLite files, and predictors.

- ``export_saved_model(model, export_dir, version=None, ...)``: a TF Serving
  version folder ``export_dir/<version>/`` with ``serving_default`` (uint8
  images) and ``serving_bytes`` (encoded JPEG/PNG) signatures.
- ``export_tflite(model, path, quantization=None, ...)``: a batch-1 TFLite file
  with decoding and per-class NMS inside (built-in ops only).
- ``load_predictor(kind, path_or_model)``: run a ``.keras`` model, a SavedModel
  or a TFLite file on one image through one interface; ``batch_detector(predictor)``
  runs one over batches (for ``cfsam_keras.evaluation.evaluate_detector``).
"""

from cfsam_keras.export.predictors import KerasPredictor
from cfsam_keras.export.predictors import SavedModelPredictor
from cfsam_keras.export.predictors import TFLitePredictor
from cfsam_keras.export.predictors import batch_detector
from cfsam_keras.export.predictors import load_predictor
from cfsam_keras.export.saved_model import SERVING_BYTES
from cfsam_keras.export.saved_model import SERVING_DEFAULT
from cfsam_keras.export.saved_model import export_saved_model
from cfsam_keras.export.saved_model import next_version
from cfsam_keras.export.tflite import QUANTIZATIONS
from cfsam_keras.export.tflite import class_names_path
from cfsam_keras.export.tflite import export_tflite

__all__ = [
    "KerasPredictor",
    "QUANTIZATIONS",
    "SERVING_BYTES",
    "SERVING_DEFAULT",
    "SavedModelPredictor",
    "TFLitePredictor",
    "batch_detector",
    "class_names_path",
    "export_saved_model",
    "export_tflite",
    "load_predictor",
    "next_version",
]
