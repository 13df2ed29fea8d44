"""cfsam-keras: CFSAM (Cross-Layer Feature Self-Attention Module) in an SSD300 detector.

Subpackages, in the order data flows through a detector:

- ``cfsam_keras.layers``: CFSAM, the SE / CBAM / ECA baselines, L2Normalization.
- ``cfsam_keras.anchors``: SSD default boxes.
- ``cfsam_keras.targets``: matching ground truth to default boxes, box encoding.
- ``cfsam_keras.losses``: the MultiBox loss.
- ``cfsam_keras.models``: backbones, SSD300, decoding and NMS.
- ``cfsam_keras.data``: sources (built-in, COCO, VOC, TFDS) and tf.data pipelines.
- ``cfsam_keras.evaluation``: COCO (pycocotools) and VOC scoring.
- ``cfsam_keras.training``: strategies, optimizer, callbacks for ``model.fit``.
- ``cfsam_keras.export``: SavedModel for TF Serving and TFLite.
"""

import os as _os

# TensorFlow's C++ logging is noisy; keep it quiet unless the user asked otherwise.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

#: The one box convention inside the library (a ``keras.utils.bounding_boxes``
#: format string): normalised (xmin, ymin, xmax, ymax) in [0, 1].
BOX_FORMAT = "rel_xyxy"

# Importing the package registers its layers and loss with Keras, so that
# `keras.saving.load_model` finds them after a plain `import cfsam_keras`.
from cfsam_keras import layers as _layers  # noqa: E402,F401
from cfsam_keras import losses as _losses  # noqa: E402,F401
from cfsam_keras import models as _models  # noqa: E402,F401
