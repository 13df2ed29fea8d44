"""Matching ground truth to SSD default boxes, and the box encoding.

`encode` and `match` are TensorFlow ops (they run inside ``tf.data`` whatever
the Keras backend); `decode` and `pairwise_iou` are ``keras.ops`` (they run in
models on every backend).
"""

from cfsam_keras.targets.decoding import decode
from cfsam_keras.targets.encoding import encode
from cfsam_keras.targets.iou import pairwise_iou
from cfsam_keras.targets.matching import match

__all__ = ["decode", "encode", "match", "pairwise_iou"]
