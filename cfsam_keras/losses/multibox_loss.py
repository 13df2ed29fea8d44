"""The SSD MultiBox loss: Smooth L1 + softmax cross-entropy with hard negatives."""

import keras
from keras import ops

from cfsam_keras.defaults import LOC_WEIGHT
from cfsam_keras.defaults import NEG_POS_RATIO
from cfsam_keras.validation import positive_int


def multibox_loss_terms(y_true, y_pred, neg_pos_ratio=NEG_POS_RATIO):
    """Per-image parts of the SSD MultiBox loss, not yet normalised.

    Positives are the default boxes whose target class is not 0. Negatives are
    mined per image: the ``min(floor(neg_pos_ratio * positives), negatives)``
    background boxes with the largest cross-entropy (as the SSD reference
    code; an image without positives mines none). Computed in float32.

    Args:
        y_true: ``[B, A, 5]`` targets from `cfsam_keras.targets.encode`:
            4 offsets and the class index (0 = background).
        y_pred: ``[B, A, 4 + num_classes + 1]``: offsets, then class logits
            (index 0 = background).
        neg_pos_ratio: float, negatives mined per positive.

    Returns:
        A dict of float32 ``[B]`` tensors: ``localization`` (Smooth L1,
        beta 1, summed over the positives' four offsets), ``classification``
        (cross-entropy summed over positives and mined negatives),
        ``num_positives`` and ``num_negatives`` (mined).

    Example:
    >>> terms = multibox_loss_terms(y_true, y_pred)
    >>> n = ops.maximum(ops.sum(terms["num_positives"]), 1.0)
    >>> loc_loss = ops.sum(terms["localization"]) / n
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    labels = ops.cast(y_true[..., 4], "int32")
    positive = labels > 0
    positive_f = ops.cast(positive, "float32")

    diff = ops.abs(y_pred[..., :4] - y_true[..., :4])
    smooth_l1 = ops.where(diff < 1.0, 0.5 * ops.square(diff), diff - 0.5)
    localization = ops.sum(ops.sum(smooth_l1, axis=-1) * positive_f, axis=-1)

    log_probs = ops.log_softmax(y_pred[..., 4:], axis=-1)
    cross_entropy = -ops.squeeze(
        ops.take_along_axis(log_probs, ops.expand_dims(labels, -1), axis=-1), -1
    )

    # Hard negative mining: rank background boxes by their loss, positives last
    # (cross-entropy is >= 0, so -1 sorts below every negative).
    num_anchors = ops.cast(ops.shape(labels)[-1], "float32")
    num_positives = ops.sum(positive_f, axis=-1)
    num_negatives = ops.minimum(
        ops.floor(neg_pos_ratio * num_positives), num_anchors - num_positives
    )
    mining_loss = ops.where(positive, -1.0, ops.stop_gradient(cross_entropy))
    order = ops.argsort(-mining_loss, axis=-1)
    rank = ops.argsort(order, axis=-1)
    negative = ops.cast(rank, "float32") < ops.expand_dims(num_negatives, -1)
    selected = ops.logical_or(positive, negative)
    classification = ops.sum(ops.where(selected, cross_entropy, 0.0), axis=-1)
    return {
        "localization": localization,
        "classification": classification,
        "num_positives": num_positives,
        "num_negatives": num_negatives,
    }


@keras.saving.register_keras_serializable(package="cfsam_keras")
class MultiBoxLoss(keras.losses.Loss):
    """The SSD MultiBox loss (Liu et al., 2016).

    ``L = (L_conf + alpha * L_loc) / N``: Smooth L1 (beta 1) on the offsets of
    the positive default boxes, softmax cross-entropy on the positives and on
    the hardest negatives (``neg_pos_ratio`` per positive, mined per image),
    divided by ``N``, the number of positives in the batch (at least 1, so a
    batch without positives gives a finite loss). Always computed in float32,
    also under mixed precision. See `multibox_loss_terms` for the two parts.

    Normalisation and distribution. ``call`` returns one value per image,
    ``(L_conf,i + alpha * L_loc,i) * B * R / N``, where ``B`` is the batch on
    this replica, ``R`` the number of replicas in sync and ``N`` the number
    of positives over the GLOBAL batch. Keras' ``"sum_over_batch_size"``
    reduction then divides by ``B`` and (under ``tf.distribute``) by ``R``,
    and the replicas' gradients are summed, so every replica contributes its
    images' loss over the global ``N``: 2 replicas give the same update as one
    device on the same global batch, even when the replicas' batches differ
    in size. With the TensorFlow backend inside a ``tf.distribute`` replica
    context ``N`` is all-reduced across replicas; on one device (any
    backend), and with JAX's data parallelism (global arrays), ``N`` is
    already global. ``sample_weight`` (one weight per image) multiplies the
    per-image values. Only the ``"sum_over_batch_size"`` (alias ``"mean"``)
    and ``"none"`` reductions are allowed, since others would break this
    normalisation.

    Args:
        num_classes: int, number of object classes (background excluded).
        neg_pos_ratio: float, negatives mined per positive (3 in SSD).
        alpha: float, weight of the localisation loss (1 in SSD).
        reduction: ``"sum_over_batch_size"`` (default), ``"mean"`` or
            ``"none"`` (per-image values as above).
        name: optional name.
        dtype: ignored for the computation, which is always float32; kept
            for Keras' serialisation.

    Call arguments:
        y_true: ``[B, A, 5]`` targets (4 offsets, class index, 0 = background).
        y_pred: ``[B, A, 4 + num_classes + 1]`` offsets then class logits.
        sample_weight: optional ``[B]`` per-image weights.

    Returns:
        A float32 scalar (or ``[B]`` with ``reduction="none"``).

    Example:
    >>> model = SSD300(num_classes=20)
    >>> model.compile(optimizer="sgd", loss=MultiBoxLoss(num_classes=20))
    """

    def __init__(
        self,
        num_classes,
        neg_pos_ratio=NEG_POS_RATIO,
        alpha=LOC_WEIGHT,
        reduction="sum_over_batch_size",
        name="multibox_loss",
        dtype=None,
    ):
        positive_int(num_classes, "num_classes")
        if not neg_pos_ratio >= 0:
            raise ValueError(f"neg_pos_ratio must be >= 0; received {neg_pos_ratio!r}.")
        if not alpha >= 0:
            raise ValueError(f"alpha must be >= 0; received {alpha!r}.")
        if reduction not in ("sum_over_batch_size", "mean", "none", None):
            raise ValueError(
                "MultiBoxLoss normalises by the number of positives itself, so "
                "reduction must be 'sum_over_batch_size', 'mean' or 'none'; "
                f"received {reduction!r}."
            )
        super().__init__(name=name, reduction=reduction, dtype="float32")
        self.num_classes = num_classes
        self.neg_pos_ratio = float(neg_pos_ratio)
        self.alpha = float(alpha)

    def call(self, y_true, y_pred):
        if y_true.shape[-1] is not None and y_true.shape[-1] != 5:
            raise ValueError(
                f"MultiBoxLoss: y_true must have shape [B, A, 5]; received {y_true.shape}."
            )
        expected = 4 + self.num_classes + 1
        if y_pred.shape[-1] is not None and y_pred.shape[-1] != expected:
            raise ValueError(
                f"MultiBoxLoss(num_classes={self.num_classes}): y_pred must have "
                f"shape [B, A, {expected}] (4 offsets + {self.num_classes} classes "
                f"+ background); received {y_pred.shape}."
            )
        terms = multibox_loss_terms(y_true, y_pred, self.neg_pos_ratio)
        per_image = terms["classification"] + self.alpha * terms["localization"]
        batch = ops.cast(ops.shape(per_image)[0], "float32")
        num_positives, replicas = _global_sum_and_replicas(ops.sum(terms["num_positives"]))
        scale = batch * replicas / ops.maximum(num_positives, 1.0)
        return per_image * scale

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "neg_pos_ratio": self.neg_pos_ratio,
                "alpha": self.alpha,
            }
        )
        return config


def _global_sum_and_replicas(value):
    """``(sum of value over tf.distribute replicas, number of replicas)``."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # noqa: PLC0415 (only under the TensorFlow backend)

        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            total = context.all_reduce(tf.distribute.ReduceOp.SUM, value)
            return total, float(context.num_replicas_in_sync)
    return value, 1.0
