"""Callbacks for ``model.fit``: atomic checkpoints, resumable backups, NaN guard."""

import glob
import json
import math
import os
import shutil
import tempfile
import zipfile

import keras
import numpy as np

from cfsam_keras.data import undecodable_images
from cfsam_keras.validation import positive_int


class TrainingDivergedError(RuntimeError):
    """Raised when the training loss becomes NaN or infinite."""


#: The prefix of every temporary file or folder a run writes (removed at its next start).
TMP_PREFIX = ".tmp-"


def _umask_mode(mode):
    """``mode`` less the process umask, the mode ``open`` would have given."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def _fsync(path, contents=True):
    """Flushes a file or folder to the disk; a folder's files too with ``contents``."""
    paths = [path]
    if contents and os.path.isdir(path):
        paths = [os.path.join(path, n) for n in os.listdir(path)] + [path]
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def publish(tmp, filepath):
    """Moves a finished temporary file or folder to ``filepath``, durably.

    Its data reach the disk before the rename and the rename before return (a power
    loss leaves the old file or the new one, never an empty one), and it gets the
    permissions a plain ``open`` would have given (``mkstemp`` makes files 0600).
    """
    os.chmod(tmp, _umask_mode(0o777 if os.path.isdir(tmp) else 0o666))
    _fsync(tmp)
    os.replace(tmp, filepath)
    _fsync(os.path.dirname(os.path.abspath(filepath)), contents=False)


def atomic_save_model(model, filepath):
    """Saves ``model`` as ``.keras`` so that ``filepath`` is never half-written.

    The model is written to a temporary file in the same directory, then moved
    over ``filepath`` with `publish` (``os.replace``, atomic on POSIX and Windows).
    """
    directory = os.path.dirname(os.path.abspath(filepath))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=".keras", dir=directory)
    os.close(fd)
    try:
        model.save(tmp, overwrite=True)
        publish(tmp, filepath)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_json(data, filepath):
    """Writes ``data`` as JSON to ``filepath`` through a temporary file."""
    directory = os.path.dirname(os.path.abspath(filepath))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
        publish(tmp, filepath)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def remove_temporary_files(folder):
    """Removes what a killed run left: ``.tmp-*`` files and folders under ``folder``."""
    for root, dirs, files in os.walk(folder):
        for name in [d for d in dirs if d.startswith(TMP_PREFIX)]:
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
            dirs.remove(name)
        for name in files:
            if name.startswith(TMP_PREFIX):
                os.remove(os.path.join(root, name))


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """``ModelCheckpoint`` whose ``.keras`` files are never half-written.

    Differences from Keras' callback:

    - the model is saved to a temporary file and moved in place (``os.replace``),
      so a process killed while saving leaves the previous checkpoint intact;
    - with ``save_best_only=True``, an epoch whose logs lack ``monitor`` (the
      evaluation callback runs only every N epochs) saves nothing, instead of
      overwriting the best model;
    - with ``save_best_only=True`` the best value is kept in
      ``<filepath>.json`` and read back when training resumes.

    Args:
        filepath: path of the ``.keras`` file (may hold ``{epoch}`` fields).
        monitor: the log key to compare with ``save_best_only``.
        mode: ``"max"``, ``"min"`` or ``"auto"``.
        save_best_only: keep only the best model by ``monitor``.
        verbose: 1 to print a line when the model is saved.

    Example:

    >>> best = AtomicModelCheckpoint(
    ...     "run/checkpoints/best.keras", monitor="val_AP50", mode="max",
    ...     save_best_only=True)
    """

    def __init__(self, filepath, monitor="val_loss", mode="auto", save_best_only=False, verbose=0):
        super().__init__(
            filepath,
            monitor=monitor,
            mode=mode,
            save_best_only=save_best_only,
            verbose=verbose,
        )
        self._best_file = self.filepath + ".json"

    def on_train_begin(self, logs=None):
        if self.save_best_only and os.path.exists(self._best_file):
            with open(self._best_file) as f:
                self.best = json.load(f)["best"]

    def _should_save_model(self, epoch, batch, logs, filepath):
        if self.save_best_only:
            current = (logs or {}).get(self.monitor)
            if current is None or not math.isfinite(float(np.asarray(current))):
                return False
        return super()._should_save_model(epoch, batch, logs, filepath)

    def _save_model(self, epoch, batch, logs):
        filepath = self._get_file_path(epoch, batch, logs)
        if not self._should_save_model(epoch, batch, logs, filepath):
            return
        atomic_save_model(self.model, filepath)
        if self.save_best_only:
            atomic_write_json(
                {"monitor": self.monitor, "best": float(self.best), "epoch": epoch + 1},
                self._best_file,
            )


BACKUP_FILE = "backup.keras"
_LEGACY_BACKUP_FILE = "backup.weights.h5"


def backup_file(folder):
    """The weights file of one ``epoch-NNNNN`` backup folder (this or an earlier version's)."""
    legacy = os.path.join(folder, _LEGACY_BACKUP_FILE)
    current = os.path.join(folder, BACKUP_FILE)
    return legacy if os.path.exists(legacy) and not os.path.exists(current) else current


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` with atomic backups; a killed run resumes exactly.

    Keras' callback overwrites ``latest.weights.h5`` and then its metadata in
    place: a kill during the write leaves a corrupt file, and a kill between
    the two leaves weights and epoch number out of step. Here each backup
    (``backup.keras``: the model with its optimizer state, and the epoch) is
    written to a temporary folder that is renamed to ``epoch-NNNNN`` in one atomic
    step. It is a ``.keras`` file, not Keras' ``.weights.h5``: h5py writing straight
    to a full disk crashes the process, while ``.keras`` is assembled in memory and
    a full disk is an ``OSError``. Backups of earlier versions
    (``backup.weights.h5``) still load.
    The newest complete backup is restored at the start of ``fit``; the two
    newest are kept, so even an unreadable one falls back to the previous
    epoch. Backups are kept after training (``delete_checkpoint=False``), so a
    finished run started again with the same folder trains no further epochs.

    Args:
        backup_dir: folder for the backups, used by nothing else.
        keep: how many backups to keep (at least 1).
        delete_checkpoint: delete the backups when training ends normally.
        on_restore: called with the number of epochs restored (0 without a
            backup) at the start of ``fit``, e.g. to drop log rows of epochs that
            will run again.

    Example:

    >>> backup = ResumableBackup("run/backup")
    """

    def __init__(self, backup_dir, keep=2, delete_checkpoint=False, on_restore=None):
        super().__init__(backup_dir, save_freq="epoch", delete_checkpoint=delete_checkpoint)
        if keep < 1:
            raise ValueError(f"`keep` must be >= 1, got {keep}.")
        self.keep = int(keep)
        self.on_restore = on_restore
        self.restored_epoch = 0

    def _backups(self):
        paths = glob.glob(os.path.join(self.backup_dir, "epoch-*"))
        return sorted(p for p in paths if os.path.isdir(p))

    def on_train_begin(self, logs=None):
        remove_temporary_files(self.backup_dir)
        self._load_model()
        if self.on_restore is not None:
            self.on_restore(self.restored_epoch)

    def _load_model(self):
        if not self.model.built:
            raise ValueError(
                "ResumableBackup needs a built model; call the model on a batch "
                "(or build it) before fit()."
            )
        errors = []
        for path in reversed(self._backups()):
            try:
                with open(os.path.join(path, "metadata.json")) as f:
                    metadata = json.load(f)
                if self.model.optimizer is not None and not self.model.optimizer.built:
                    self.model.optimizer.build(self.model.trainable_variables)
                self.model.load_weights(backup_file(path))
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
                # h5py's messages run to many lines; the first says what is wrong.
                first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
                errors.append(f"{os.path.basename(path)}: {first}")
                continue
            self.restored_epoch = int(metadata["epoch"])
            self.model._initial_epoch = self.restored_epoch
            epochs = (self.params or {}).get("epochs")
            if epochs is not None and self.restored_epoch >= epochs:
                print(
                    f"{os.path.dirname(self.backup_dir.rstrip(os.sep))}: this run has finished "
                    f"its {epochs} epochs already; nothing left to train",
                    flush=True,
                )
            return
        if errors:
            raise OSError(
                f"no backup in {self.backup_dir} could be loaded into this model (was it "
                f"written by a run with other settings?): {'; '.join(errors)}"
            )

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        final = os.path.join(self.backup_dir, f"epoch-{self._current_epoch:05d}")
        tmp = tempfile.mkdtemp(prefix=TMP_PREFIX, dir=self.backup_dir)
        try:
            self.model.save(os.path.join(tmp, BACKUP_FILE), overwrite=True)
            with open(os.path.join(tmp, "metadata.json"), "w") as f:
                json.dump({"epoch": self._current_epoch}, f)
            if os.path.exists(final):
                shutil.rmtree(final)
            publish(tmp, final)
        finally:
            if os.path.exists(tmp):
                shutil.rmtree(tmp)
        for old in self._backups()[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)


class TerminateOnNaNWithAdvice(keras.callbacks.Callback):
    """Stops training on a NaN or infinite loss, saying what to change.

    It raises ``TrainingDivergedError`` at once, inside the batch, so the epoch
    end is never reached: no checkpoint or backup is written from the bad
    weights and the last good ones stay on disk.

    Args:
        checkpoint_hint: where the last good checkpoint is (for the message).
    """

    def __init__(self, checkpoint_hint=None):
        super().__init__()
        self.checkpoint_hint = checkpoint_hint
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(np.asarray(loss))
        if not math.isfinite(loss):
            where = (
                f" The last good checkpoint is {self.checkpoint_hint}."
                if self.checkpoint_hint
                else ""
            )
            raise TrainingDivergedError(
                f"Training diverged: the loss became {loss} at epoch "
                f"{self._epoch + 1}, batch {batch + 1}. Lower the learning rate "
                f"(--lr), keep gradient clipping on (--clipnorm), or lengthen the "
                f"warm-up (--warmup-epochs).{where}"
            )


class DataRanOutError(ValueError):
    """Raised when an epoch got fewer batches than ``steps_per_epoch`` asked for."""


class RequireFullEpochs(keras.callbacks.Callback):
    """Fails the run when an epoch gets fewer batches than ``steps_per_epoch``.

    A repeated `train_pipeline` runs out only when a whole pass over the source gave
    no example (every image failed to decode); ``fit`` would then only warn and go
    on with empty epochs, saving checkpoints of an untrained model. Put it first
    among the callbacks, so that nothing is saved for such an epoch.

    Args:
        source: the training source; when given, the error names the images
            TensorFlow cannot decode (`cfsam_keras.data.undecodable_images`).
    """

    def __init__(self, source=None):
        super().__init__()
        self.source = source
        self._steps = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps += 1

    def on_epoch_end(self, epoch, logs=None):
        wanted = self.params.get("steps") if self.params else None
        if self.model.stop_training or not wanted or self._steps >= wanted:
            return
        message = (
            f"epoch {epoch + 1} got {self._steps} of {wanted} batches: the training data ran out"
        )
        if self.source is not None:
            bad = undecodable_images(self.source, limit=3)
            if bad:
                names = "; ".join(f"{name}: {error}" for name, error in bad)
                message += f" (TensorFlow cannot decode its images, e.g. {names})"
        raise DataRanOutError(message)


class StopAtStep(keras.callbacks.Callback):
    """Ends training once the optimizer has taken ``total_steps`` steps.

    A schedule stated in iterations (SSD's 120k) rarely fills whole epochs; with
    ``epochs = ceil(total_steps / steps_per_epoch)`` this stops inside the last
    one, and its epoch-end callbacks (checkpoints, backup) still run.

    Args:
        total_steps: optimizer steps of the whole run.
    """

    def __init__(self, total_steps):
        super().__init__()
        self.total_steps = positive_int(total_steps, "total_steps")

    def on_train_batch_end(self, batch, logs=None):
        if int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) >= self.total_steps:
            self.model.stop_training = True


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the optimizer's current learning rate to the epoch logs."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.model.optimizer is not None:
            logs["learning_rate"] = float(
                keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
            )


class HistoryLogger(keras.callbacks.Callback):
    """Appends each epoch's logs as one JSON line (all keys, also sparse ones).

    ``CSVLogger`` fixes its columns at the first epoch, so metrics that the
    evaluation callback adds only every N epochs can be lost there; this file
    keeps them all, and survives resuming (it is appended to).

    Args:
        filepath: the ``.jsonl`` file.
    """

    def __init__(self, filepath):
        super().__init__()
        self.filepath = filepath

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1}
        for key, value in (logs or {}).items():
            try:
                value = float(np.asarray(value))
            except (TypeError, ValueError):
                continue
            if math.isfinite(value):  # NaN marks "not evaluated this epoch"
                row[key] = value
        os.makedirs(os.path.dirname(os.path.abspath(self.filepath)), exist_ok=True)
        with open(self.filepath, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())


def trim_csv_history(filepath, epochs):
    """Keeps the header and the rows of the first ``epochs`` epochs of a ``CSVLogger`` file.

    A run killed after its CSV row but before its backup trains that epoch again;
    without this, the file would hold the epoch twice. A line cut short goes too.
    (A kill during this rewrite can lose rows of this file; history.jsonl keeps them.)
    """
    if not os.path.isfile(filepath):
        return
    with open(filepath, newline="") as f:
        lines = f.read().splitlines(keepends=True)
    if not lines:
        return
    kept = [lines[0]]
    for line in lines[1:]:
        first = line.split(",", 1)[0].strip()
        if line.endswith("\n") and first.isdigit() and int(first) < epochs:
            kept.append(line)
    if kept != lines:
        # In place, not by a rename: CSVLogger already holds the file open for appending.
        with open(filepath, "r+", newline="") as f:
            f.writelines(kept)
            f.truncate()
            f.flush()
            os.fsync(f.fileno())


def read_history(filepath):
    """Reads a ``HistoryLogger`` file: one dict per epoch; a later row for the
    same epoch (an epoch retrained after a kill) replaces the earlier one."""
    rows = {}
    if not os.path.exists(filepath):
        return []
    with open(filepath) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
            rows[int(row["epoch"])] = row
    return [rows[k] for k in sorted(rows)]
