"""SSD default boxes (anchors) and their presets.

Default boxes are ``np.float32 [A, 4]`` arrays of normalised ``(cx, cy, w, h)``,
Keras' ``"rel_center_xywh"`` format.
"""

from cfsam_keras.anchors.default_boxes import boxes_per_location
from cfsam_keras.anchors.default_boxes import default_boxes
from cfsam_keras.anchors.default_boxes import ssd300_default_boxes
from cfsam_keras.anchors.presets import PRESETS
from cfsam_keras.anchors.presets import SSD300_ASPECT_RATIOS
from cfsam_keras.anchors.presets import SSD300_FEATURE_SIZES
from cfsam_keras.anchors.presets import SSD300_STEPS
from cfsam_keras.anchors.presets import anchor_config
from cfsam_keras.anchors.presets import ssd300_feature_sizes

__all__ = [
    "PRESETS",
    "SSD300_ASPECT_RATIOS",
    "SSD300_FEATURE_SIZES",
    "SSD300_STEPS",
    "anchor_config",
    "boxes_per_location",
    "default_boxes",
    "ssd300_default_boxes",
    "ssd300_feature_sizes",
]
