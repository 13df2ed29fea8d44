"""cfsam-keras: CFSAM (Cross-Layer Feature Self-Attention Module) in an SSD300 detector.

Subpackages, in the order data flows through a detector:

- ``cfsam_keras.data``: sources (built-in, COCO, VOC, TFDS) and tf.data pipelines.
- ``cfsam_keras.anchors``: SSD default boxes.
- ``cfsam_keras.targets``: matching ground truth to default boxes, box encoding.
- ``cfsam_keras.layers``: CFSAM, the SE / CBAM / ECA baselines, L2Normalization.
- ``cfsam_keras.models``: backbones, SSD300, decoding and NMS.
- ``cfsam_keras.losses``: the MultiBox loss.
- ``cfsam_keras.training``: strategies, optimizers, callbacks for ``model.fit``.
- ``cfsam_keras.evaluation``: COCO (pycocotools) and VOC scoring.
- ``cfsam_keras.export``: SavedModel for TF Serving, TFLite, and predictors.
- ``cfsam_keras.defaults``: SSD's published settings, the one home of each.
"""

import os as _os
import sys as _sys

from cfsam_keras import runtime as _runtime

# TensorFlow's C++ logging is noisy; keep it quiet unless the user asked otherwise.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

#: The one box convention inside the library (a ``keras.utils.bounding_boxes``
#: format string): normalised (xmin, ymin, xmax, ymax) in [0, 1].
BOX_FORMAT = "rel_xyxy"


def register_keras_objects():
    """Registers every Keras class of the library (layers, loss, optimizers, schedules).

    The classes register themselves when their modules are imported; this imports
    them all, so that ``keras.saving.load_model`` can rebuild any model this library
    saved. ``import cfsam_keras`` calls it.
    """
    # Imported here, not at the top: the command line must parse before TensorFlow loads.
    from cfsam_keras import layers  # noqa: F401, PLC0415
    from cfsam_keras import losses  # noqa: F401, PLC0415
    from cfsam_keras import models  # noqa: F401, PLC0415
    from cfsam_keras import optimizers  # noqa: F401, PLC0415


def _started_as_command_line():
    """Whether this process is the ``cfsam-keras`` command (script or ``python -m``).

    The command line parses its arguments (and answers ``--help``) before it imports
    TensorFlow, then calls `register_keras_objects` itself.
    """
    argv = list(getattr(_sys, "orig_argv", ()))
    if "-m" in argv[:-1]:
        return argv[argv.index("-m") + 1] in ("cfsam_keras", "cfsam_keras.cli")
    return _os.path.basename(_sys.argv[0] if _sys.argv else "") in (
        "cfsam-keras",
        "cfsam-keras.exe",
    )


if not _started_as_command_line():
    if (
        _os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow"
        and "keras" not in _sys.modules
    ):
        _runtime.import_tensorflow_quietly()  # before Keras, which would load it noisily
    register_keras_objects()
