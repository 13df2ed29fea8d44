"""``benchmarks/cpu_allocator.py``: each child runs the allocator it is named for; the table."""

import cpu_allocator
import pytest


@pytest.mark.slow
def test_a_child_runs_the_allocator_it_is_named_for():
    result = cpu_allocator.run_child(
        "pooled (BFC)", ["--quick", "--images", "4", "--steps", "1", "--warmup-steps", "1"]
    )
    assert result["pooled"] is True
    assert result["wall_s_per_step"] > 0 and result["user_cpu_s_per_step"] > 0
    assert result["system_cpu_s_per_step"] >= 0


def test_a_failing_child_is_one_line():
    with pytest.raises(RuntimeError, match=r"the malloc \(TensorFlow's default\) child failed"):
        cpu_allocator.run_child("malloc (TensorFlow's default)", ["--steps", "0"], timeout=120)


def test_summary_and_table():
    def run(wall, user, system, pooled):
        return dict(
            wall_s_per_step=wall,
            user_cpu_s_per_step=user,
            system_cpu_s_per_step=system,
            pooled=pooled,
        )

    malloc, pooled = cpu_allocator.ALLOCATORS
    runs = {
        malloc: [run(1.2, 1.0, 1.0, False), run(1.4, 1.2, 0.8, False), run(1.0, 1.0, 1.0, False)],
        pooled: [run(0.6, 1.2, 0.2, True), run(0.7, 1.0, 0.2, True), run(0.9, 1.1, 0.3, True)],
    }
    rows = cpu_allocator.summarize(runs)
    assert rows[malloc]["wall_s_per_step"] == 1.2 and rows[malloc]["vs_default"] == 1.0
    assert rows[pooled]["vs_default"] == pytest.approx(0.7 / 1.2)
    assert rows[pooled]["system_share"] == pytest.approx(0.2 / 1.3)
    assert rows[pooled]["pooled"] and not rows[malloc]["pooled"]
    record = dict(
        settings=dict(flags=[], images=4, rounds=3, steps=2, warmup_steps=1),
        machine=dict(cores=2, cpu="x", load_average_1min_before=0.5, load_average_1min_after=1.0),
        rows=rows,
        command="python benchmarks/cpu_allocator.py",
    )
    text = cpu_allocator.table(record)
    assert f"| {pooled} | yes | 0.700 | 1.10 | 0.20 | 15% | 0.58 |" in text
    assert f"| {malloc} | no | 1.200 | 1.00 | 1.00 | 50% | 1.00 |" in text
