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

# One process imports TensorFlow once (before running any op), then forks one child per
# start of the run: ``<out> <fault> <when>`` per input line; it prints each child's
# exit status. A child kills itself just before or after its ``fault``-th rename.
_RUNNER = """
import os, signal, sys
import keras
import numpy as np
from cfsam_keras.training import build_callbacks
from cfsam_keras.training.callbacks import atomic_write_json


class FakeEvaluation(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        logs["val_AP50"] = float((epoch * 7919) % 5)  # improves on some epochs only


def train(out, fault, when):
    real_replace, calls = os.replace, [0]

    def replace(src, dst):
        calls[0] += 1
        if calls[0] == fault and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst)
        if calls[0] == fault and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace
    atomic_write_json(dict(run="kill test"), os.path.join(out, "config.json"))
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9), loss="mse")
    model.fit(x, x.sum(1, keepdims=True), epochs=EPOCHS, batch_size=8, verbose=0,
              callbacks=build_callbacks(out, FakeEvaluation(), tensorboard=False))


for line in sys.stdin:
    out, fault, when = line.split()
    pid = os.fork()
    if pid == 0:
        try:
            train(out, int(fault), when)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    print("status", os.waitstatus_to_exitcode(status), flush=True)
""".replace("EPOCHS", str(EPOCHS))


class _Runner:
    """The forking runner: ``start(out, fault, when)`` -> the child's exit code."""

    def __init__(self):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        self.process = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(_RUNNER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def start(self, out, fault=0, when="after"):
        self.process.stdin.write(f"{out} {fault} {when}\n")
        self.process.stdin.flush()
        while True:
            line = self.process.stdout.readline()
            assert line, "the runner died"
            if line.startswith("status "):
                return int(line.split()[1])

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


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
    runner = _Runner()
    trials, runs = 0, 0
    try:
        while trials < 20:
            out = tmp_path / f"run{runs}"
            runs += 1
            finished = False
            while not finished and trials < 20:
                when = ["before", "after"][int(rng.integers(2))]
                # About 4 renames per epoch: last.keras, best.keras (+ .json), the backup.
                code = runner.start(out, fault=int(rng.integers(1, 4 * EPOCHS)), when=when)
                finished = code == 0
                if not finished:
                    assert code == -9, code
                    trials += 1
                _check_loadable(out)
            assert runner.start(out) == 0  # the next start, without a fault, finishes
            assert not _temporary_files(out), _temporary_files(out)
            _check_loadable(out)
            with open(out / "history.csv") as f:
                epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
            assert epochs == list(range(EPOCHS)), epochs
    finally:
        runner.close()
    assert trials == 20
