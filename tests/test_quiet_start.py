"""``import cfsam_keras`` and the recipes start without TensorFlow's start-up lines on
stderr (CUDA probing, oneDNN and CPU-feature notices), whatever ``TF_CPP_MIN_LOG_LEVEL``
the user has. (The command line: ``tests/benchmarks/test_cli_help.py`` and the wheel test.)"""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What a recipe does before training: its start-up imports, then the strategy (the
# devices, and CUDA probing, are set up there), then TensorFlow ops.
_STRATEGY = f"""
import sys
sys.path.insert(0, {os.path.join(REPO, "recipes")!r})
import backend_flag
import tensorflow as tf
from cfsam_keras.runtime import start_up_lines_held_back
with start_up_lines_held_back():
    # One local worker; possible only before the devices are set up.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
print(int(tf.constant(1) + 1), strategy.num_replicas_in_sync)
"""


def _stderr(args, cwd):
    env = {
        k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_BACKEND")
    }
    result = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["-c", "import cfsam_keras, tensorflow; print(tensorflow.__version__)"],
        [os.path.join(REPO, "recipes", "ssd300.py"), "--help"],
        ["-c", _STRATEGY],
    ],
    ids=["import", "recipe", "strategy"],
)
def test_no_start_up_noise(args, tmp_path):
    assert _stderr(args, str(tmp_path)) == ""
