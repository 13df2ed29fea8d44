"""Export for serving: TF Serving SavedModels, TFLite and ONNX files, and predictors.

- ``export_saved_model(model, export_dir, version=None, ...)``: a TF Serving
  version folder ``export_dir/<version>/`` with ``serving_default`` (uint8
  images) and ``serving_bytes`` (encoded JPEG/PNG) signatures.
- ``export_tflite(model, path, quantization=None, ...)``: a batch-1 TFLite file
  with decoding and per-class NMS inside (built-in ops only).
- ``export_onnx(model, path, batch_size=None, ...)``: an ONNX file with decoding
  and per-class NMS inside (standard operators only, for ONNX Runtime and TensorRT).
- ``load_predictor(kind, path_or_model)``: run a ``.keras`` model, a SavedModel,
  a TFLite or an ONNX file on one image through one interface; ``batch_detector(predictor)``
  runs one over batches (for ``cfsam_keras.evaluation.evaluate_detector``).
"""

from cfsam_keras.export.onnx import ONNX_OPSET
from cfsam_keras.export.onnx import export_onnx
from cfsam_keras.export.onnx import operator_domains
from cfsam_keras.export.predictors import KerasPredictor
from cfsam_keras.export.predictors import ONNXPredictor
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
    "ONNXPredictor",
    "ONNX_OPSET",
    "QUANTIZATIONS",
    "SERVING_BYTES",
    "SERVING_DEFAULT",
    "SavedModelPredictor",
    "TFLitePredictor",
    "batch_detector",
    "class_names_path",
    "export_onnx",
    "export_saved_model",
    "export_tflite",
    "load_predictor",
    "next_version",
    "operator_domains",
]
