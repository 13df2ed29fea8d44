"""``--deterministic``: what it sets up in a recipe's process, and its refusals. (The demo
end to end under it: tests/recipes/test_demo.py's resumed run; same weights from every
run: benchmarks/process_settings.py's table.)"""

import subprocess
import sys

import pytest
from recipe_helpers import RECIPES
from recipe_helpers import REPO
from recipe_helpers import subprocess_env

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
