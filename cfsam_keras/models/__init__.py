"""SSD300 models: backbones, heads, decoding, per-class NMS and the inference detector.

- ``SSD300(num_classes, backbone, attention, ...)`` builds the trainable model.
- ``model_default_boxes(model)`` gives its default boxes from its config.
- ``detector(model, ...)`` wraps it with decoding and per-class NMS for inference.
"""

from cfsam_keras.models.decoder import DecodePredictions
from cfsam_keras.models.detector import detector
from cfsam_keras.models.heads import SSDPredictions
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
    "detector",
    "model_config",
    "model_default_boxes",
]
