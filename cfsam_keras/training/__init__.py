"""Training SSD with ``model.fit``: strategies, callbacks and the run folder.

- ``get_strategy``, ``set_mixed_precision``: distribution and precision (under
  JAX, ``DataParallelStrategy``: ``keras.distribution.DataParallel``).
- ``make_deterministic``: the same weights from every run of the same seed.
- ``distribute``, ``fit_scope``: the dataset for ``fit`` under a strategy, and the
  Keras workarounds ``MultiWorkerMirroredStrategy`` needs.
- ``RunDir``, ``build_callbacks``: the run folder and the callbacks filling it
  (atomic checkpoints, resumable backup, NaN guard, a check that the data did not run
  out, logs, TensorBoard).
- ``StopAtStep``: ends training after an exact number of optimizer steps.
- ``set_batch_norm_momentum``: how closely BatchNorm's inference statistics
  follow the weights (for short runs from scratch).

The optimizers and schedules are in ``cfsam_keras.optimizers``.
"""

from cfsam_keras.training.batch_norm import set_batch_norm_momentum
from cfsam_keras.training.callbacks import AtomicModelCheckpoint
from cfsam_keras.training.callbacks import DataRanOutError
from cfsam_keras.training.callbacks import HistoryLogger
from cfsam_keras.training.callbacks import LearningRateLogger
from cfsam_keras.training.callbacks import RequireFullEpochs
from cfsam_keras.training.callbacks import ResumableBackup
from cfsam_keras.training.callbacks import StopAtStep
from cfsam_keras.training.callbacks import TerminateOnNaNWithAdvice
from cfsam_keras.training.callbacks import TrainingDivergedError
from cfsam_keras.training.callbacks import atomic_save_model
from cfsam_keras.training.callbacks import read_history
from cfsam_keras.training.callbacks import remove_temporary_files
from cfsam_keras.training.distribute import distribute
from cfsam_keras.training.distribute import fit_scope
from cfsam_keras.training.run_dir import RunDir
from cfsam_keras.training.run_dir import build_callbacks
from cfsam_keras.training.strategy import JAX_STRATEGIES
from cfsam_keras.training.strategy import STRATEGIES
from cfsam_keras.training.strategy import DataParallelStrategy
from cfsam_keras.training.strategy import get_strategy
from cfsam_keras.training.strategy import is_chief
from cfsam_keras.training.strategy import make_deterministic
from cfsam_keras.training.strategy import set_mixed_precision
from cfsam_keras.training.strategy import task_info

__all__ = [
    "AtomicModelCheckpoint",
    "DataParallelStrategy",
    "DataRanOutError",
    "HistoryLogger",
    "JAX_STRATEGIES",
    "LearningRateLogger",
    "RequireFullEpochs",
    "ResumableBackup",
    "RunDir",
    "STRATEGIES",
    "StopAtStep",
    "TerminateOnNaNWithAdvice",
    "TrainingDivergedError",
    "atomic_save_model",
    "build_callbacks",
    "distribute",
    "fit_scope",
    "get_strategy",
    "is_chief",
    "make_deterministic",
    "read_history",
    "remove_temporary_files",
    "set_batch_norm_momentum",
    "set_mixed_precision",
    "task_info",
]
