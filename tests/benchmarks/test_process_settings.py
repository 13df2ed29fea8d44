"""``benchmarks/process_settings.py``: each child runs the settings it is named for; the
summary and the table."""

import process_settings
import pytest

TINY = ["--quick", "--images", "4", "--steps", "1", "--warmup-steps", "1"]


@pytest.mark.slow
def test_a_child_runs_the_settings_it_is_named_for():
    # The deterministic one: the pooled allocator and both switches of make_deterministic
    # (without them a recipe process has neither: tests/recipes/test_deterministic.py).
    import tensorflow as tf

    result = process_settings.run_child("pooled, deterministic", TINY)
    assert result["pooled"] is True
    assert result["strategy"] == type(tf.distribute.get_strategy()).__name__  # the demo's
    assert result["inter_op_threads"] == 1 and result["op_determinism"] is True
    assert len(result["weights_sha256"]) == 64
    assert result["wall_s_per_step"] > 0 and result["user_cpu_s_per_step"] > 0
    assert result["system_cpu_s_per_step"] >= 0


def test_a_failing_child_is_one_line():
    with pytest.raises(RuntimeError, match=r"the malloc \(TensorFlow's default\) child failed"):
        process_settings.run_child("malloc (TensorFlow's default)", ["--steps", "0"], timeout=120)


def test_summary_and_table():
    def run(wall, user, system, pooled, weights="a"):
        return dict(
            wall_s_per_step=wall,
            user_cpu_s_per_step=user,
            system_cpu_s_per_step=system,
            pooled=pooled,
            weights_sha256=weights,
        )

    malloc, pooled, _, deterministic = process_settings.SETTINGS
    runs = {
        malloc: [run(1.2, 1.0, 1.0, False), run(1.4, 1.2, 0.8, False), run(1.0, 1.0, 1.0, False)],
        pooled: [run(0.6, 1.2, 0.2, True, "b"), run(0.7, 1.0, 0.2, True), run(0.9, 1.1, 0.3, True)],
        deterministic: [run(0.8, 1.0, 0.2, True, "c"), run(0.8, 1.0, 0.2, True, "c")],
        "one child": [run(0.9, 1.0, 0.2, True)],
    }
    rows = process_settings.summarize(runs)
    assert rows[malloc]["wall_s_per_step"] == 1.2 and rows[malloc]["vs_default"] == 1.0
    assert rows[pooled]["vs_default"] == pytest.approx(0.7 / 1.2)
    assert rows[pooled]["system_share"] == pytest.approx(0.2 / 1.3)
    assert rows[pooled]["pooled"] and not rows[malloc]["pooled"]
    assert rows[malloc]["same_weights"] and rows[deterministic]["same_weights"]
    assert not rows[pooled]["same_weights"] and rows["one child"]["same_weights"] is None
    record = dict(
        settings=dict(flags=[], images=4, rounds=3, steps=2, warmup_steps=1),
        machine=dict(cores=2, cpu="x", load_average_1min_before=0.5, load_average_1min_after=1.0),
        rows=rows,
        command="python benchmarks/process_settings.py",
    )
    text = process_settings.table(record)
    assert f"| {pooled} | yes | 0.700 | 1.10 | 0.20 | 15% | 0.58 | no |" in text
    assert f"| {malloc} | no | 1.200 | 1.00 | 1.00 | 50% | 1.00 | yes |" in text
    assert f"| {deterministic} | yes | 0.800 | 1.00 | 0.20 | 17% | 0.67 | yes |" in text
    assert "| one child | yes | 0.900 | 1.00 | 0.20 | 17% | 0.75 | one round only |" in text
