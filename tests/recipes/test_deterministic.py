"""``--deterministic``: what it sets up in a recipe's process, and two runs of the demo
with it ending with the same weights."""

import os
import subprocess
import sys

import pytest
from recipe_helpers import DEMO
from recipe_helpers import RECIPES
from recipe_helpers import REPO
from recipe_helpers import TINY
from recipe_helpers import backup_arrays
from recipe_helpers import subprocess_env
from recipe_helpers import write_tiny_dataset

_RUNTIME = """
import sys
sys.path.insert(0, {recipes!r})
import common, demo
args = common.parse_args(demo.parser(), ["--out", "unused"] + sys.argv[1:])
common.start_runtime(args)
import tensorflow as tf
from tensorflow.python.framework.config import is_op_determinism_enabled
print(tf.config.threading.get_inter_op_parallelism_threads(), is_op_determinism_enabled())
"""


@pytest.mark.parametrize("flags, expected", [([], "0 False"), (["--deterministic"], "1 True")])
def test_the_flag_runs_ops_one_at_a_time_and_deterministically(flags, expected):
    result = subprocess.run(
        [sys.executable, "-c", _RUNTIME.format(recipes=RECIPES), *flags],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[-1] == expected


def test_too_late_is_one_line():
    import tensorflow as tf
    from tensorflow.python.framework.config import is_op_determinism_enabled

    from cfsam_keras.training import make_deterministic

    tf.ones(1)  # TensorFlow's runtime has started
    with pytest.raises(ValueError, match="must be set before TensorFlow's first op"):
        make_deterministic()
    assert not is_op_determinism_enabled()


@pytest.mark.slow
def test_two_runs_of_the_demo_end_with_the_same_weights(tmp_path):
    """Training, evaluation and the report run under it (op determinism refuses the ops
    it cannot make deterministic), and the two runs agree to the bit."""
    shapes = write_tiny_dataset(tmp_path / "shapes")
    outs = []
    for name in ("first", "second"):
        out = str(tmp_path / name)
        result = subprocess.run(
            [sys.executable, DEMO, "--out", out, "--data-dir", shapes, *TINY]
            + ["--epochs", "2", "--steps-per-epoch", "3", "--eval-every", "2"]
            + ["--deterministic"],
            capture_output=True,
            text=True,
            env=subprocess_env(),
            cwd=REPO,
            timeout=600,
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        outs.append(out)
    histories = [open(os.path.join(out, "history.jsonl")).read() for out in outs]
    assert "val_AP50" in histories[0] and histories[0] == histories[1]
    first, second = (backup_arrays(os.path.join(out, "backup", "epoch-00002")) for out in outs)
    assert first.keys() == second.keys()
    assert all((first[k] == second[k]).all() for k in first)


def test_refused_under_jax_in_one_line():
    code = (
        "from cfsam_keras.training import make_deterministic\n"
        "try:\n    make_deterministic()\nexcept ValueError as e:\n    print(e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=subprocess_env(KERAS_BACKEND="jax"),
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[-1] == (
        "deterministic training is set up for the TensorFlow backend, not jax"
    )
