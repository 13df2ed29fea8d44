"""The run folder: durable, readable files; no leftovers; a resume never clobbers a run."""

import json
import os
import stat

import keras
import numpy as np
import pytest
from recipe_helpers import RECIPES  # noqa: F401 (puts recipes/ on sys.path)

from cfsam_keras.training import ResumableBackup
from cfsam_keras.training import atomic_save_model
from cfsam_keras.training import build_callbacks
from cfsam_keras.training import remove_temporary_files
from cfsam_keras.training.callbacks import atomic_write_json


def _tiny_model(width=3):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(width), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), loss="mse")
    return model


def _data():
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    return x, x.sum(axis=1, keepdims=True)


def test_files_are_flushed_before_the_rename_and_get_the_umask_mode(tmp_path, monkeypatch):
    import cfsam_keras.training.callbacks as callbacks

    order = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(callbacks.os, "fsync", lambda fd: order.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(
        callbacks.os, "replace", lambda a, b: order.append("replace") or real_replace(a, b)
    )
    old = os.umask(0o022)
    try:
        atomic_write_json({"a": 1}, str(tmp_path / "config.json"))
        atomic_save_model(_tiny_model(), str(tmp_path / "last.keras"))
    finally:
        os.umask(old)
    for name in ("config.json", "last.keras"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644, name
    # Each file: its data to disk, the rename, then the folder entry to disk.
    assert order == ["fsync", "replace", "fsync"] * 2
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]


def test_leftover_temporary_files_are_removed(tmp_path):
    for path in ("checkpoints/.tmp-abc.keras", "backup/.tmp-xyz/backup.weights.h5", ".tmp-1.json"):
        os.makedirs(os.path.dirname(tmp_path / path), exist_ok=True)
        (tmp_path / path).write_bytes(b"partial")
    (tmp_path / "checkpoints" / "last.keras").write_bytes(b"kept")
    remove_temporary_files(str(tmp_path))
    left = sorted(
        os.path.relpath(os.path.join(r, n), tmp_path)
        for r, d, f in os.walk(tmp_path)
        for n in f + d
    )
    assert left == ["backup", "checkpoints", os.path.join("checkpoints", "last.keras")]


def test_backup_of_another_model_is_a_short_clear_error(tmp_path):
    x, y = _data()
    _tiny_model(3).fit(
        x, y, epochs=1, verbose=0, callbacks=[ResumableBackup(str(tmp_path / "backup"))]
    )
    other = _tiny_model(5)
    with pytest.raises(OSError) as info:
        other.fit(x, y, epochs=2, verbose=0, callbacks=[ResumableBackup(str(tmp_path / "backup"))])
    message = str(info.value)
    assert "could be loaded into this model" in message and "epoch-00001" in message
    assert "\n" not in message and len(message) < 600


def test_a_finished_run_says_so(tmp_path, capsys):
    x, y = _data()
    callbacks = [ResumableBackup(str(tmp_path / "run" / "backup"))]
    _tiny_model().fit(x, y, epochs=2, verbose=0, callbacks=callbacks)
    again = _tiny_model().fit(
        x, y, epochs=2, verbose=0, callbacks=[ResumableBackup(str(tmp_path / "run" / "backup"))]
    )
    assert again.epoch == []
    assert "this run has finished its 2 epochs already" in capsys.readouterr().out


def test_resuming_with_other_settings_is_refused_before_anything_is_written(tmp_path):
    import common
    import demo

    out = str(tmp_path / "run")
    args = common.parse_args(demo.parser(), ["--out", out, "--attention", "cfsam"])
    common.setup(args)
    with open(os.path.join(out, "config.json")) as f:
        written = json.load(f)
    (tmp_path / "run" / ".tmp-2.json").write_text("{")
    args = common.parse_args(demo.parser(), ["--out", out, "--attention", "se", "--epochs", "3"])
    with pytest.raises(
        ValueError, match=r"holds a run with other settings \(attention 'cfsam' -> 'se'\)"
    ):
        common.setup(args)
    with open(os.path.join(out, "config.json")) as f:
        assert json.load(f) == written
    # The same flags (a longer schedule is fine) resume, and the leftovers go.
    args = common.parse_args(demo.parser(), ["--out", out, "--attention", "cfsam", "--epochs", "3"])
    _, run_dir = common.setup(args)
    build_callbacks(run_dir, tensorboard=False)
    assert not (tmp_path / "run" / ".tmp-2.json").exists()
