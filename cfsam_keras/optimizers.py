"""Optimizers and learning-rate schedules for training SSD.

SSD's reference (Caffe) trains with SGD, momentum 0.9 and ``weight_decay: 5e-4``.
Caffe's weight decay is an L2 penalty: ``weight_decay * w`` is added to the
gradient *before* momentum. Keras' ``SGD(weight_decay=...)`` instead decays the
weights after the update (decoupled, "SGDW"), which under momentum 0.9 is a
different, roughly ten times weaker regulariser. ``SGDL2`` reproduces Caffe.
"""

import math

import keras
from keras import ops

from cfsam_keras.validation import non_negative_int
from cfsam_keras.validation import number
from cfsam_keras.validation import positive_int

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("step", "cosine", "constant")


@keras.saving.register_keras_serializable(package="cfsam_keras")
class SGDL2(keras.optimizers.SGD):
    """SGD with momentum and a coupled L2 penalty, as Caffe's ``weight_decay``.

    ``l2 * w`` is added to the gradient of every kernel (variables with two or
    more dimensions) before the momentum update. Biases and normalisation
    parameters are not decayed (SSD's Caffe prototxt sets ``decay_mult: 0`` on
    biases).

    Args:
        learning_rate: float or ``LearningRateSchedule``.
        momentum: momentum factor.
        l2: the L2 coefficient (SSD: 5e-4).
        nesterov: whether to use Nesterov momentum.
        **kwargs: other ``keras.optimizers.Optimizer`` arguments, e.g.
            ``global_clipnorm``.

    Example:

    >>> opt = SGDL2(learning_rate=1e-3, momentum=0.9, l2=5e-4)
    """

    def __init__(self, learning_rate=0.001, momentum=0.9, l2=5e-4, nesterov=False, **kwargs):
        l2 = number(l2, "l2", low=0.0)
        super().__init__(
            learning_rate=learning_rate, momentum=momentum, nesterov=nesterov, **kwargs
        )
        self.l2 = float(l2)

    def update_step(self, gradient, variable, learning_rate):
        if self.l2 and len(variable.shape) >= 2:
            gradient = ops.add(
                ops.cast(gradient, variable.dtype),
                ops.multiply(ops.cast(self.l2, variable.dtype), variable),
            )
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config["l2"] = self.l2
        return config


@keras.saving.register_keras_serializable(package="cfsam_keras")
class WarmupStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then the learning rate times ``factor`` at each boundary.

    SSD300 on VOC07+12: ``WarmupStepDecay(1e-3, [80000, 100000], factor=0.1)``.

    Args:
        learning_rate: the rate after warm-up.
        boundaries: increasing step numbers at which the rate is multiplied
            by ``factor``.
        factor: the multiplier at each boundary.
        warmup_steps: steps of linear warm-up (0 for none).
        warmup_start: the fraction of ``learning_rate`` warm-up starts from.

    Call arguments:
        step: the optimizer's iteration count.

    Returns:
        The learning rate for ``step`` (float32 scalar).

    Example:

    >>> schedule = WarmupStepDecay(1e-3, [80000, 100000], warmup_steps=500)
    >>> float(schedule(90000))  # doctest: +ELLIPSIS
    0.0001...
    """

    def __init__(self, learning_rate, boundaries, factor=0.1, warmup_steps=0, warmup_start=1 / 3):
        boundaries = [int(b) for b in boundaries]
        self.learning_rate = number(learning_rate, "learning_rate", low=0.0, low_open=True)
        if boundaries != sorted(boundaries):
            raise ValueError(f"`boundaries` must be increasing, got {boundaries}.")
        self.boundaries = boundaries
        self.factor = number(factor, "factor", low=0.0)
        self.warmup_steps = non_negative_int(int(warmup_steps), "warmup_steps")
        self.warmup_start = float(warmup_start)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        decays = ops.zeros((), "float32")
        for boundary in self.boundaries:
            decays = decays + ops.cast(ops.greater_equal(step, boundary), "float32")
        rate = self.learning_rate * ops.power(self.factor, decays)
        if self.warmup_steps:
            progress = ops.minimum(step / self.warmup_steps, 1.0)
            rate = rate * (self.warmup_start + (1.0 - self.warmup_start) * progress)
        return rate

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "boundaries": self.boundaries,
            "factor": self.factor,
            "warmup_steps": self.warmup_steps,
            "warmup_start": self.warmup_start,
        }


def scale_learning_rate(base_learning_rate, global_batch_size, reference_batch_size=32):
    """The linear scaling rule: the rate grows with the global batch size.

    Args:
        base_learning_rate: the rate that suits ``reference_batch_size``.
        global_batch_size: the batch summed over all replicas.
        reference_batch_size: the batch the base rate was tuned for (SSD: 32).

    Returns:
        ``base_learning_rate * global_batch_size / reference_batch_size``.
    """
    positive_int(global_batch_size, "global_batch_size")
    positive_int(reference_batch_size, "reference_batch_size")
    return base_learning_rate * global_batch_size / reference_batch_size


def build_schedule(
    schedule,
    learning_rate,
    total_steps,
    warmup_steps=0,
    boundaries=None,
    factor=0.1,
    final_fraction=0.0,
):
    """A learning-rate schedule by name.

    Args:
        schedule: ``"step"`` (``WarmupStepDecay``; ``boundaries`` default to
            SSD's 2/3 and 5/6 of ``total_steps``), ``"cosine"`` (Keras'
            ``CosineDecay`` with linear warm-up to ``learning_rate``) or
            ``"constant"`` (warm-up, then flat).
        learning_rate: the peak rate.
        total_steps: the number of optimizer steps of the whole run.
        warmup_steps: steps of linear warm-up.
        boundaries: step numbers for ``"step"``.
        factor: the multiplier at each boundary for ``"step"``.
        final_fraction: the fraction of ``learning_rate`` cosine ends at.

    Returns:
        A ``keras.optimizers.schedules.LearningRateSchedule``.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"Unknown schedule {schedule!r}; expected one of {SCHEDULES}.")
    total_steps = positive_int(int(total_steps), "total_steps")
    warmup_steps = min(int(warmup_steps), max(int(total_steps) - 1, 0))
    if schedule == "step":
        if boundaries is None:
            boundaries = [math.ceil(total_steps * 2 / 3), math.ceil(total_steps * 5 / 6)]
        return WarmupStepDecay(learning_rate, boundaries, factor, warmup_steps)
    if schedule == "constant":
        return WarmupStepDecay(learning_rate, [], 1.0, warmup_steps)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=learning_rate / 3 if warmup_steps else learning_rate,
        decay_steps=max(int(total_steps) - warmup_steps, 1),
        alpha=final_fraction,
        warmup_target=learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )


def build_optimizer(
    name="sgd",
    learning_rate=1e-3,
    weight_decay=5e-4,
    momentum=0.9,
    global_clipnorm=None,
):
    """The optimizer for SSD training.

    Args:
        name: ``"sgd"`` (``SGDL2``: SSD's SGD, momentum, coupled L2) or
            ``"adamw"`` (``keras.optimizers.AdamW``, decoupled weight decay).
        learning_rate: float or schedule (see ``build_schedule``).
        weight_decay: L2 coefficient for ``"sgd"``, decoupled decay for
            ``"adamw"``.
        momentum: SGD momentum.
        global_clipnorm: clip the global gradient norm to this value (guards
            SSD's early instability); ``None`` for no clipping.

    Returns:
        A ``keras.optimizers.Optimizer``.

    Example:

    >>> schedule = build_schedule("step", 1e-3, total_steps=120000, warmup_steps=500)
    >>> optimizer = build_optimizer("sgd", schedule, global_clipnorm=10.0)
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; expected one of {OPTIMIZERS}.")
    number(global_clipnorm, "global_clipnorm", low=0.0, low_open=True, allow_none=True)
    if not isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        number(learning_rate, "learning_rate", low=0.0, low_open=True)
    if name == "sgd":
        return SGDL2(
            learning_rate=learning_rate,
            momentum=momentum,
            l2=weight_decay,
            global_clipnorm=global_clipnorm,
        )
    optimizer = keras.optimizers.AdamW(
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        global_clipnorm=global_clipnorm,
    )
    return optimizer
