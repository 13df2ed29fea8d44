"""The SSD MultiBox loss."""

from cfsam_keras.losses.multibox_loss import MultiBoxLoss
from cfsam_keras.losses.multibox_loss import multibox_loss_terms

__all__ = ["MultiBoxLoss", "multibox_loss_terms"]
