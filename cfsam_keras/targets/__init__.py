"""Matching ground truth to SSD default boxes, and the box encoding.

`encode` and `match` are TensorFlow ops: they run inside ``tf.data`` whatever the
Keras backend. Their inverse, ``cfsam_keras.models.decode``, is ``keras.ops`` and
runs in models on every backend.
"""

from cfsam_keras.targets.encoding import encode
from cfsam_keras.targets.matching import match

__all__ = ["encode", "match"]
