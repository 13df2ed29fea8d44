"""The layout of a training run's output folder, and the callbacks that fill it.

::

    OUT/
      config.json            the hyper-parameters of the run
      backup/epoch-NNNNN/    ResumableBackup (weights + optimizer + epoch)
      checkpoints/last.keras the model after the latest epoch
      checkpoints/best.keras the model with the best validation metric (+ .json)
      logs/                  TensorBoard
      history.csv            CSVLogger
      history.jsonl          every epoch's logs, including evaluation metrics
      report.md, *.png       a recipe's report (the demo writes one)
"""

import dataclasses
import functools
import json
import os
import warnings

import keras

from cfsam_keras.training.callbacks import AtomicModelCheckpoint
from cfsam_keras.training.callbacks import HistoryLogger
from cfsam_keras.training.callbacks import LearningRateLogger
from cfsam_keras.training.callbacks import RequireFullEpochs
from cfsam_keras.training.callbacks import ResumableBackup
from cfsam_keras.training.callbacks import TerminateOnNaNWithAdvice
from cfsam_keras.training.callbacks import atomic_write_json
from cfsam_keras.training.callbacks import remove_temporary_files
from cfsam_keras.training.callbacks import trim_csv_history
from cfsam_keras.training.strategy import is_chief
from cfsam_keras.training.strategy import task_info


@dataclasses.dataclass(frozen=True)
class RunDir:
    """Paths inside a run's output folder (see the module docstring).

    Args:
        root: the ``--out`` folder.
    """

    root: str

    @property
    def config(self):
        return os.path.join(self.root, "config.json")

    @property
    def backup(self):
        task_type, index = task_info()
        if task_type == "chief":
            return os.path.join(self.root, "backup")
        # Every worker keeps its own backup: they must not overwrite each other.
        return os.path.join(self.root, "backup", f"{task_type}-{index}")

    @property
    def checkpoints(self):
        return os.path.join(self.root, "checkpoints")

    @property
    def last_checkpoint(self):
        return os.path.join(self.checkpoints, "last.keras")

    @property
    def best_checkpoint(self):
        return os.path.join(self.checkpoints, "best.keras")

    @property
    def tensorboard(self):
        return os.path.join(self.root, "logs")

    @property
    def csv_log(self):
        return os.path.join(self.root, "history.csv")

    @property
    def history(self):
        return os.path.join(self.root, "history.jsonl")

    @property
    def report(self):
        return os.path.join(self.root, "report.md")

    def write_config(self, config):
        """Writes the run's hyper-parameters (a dict) to ``config.json``."""
        if is_chief():
            atomic_write_json(config, self.config)

    def read_config(self):
        with open(self.config) as f:
            return json.load(f)


def _tensorboard_installed():
    try:
        import tensorboard  # noqa: F401, PLC0415 (TensorBoard is optional)
    except ImportError:
        warnings.warn(
            "TensorBoard is not installed (pip install tensorboard); training "
            "runs without the TensorBoard callback.",
            stacklevel=3,
        )
        return False
    return True


def build_callbacks(
    run_dir, evaluation_callback=None, monitor="val_AP50", tensorboard=True, train_source=None
):
    """The callbacks of a training run, in the order they must run.

    Temporary files a killed run left in the folder are removed here (chief). The
    evaluation callback comes first, so that the metrics it adds to the
    epoch logs reach the best checkpoint, the logs and TensorBoard. The backup
    comes last, after the checkpoints of the same epoch are on disk. Workers
    other than the chief keep only their backup and the NaN guard.

    Args:
        run_dir: a ``RunDir`` or the output folder.
        evaluation_callback: e.g. ``cfsam_keras.evaluation.EvaluationCallback``
            (adds ``val_AP``, ``val_AP50``, ... to the logs), or ``None``.
        monitor: the log key that picks ``best.keras`` (higher is better).
        tensorboard: add the ``TensorBoard`` callback.
        train_source: the training source, named by `RequireFullEpochs` (first of
            the callbacks) when the data runs out.

    Returns:
        A list of ``keras.callbacks.Callback``.
    """
    if not isinstance(run_dir, RunDir):
        run_dir = RunDir(str(run_dir))
    chief = is_chief()
    if chief:  # what a killed run left (its next start is now)
        remove_temporary_files(run_dir.root)
    callbacks = [RequireFullEpochs(train_source)]
    if evaluation_callback is not None:
        callbacks.append(evaluation_callback)
    callbacks.append(LearningRateLogger())
    callbacks.append(TerminateOnNaNWithAdvice(checkpoint_hint=run_dir.last_checkpoint))
    if chief:
        callbacks.append(AtomicModelCheckpoint(run_dir.last_checkpoint))
        if evaluation_callback is not None:
            callbacks.append(
                AtomicModelCheckpoint(
                    run_dir.best_checkpoint, monitor=monitor, mode="max", save_best_only=True
                )
            )
        callbacks.append(keras.callbacks.CSVLogger(run_dir.csv_log, append=True))
        callbacks.append(HistoryLogger(run_dir.history))
        if tensorboard and _tensorboard_installed():
            callbacks.append(keras.callbacks.TensorBoard(run_dir.tensorboard, update_freq="epoch"))
    trim = functools.partial(trim_csv_history, run_dir.csv_log) if chief else None
    callbacks.append(ResumableBackup(run_dir.backup, on_restore=trim))
    return callbacks
