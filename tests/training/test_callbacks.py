import json
import os

import keras
import numpy as np
import pytest

from cfsam_keras.training import AtomicModelCheckpoint
from cfsam_keras.training import ResumableBackup
from cfsam_keras.training import StopAtStep
from cfsam_keras.training import TrainingDivergedError
from cfsam_keras.training import build_callbacks
from cfsam_keras.training import read_history


def _tiny_model(lr=0.01):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(lr, momentum=0.9), loss="mse")
    return model


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype("float32")
    return x, x.sum(axis=1, keepdims=True)


class _StopAt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt  # stands in for a kill between epochs


def test_resumable_backup_restores_weights_optimizer_and_epoch(tmp_path):
    x, y = _data()
    model = _tiny_model()
    backup = ResumableBackup(str(tmp_path / "backup"))
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=4, batch_size=4, verbose=0, callbacks=[backup, _StopAt(2)])
    saved = [w.numpy() for w in model.weights]
    iterations = int(model.optimizer.iterations.numpy())
    assert sorted(os.listdir(tmp_path / "backup")) == ["epoch-00001", "epoch-00002"]

    fresh = _tiny_model()
    history = fresh.fit(
        x,
        y,
        epochs=4,
        batch_size=4,
        verbose=0,
        callbacks=[ResumableBackup(str(tmp_path / "backup"))],
    )
    assert history.epoch == [2, 3]  # only the missing epochs run
    assert iterations == 8
    # The optimizer state came back too: its step count went on from 8.
    assert int(fresh.optimizer.iterations.numpy()) == 16
    assert not np.allclose(fresh.get_weights()[0], saved[0])


def test_resumable_backup_falls_back_to_previous_when_newest_is_corrupt(tmp_path):
    x, y = _data()
    model = _tiny_model()
    model.fit(x, y, epochs=2, batch_size=4, verbose=0, callbacks=[ResumableBackup(str(tmp_path))])
    with open(tmp_path / "epoch-00002" / "backup.keras", "wb") as f:
        f.write(b"garbage")
    fresh = _tiny_model()
    backup = ResumableBackup(str(tmp_path))
    fresh.fit(x, y, epochs=2, batch_size=4, verbose=0, callbacks=[backup])
    assert backup.restored_epoch == 1


def test_atomic_checkpoint_best_only_skips_epochs_without_metric(tmp_path):
    x, y = _data()
    model = _tiny_model()

    class FakeMetric(keras.callbacks.Callback):
        values = {0: 0.3, 2: 0.2}

        def on_epoch_end(self, epoch, logs=None):
            if epoch in self.values:
                logs["val_AP50"] = self.values[epoch]

    path = str(tmp_path / "best.keras")
    best = AtomicModelCheckpoint(path, monitor="val_AP50", mode="max", save_best_only=True)
    model.fit(x, y, epochs=3, batch_size=4, verbose=0, callbacks=[FakeMetric(), best])
    with open(path + ".json") as f:
        assert json.load(f) == {"monitor": "val_AP50", "best": 0.3, "epoch": 1}
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]
    keras.saving.load_model(path)

    # A resumed run reads the best value back: a worse metric does not replace it.
    model2 = _tiny_model()
    best2 = AtomicModelCheckpoint(path, monitor="val_AP50", mode="max", save_best_only=True)
    FakeMetric.values = {0: 0.25}
    before = os.path.getmtime(path)
    model2.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[FakeMetric(), best2])
    assert os.path.getmtime(path) == before


def test_nan_guard_raises_with_advice_before_epoch_end(tmp_path):
    x, y = _data()
    model = _tiny_model(lr=1e30)
    callbacks = build_callbacks(str(tmp_path), tensorboard=False)
    model.fit(
        x[:4], y[:4], epochs=1, batch_size=4, verbose=0, callbacks=callbacks
    )  # one good epoch
    good = keras.saving.load_model(str(tmp_path / "checkpoints" / "last.keras")).get_weights()
    with pytest.raises(TrainingDivergedError, match="Lower the learning rate"):
        model.fit(
            x,
            y * 1e20,
            epochs=3,
            batch_size=4,
            verbose=0,
            callbacks=build_callbacks(str(tmp_path), tensorboard=False),
        )
    after = keras.saving.load_model(str(tmp_path / "checkpoints" / "last.keras")).get_weights()
    for a, b in zip(good, after):
        np.testing.assert_array_equal(a, b)
        assert np.isfinite(a).all()


def test_callbacks_write_history_csv_and_tensorboard(tmp_path):
    x, y = _data()
    model = _tiny_model()
    model.fit(x, y, epochs=2, batch_size=4, verbose=0, callbacks=build_callbacks(str(tmp_path)))
    rows = read_history(str(tmp_path / "history.jsonl"))
    assert [r["epoch"] for r in rows] == [1, 2] and "learning_rate" in rows[0]
    assert (tmp_path / "history.csv").exists()
    assert os.listdir(tmp_path / "logs")


def test_stop_at_step_ends_inside_the_last_epoch():
    x, y = _data()
    model = _tiny_model()
    history = model.fit(x, y, batch_size=4, epochs=3, callbacks=[StopAtStep(6)], verbose=0)
    # 4 steps an epoch: the second epoch stops after its second step.
    assert int(model.optimizer.iterations) == 6
    assert len(history.history["loss"]) == 2


_FULL_DISK_FIT = """
import resource, signal, sys
import keras, numpy as np
from cfsam_keras.training import ResumableBackup

model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(64), keras.layers.Dense(1)])
model.compile(keras.optimizers.SGD(0.01, momentum=0.9), loss="mse")
x = np.ones((8, 4), "float32")
# Every file write past 4 KB now fails as on a full disk (EFBIG instead of ENOSPC).
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
try:
    model.fit(x, x[:, :1], epochs=1, verbose=0, callbacks=[ResumableBackup(sys.argv[1])])
except OSError as e:
    print(f"error: {e.strerror or e}")
    sys.exit(2)
"""


def test_full_disk_during_a_backup_is_an_error_not_a_crash(tmp_path):
    import subprocess
    import sys

    backup = tmp_path / "backup"
    ran = subprocess.run(
        [sys.executable, "-c", _FULL_DISK_FIT, str(backup)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 2, (ran.returncode, ran.stderr[-3000:])
    assert ran.stdout.strip() == "error: File too large"
    assert "h5py" not in ran.stderr
    assert not list(backup.glob("epoch-*"))  # no half-written backup was published
