"""SSD300 models: backbones, heads, decoding, per-class NMS and the inference detector.

- ``SSD300(num_classes, backbone, attention, ...)`` builds the trainable model.
- ``model_default_boxes(model)`` gives its default boxes from its config.
- ``model_config(model)`` reads what a model says about itself (classes, boxes).
- ``postprocessor(model, ...)`` is the decode + per-class NMS stage every runtime runs;
  ``detector(model, ...)`` wraps the model with it for inference in Keras.
"""

from cfsam_keras.models.decoder import DecodePredictions
from cfsam_keras.models.decoder import decode
from cfsam_keras.models.detector import detector
from cfsam_keras.models.detector import postprocessor
from cfsam_keras.models.heads import SSDPredictions
from cfsam_keras.models.heads import check_class_names
from cfsam_keras.models.nms import NMS_METHODS
from cfsam_keras.models.nms import PerClassNMS
from cfsam_keras.models.preprocessing import CaffePreprocessing
from cfsam_keras.models.ssd import ATTENTIONS
from cfsam_keras.models.ssd import BACKBONES
from cfsam_keras.models.ssd import SSD300
from cfsam_keras.models.ssd import model_config
from cfsam_keras.models.ssd import model_default_boxes

__all__ = [
    "ATTENTIONS",
    "BACKBONES",
    "CaffePreprocessing",
    "DecodePredictions",
    "NMS_METHODS",
    "PerClassNMS",
    "SSD300",
    "SSDPredictions",
    "check_class_names",
    "decode",
    "detector",
    "model_config",
    "model_default_boxes",
    "postprocessor",
]
