"""Layers: CFSAM, the SE / CBAM / ECA baselines, SSD's L2Normalization, BatchNormalization.

CFSAM and the baselines share one interface: a list of feature maps
`[B, H_i, W_i, C_i]` in, a list of maps of the same shapes and dtypes out.
They are written in `keras.layers` and `keras.ops` only, with no backend-specific
code (the tests run them under TensorFlow and JAX). The one exception is
`BatchNormalization`, Keras' layer with TensorFlow's fused kernel in its training
step under that backend (Keras' own code everywhere else).
"""

from cfsam_keras.layers.attention_module import ATTENTION_MODULES
from cfsam_keras.layers.attention_module import attention_module
from cfsam_keras.layers.batch_normalization import BatchNormalization
from cfsam_keras.layers.cbam import CBAM
from cfsam_keras.layers.cfsam import CFSAM
from cfsam_keras.layers.eca import ECA
from cfsam_keras.layers.eca import eca_kernel_size
from cfsam_keras.layers.l2_normalization import L2Normalization
from cfsam_keras.layers.multi_level import MultiLevelLayer
from cfsam_keras.layers.spatial import adaptive_average_pool
from cfsam_keras.layers.spatial import sine_position_encoding
from cfsam_keras.layers.squeeze_excitation import SqueezeExcitation
from cfsam_keras.layers.transformer import CrossLevelEncoderLayer

__all__ = [
    "ATTENTION_MODULES",
    "BatchNormalization",
    "CBAM",
    "CFSAM",
    "CrossLevelEncoderLayer",
    "ECA",
    "L2Normalization",
    "MultiLevelLayer",
    "SqueezeExcitation",
    "adaptive_average_pool",
    "attention_module",
    "eca_kernel_size",
    "sine_position_encoding",
]
