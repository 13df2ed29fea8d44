"""SSD300's published settings: the one home of each value the library defaults to.

Liu et al., 2016 and the reference Caffe code (``detection_output_param`` at test
time, ``multibox_loss_param`` in training). Every function, layer and command of
the library that takes one of these settings defaults to the name here. This
module imports nothing, so the command line reads it before TensorFlow loads.
"""

#: Detections scoring below this class probability are dropped (``confidence_threshold``).
SCORE_THRESHOLD = 0.01
#: Per-class NMS drops a box overlapping a better one of its class by more (``nms_threshold``).
NMS_IOU_THRESHOLD = 0.45
#: Per class, only this many best-scoring boxes enter NMS (``top_k``).
PRE_NMS_TOP_K = 400
#: Detections kept per image after NMS (``keep_top_k``).
MAX_DETECTIONS = 200

#: The box-encoding variances of the centre offsets and of the log sizes.
VARIANCES = (0.1, 0.2)
#: A default box whose IoU with a ground-truth box reaches this is a positive.
MATCH_IOU_THRESHOLD = 0.5
#: Hard negative mining keeps this many negatives per positive.
NEG_POS_RATIO = 3.0
#: Weight of the localisation loss against the confidence loss (SSD's alpha).
LOC_WEIGHT = 1.0
