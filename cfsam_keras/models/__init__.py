"""SSD300 models: backbones, heads, decoding, per-class NMS and the inference detector.

- ``SSD300(num_classes, backbone, attention, ...)`` builds the trainable model.
- ``model_default_boxes(model)`` gives its default boxes from its config.
- ``model_config(model)`` reads what a model says about itself (classes, boxes).
- ``add_attention(model, "cfsam")`` inserts a module into a trained model without one.
- ``from_torchvision`` / ``from_ssd_pytorch`` convert the peers' trained SSD300.
- ``postprocessor(model, ...)`` is the decode + per-class NMS stage every runtime runs;
  ``detector(model, ...)`` wraps the model with it for inference in Keras.
"""

from cfsam_keras.models.add_attention import add_attention
from cfsam_keras.models.converters import from_ssd_pytorch
from cfsam_keras.models.converters import from_torchvision
from cfsam_keras.models.decoder import DecodePredictions
from cfsam_keras.models.decoder import decode
from cfsam_keras.models.detector import detector
from cfsam_keras.models.detector import postprocessor
from cfsam_keras.models.heads import SSDPredictions
from cfsam_keras.models.heads import check_class_names
from cfsam_keras.models.nms import NMS_METHODS
from cfsam_keras.models.nms import PerClassNMS
from cfsam_keras.models.preprocessing import PREPROCESSING
from cfsam_keras.models.preprocessing import CaffePreprocessing
from cfsam_keras.models.preprocessing import InputPreprocessing
from cfsam_keras.models.ssd import ATTENTIONS
from cfsam_keras.models.ssd import BACKBONES
from cfsam_keras.models.ssd import SSD300
from cfsam_keras.models.ssd import model_config
from cfsam_keras.models.ssd import model_default_boxes

__all__ = [
    "ATTENTIONS",
    "BACKBONES",
    "CaffePreprocessing",
    "InputPreprocessing",
    "PREPROCESSING",
    "DecodePredictions",
    "NMS_METHODS",
    "PerClassNMS",
    "SSD300",
    "SSDPredictions",
    "add_attention",
    "check_class_names",
    "decode",
    "detector",
    "from_ssd_pytorch",
    "from_torchvision",
    "model_config",
    "model_default_boxes",
    "postprocessor",
]
