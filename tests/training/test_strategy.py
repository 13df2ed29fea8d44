import json

import keras
import pytest

from cfsam_keras.training import get_strategy
from cfsam_keras.training import is_chief
from cfsam_keras.training import set_mixed_precision
from cfsam_keras.training import task_info


def test_auto_on_a_cpu_is_the_default_strategy_and_one_device_is_explicit():
    import tensorflow as tf

    default = tf.distribute.get_strategy()
    strategy = get_strategy("auto")
    assert strategy is default and not tf.distribute.has_strategy()
    assert strategy.num_replicas_in_sync == 1
    assert isinstance(get_strategy("one_device"), tf.distribute.OneDeviceStrategy)


def test_unknown_strategy_and_missing_tf_config_are_clear(monkeypatch):
    with pytest.raises(ValueError, match="Unknown strategy 'gpu'"):
        get_strategy("gpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        get_strategy("multi_worker")


@pytest.mark.parametrize(
    "config, expected",
    [
        (None, ("chief", 0)),
        (
            {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}},
            ("chief", 0),
        ),
        (
            {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}},
            ("worker", 1),
        ),
        (
            {
                "cluster": {"chief": ["c:0"], "worker": ["a:1"]},
                "task": {"type": "worker", "index": 0},
            },
            ("worker", 0),
        ),
    ],
)
def test_task_info_reads_tf_config(monkeypatch, config, expected):
    if config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert task_info() == expected
    assert is_chief() == (expected[0] == "chief")


def test_mixed_precision_on_cpu_is_bfloat16():
    try:
        assert set_mixed_precision(True, get_strategy("one_device")) == "mixed_bfloat16"
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        assert set_mixed_precision(False, get_strategy("one_device")) == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_cpu_bfloat16_instructions_are_read_from_cpuinfo(tmp_path):
    from cfsam_keras.training.strategy import cpu_computes_bfloat16

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n")
    assert cpu_computes_bfloat16(str(cpuinfo))
    # A flag named on another line than "flags" does not count.
    cpuinfo.write_text("flags\t\t: fpu avx2 avx512f avx512_vnni\nbugs\t: avx512_bf16\n")
    assert not cpu_computes_bfloat16(str(cpuinfo))
    cpuinfo.write_text("flags\t\t: fpu amx_bf16 amx_tile\n")
    assert cpu_computes_bfloat16(str(cpuinfo))
    assert not cpu_computes_bfloat16(str(tmp_path / "absent"))


@pytest.mark.parametrize("native, expected", [(True, "mixed_bfloat16"), (False, "float32")])
def test_mixed_precision_none_follows_the_cpu(monkeypatch, native, expected):
    from cfsam_keras.training import strategy as strategy_module

    monkeypatch.setattr(strategy_module, "cpu_computes_bfloat16", lambda: native)
    try:
        assert set_mixed_precision(None, get_strategy("one_device")) == expected
        assert keras.mixed_precision.global_policy().name == expected
        # An explicit choice wins over the hardware's.
        assert set_mixed_precision(not native, get_strategy("one_device")) != expected
    finally:
        keras.mixed_precision.set_global_policy("float32")
