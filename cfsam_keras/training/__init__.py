"""Training SSD with ``model.fit``: strategies, optimizers, callbacks, reports.

- ``get_strategy``, ``set_mixed_precision``: distribution and precision.
- ``SGDL2``, ``WarmupStepDecay``, ``build_schedule``, ``build_optimizer``,
  ``scale_learning_rate``: SSD's optimizer and schedules.
- ``RunDir``, ``build_callbacks``: the run folder and the callbacks filling it
  (atomic checkpoints, resumable backup, NaN guard, logs, TensorBoard).
- ``write_report``: ``report.md`` with metrics, curves and pictures.
- ``set_batch_norm_momentum``: how closely BatchNorm's inference statistics
  follow the weights (for short runs from scratch).
"""

from cfsam_keras.training.callbacks import (
    AtomicModelCheckpoint,
    HistoryLogger,
    LearningRateLogger,
    ResumableBackup,
    TerminateOnNaNWithAdvice,
    TrainingDivergedError,
    atomic_save_model,
    read_history,
)
from cfsam_keras.training.optimizers import (
    SGDL2,
    WarmupStepDecay,
    build_optimizer,
    build_schedule,
    scale_learning_rate,
)
from cfsam_keras.training.recipe import set_batch_norm_momentum
from cfsam_keras.training.report import draw_detections, plot_curves, write_report
from cfsam_keras.training.run_dir import RunDir, build_callbacks
from cfsam_keras.training.strategy import (
    STRATEGIES,
    get_strategy,
    is_chief,
    set_mixed_precision,
    task_info,
)

__all__ = [
    "AtomicModelCheckpoint",
    "HistoryLogger",
    "LearningRateLogger",
    "ResumableBackup",
    "RunDir",
    "SGDL2",
    "STRATEGIES",
    "TerminateOnNaNWithAdvice",
    "TrainingDivergedError",
    "WarmupStepDecay",
    "atomic_save_model",
    "build_callbacks",
    "draw_detections",
    "build_optimizer",
    "build_schedule",
    "get_strategy",
    "is_chief",
    "plot_curves",
    "read_history",
    "scale_learning_rate",
    "set_batch_norm_momentum",
    "set_mixed_precision",
    "task_info",
    "write_report",
]
