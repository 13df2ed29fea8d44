"""Fault injection: SIGKILL just before or just after any rename of a checkpoint, the
config or a backup. Every run resumes, every file on disk loads, no temporary file
outlives the next start, and history.csv has one row per epoch."""

import csv
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

EPOCHS = 5

_CHILD = """
import os, signal, sys
fault = int(os.environ.get("FAULT_AT", "0"))
when = os.environ.get("FAULT_WHEN", "after")
real_replace = os.replace
calls = [0]

def replace(src, dst):
    calls[0] += 1
    if calls[0] == fault and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst)
    if calls[0] == fault and when == "after":
        os.kill(os.getpid(), signal.SIGKILL)

os.replace = replace
import keras
import numpy as np
from cfsam_keras.training import build_callbacks
from cfsam_keras.training.callbacks import atomic_write_json

out = sys.argv[1]
atomic_write_json(dict(run="kill test"), os.path.join(out, "config.json"))

class FakeEvaluation(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        logs["val_AP50"] = float((epoch * 7919) % 5)  # improves on some epochs only

keras.utils.set_random_seed(0)
x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(1)])
model.compile(keras.optimizers.SGD(0.01, momentum=0.9), loss="mse")
model.fit(x, x.sum(1, keepdims=True), epochs=EPOCHS, batch_size=8, verbose=0,
          callbacks=build_callbacks(out, FakeEvaluation(), tensorboard=False))
print("finished")
""".replace("EPOCHS", str(EPOCHS))


def _run(out, fault=0, when="after"):
    env = dict(os.environ, FAULT_AT=str(fault), FAULT_WHEN=when, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CHILD), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def _temporary_files(out):
    return [
        os.path.join(root, name)
        for root, dirs, files in os.walk(out)
        for name in dirs + files
        if name.startswith(".tmp-")
    ]


def _check_loadable(out):
    import keras

    for name in ("last.keras", "best.keras"):
        path = os.path.join(out, "checkpoints", name)
        if os.path.exists(path):
            keras.saving.load_model(path)  # raises if half-written


@pytest.mark.slow
def test_twenty_seeded_kills_at_renames(tmp_path):
    rng = np.random.default_rng(2026)
    trials, runs = 0, 0
    while trials < 20:
        out = tmp_path / f"run{runs}"
        runs += 1
        finished = False
        while not finished and trials < 20:
            when = ["before", "after"][int(rng.integers(2))]
            # About 4 renames per epoch: last.keras, best.keras (+ .json), the backup.
            ran = _run(out, fault=int(rng.integers(1, 4 * EPOCHS)), when=when)
            finished = ran.returncode == 0
            if not finished:
                assert ran.returncode == -9, ran.stderr[-2000:]
                trials += 1
            _check_loadable(out)
        ran = _run(out)  # the next start, without a fault, finishes the run
        assert ran.returncode == 0 and "finished" in ran.stdout, ran.stderr[-2000:]
        assert not _temporary_files(out), _temporary_files(out)
        _check_loadable(out)
        with open(out / "history.csv") as f:
            epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
        assert epochs == list(range(EPOCHS)), epochs
    assert trials == 20
