"""The recipes and the command line run TensorFlow with its pooled (BFC) CPU allocator;
a ``TF_CPU_ALLOCATOR_USE_BFC`` the user set stays, and importing the library changes
nothing. (Only the pooled allocator keeps statistics, so
``tf.config.experimental.get_memory_info`` tells which one a process runs.)"""

import os
import subprocess
import sys

import pytest

from cfsam_keras.runtime import POOLED_CPU_ALLOCATOR

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_WHICH = """
import tensorflow as tf
tf.ones((64, 64)) + 1
try:
    tf.config.experimental.get_memory_info("CPU:0")
    print("pooled")
except ValueError:
    print("malloc")
"""
_STARTS = {
    "recipe": f"import sys; sys.path.insert(0, {os.path.join(REPO, 'recipes')!r}); "
    "import backend_flag",
    "command line": "from cfsam_keras.cli.common import load_runtime; load_runtime()",
    "library": "import cfsam_keras",
}


def _allocator(start, value):
    env = {k: v for k, v in os.environ.items() if k != POOLED_CPU_ALLOCATOR[0]}
    if value is not None:
        env[POOLED_CPU_ALLOCATOR[0]] = value
    result = subprocess.run(
        [sys.executable, "-c", _STARTS[start] + "\n" + _WHICH],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.split()[-1]


@pytest.mark.parametrize(
    "start, value, expected",
    [
        ("recipe", None, "pooled"),
        ("command line", None, "pooled"),
        ("recipe", "false", "malloc"),
        ("library", None, "malloc"),
    ],
    ids=["recipe", "command line", "user's choice stays", "library leaves it"],
)
def test_which_allocator_a_process_runs(start, value, expected):
    assert _allocator(start, value) == expected
