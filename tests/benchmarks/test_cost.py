import json
import math
import shlex

import cost
import harness
import keras
import pytest

from cfsam_keras.data import BUILTIN_CLASSES
from cfsam_keras.flops import count_flops
from cfsam_keras.layers import CFSAM


def test_conv2d_flops_matches_profiler():
    conv = keras.layers.Conv2D(24, 3, padding="same")
    assert count_flops(conv, [(1, 10, 12, 8)]) == cost.conv2d_flops(10, 12, 3, 8, 24)
    # By hand: 2 * 10 * 12 * 3 * 3 * 8 * 24 multiply-adds + 10 * 12 * 24 bias adds.
    assert cost.conv2d_flops(10, 12, 3, 8, 24) == 414720 + 2880


@pytest.mark.parametrize("kv_pool_size", [None, 2])
def test_cfsam_analytic_count_bounds_the_profiler(kv_pool_size):
    shapes = [(8, 8, 16), (4, 4, 32), (2, 2, 32)]
    layer = CFSAM(embed_dim=32, num_heads=4, kv_pool_size=kv_pool_size)
    counted = count_flops(lambda *xs: layer(list(xs), training=False), [(1,) + s for s in shapes])
    analytic = cost.cfsam_matmul_flops(shapes, embed_dim=32, kv_pool_size=kv_pool_size)
    assert analytic["total"] == sum(v for k, v in analytic.items() if k != "total")
    # Matmuls and convs are a lower bound; element-wise work adds only a little.
    assert analytic["total"] <= counted <= 1.15 * analytic["total"]


def test_kv_pooling_cuts_only_the_attention_and_key_value_parts():
    shapes = [(38, 38, 512), (19, 19, 1024), (10, 10, 512), (5, 5, 256), (3, 3, 256), (1, 1, 256)]
    full = cost.cfsam_matmul_flops(shapes)
    pooled = cost.cfsam_matmul_flops(shapes, kv_pool_size=5)
    assert sum(h * w for h, w, _ in shapes) == 1940
    # 1940 queries x 1940 keys x 256 wide, scores and weighted sum: 4 * N * N * C.
    assert full["attention"] == 4 * 1940 * 1940 * 256
    assert pooled["attention"] == 4 * 1940 * 110 * 256
    assert pooled["local"] == full["local"] and pooled["mlp"] == full["mlp"]
    narrow = cost.cfsam_matmul_flops(shapes, kv_pool_size=5, local_channels=64)
    assert narrow["local"] < full["local"] / 3


def test_variant_table_and_subsets():
    variants = cost.cost_variants()
    names = [v.name for v in variants]
    assert len(names) == len(set(names)) and harness.PEAK not in names
    groups = {}
    for v in variants:
        groups.setdefault(v.group, []).append(v.attention)
    # Every group has its baseline first; the demo model and VGG16 carry every module.
    assert all(attentions[0] == "none" for attentions in groups.values())
    for group in ("SSD300-VGG16", cost.DEMO_GROUP):
        assert set(groups[group]) == {"none", "cfsam", "se", "cbam", "eca"}
    assert [v.name for v in cost.cost_variants(names=["vgg16 se"])] == ["vgg16 se"]
    with pytest.raises(ValueError, match="vgg16 sse"):
        cost.cost_variants(names=["vgg16 sse"])
    assert [v.attention for v in cost.cost_variants(quick=True)] == ["none", "cfsam"]


def test_demo_rows_build_the_demo_model_with_each_module():
    from cfsam_keras.models import SSD300

    demo = cost.configs.DEMO_MODEL
    rows = [v for v in cost.cost_variants() if v.group == cost.DEMO_GROUP]
    own = [
        v
        for v in rows
        if (v.attention, v.attention_kwargs) == (demo["attention"], demo["attention_kwargs"])
    ]
    assert len(own) == 1 and own[0].num_classes == len(BUILTIN_CLASSES)
    model = own[0].build()
    reference = SSD300(len(BUILTIN_CLASSES), **demo)
    assert model.count_params() == reference.count_params()
    assert model.input_shape == reference.input_shape
    assert model.output_shape == reference.output_shape
    for other in rows:
        assert {
            k: other.model_kwargs[k]
            for k in ("backbone", "input_size", "anchor_preset", "backbone_kwargs")
        } == {k: demo[k] for k in ("backbone", "input_size", "anchor_preset", "backbone_kwargs")}


def _row(name, group, attention, params, latency):
    return {
        "name": name,
        "group": group,
        "attention": attention,
        "params": params,
        "flops": 2 * params,
        "latency_ms": latency,
        "throughput_ips": None,
        "train_step_ms": 10.0,
    }


def test_ratios_are_to_the_baseline_of_the_same_group():
    rows = [
        _row("a none", "A", "none", 100, 10.0),
        _row("a se", "A", "se", 150, 15.0),
        _row("b none", "B", "none", 10, 2.0),
        _row("b se", "B", "se", 20, None),
        _row("c se", "C", "se", 5, 1.0),
    ]
    cost._ratios(rows)
    assert rows[1]["params_ratio"] == 1.5 and rows[1]["latency_ms_ratio"] == 1.5
    assert rows[0]["flops_ratio"] == 1.0 and rows[3]["flops_ratio"] == 2.0
    assert rows[3]["latency_ms_ratio"] is None and rows[1]["throughput_ips_ratio"] is None
    assert rows[4]["params_ratio"] is None  # no baseline in its group


def test_timings_use_the_peak_of_their_own_rounds():
    row = {"flops": 4e9}
    cost._timings(row, {"latency": 0.5, "throughput": 2.0}, {"latency": 16.0, "throughput": 32.0})
    assert row["latency_ms"] == 500.0 and row["train_step_ms"] is None
    assert row["throughput_ips"] == cost.BATCH_SIZE / 2.0
    assert row["gflops_per_s_b1"] == 8.0 and row["peak_fraction_b1"] == 0.5
    assert row["gflops_per_s"] == cost.BATCH_SIZE * 2.0 and row["peak_fraction"] == 0.5


def _parsed(command):
    argv = shlex.split(command)
    assert argv[:2] == ["python", "benchmarks/cost.py"]
    return cost.parser().parse_args(argv[2:])


def test_command_for_reproduces_the_settings_and_rows():
    settings = {
        "runs": 4,
        "batch_runs": 3,
        "train_runs": 2,
        "warmup": 1,
        "measurements": ["latency", "train_step"],
        "batch_size": 8,
        "peak_matmul_size": 256,
    }
    rows = [{"name": "vgg16 none"}, {"name": "vgg16 cbam"}]
    args = _parsed(cost.command_for({"settings": settings, "rows": rows}, "out dir"))
    assert (
        args.out,
        args.runs,
        args.batch_runs,
        args.train_runs,
        args.warmup,
        args.peak_size,
        args.quick,
    ) == ("out dir", 4, 3, 2, 1, 256, False)
    assert args.measure == "latency,train_step"
    assert args.variants.split(",") == ["vgg16 none", "vgg16 cbam"]
    quick = [{"name": v.name} for v in cost.cost_variants(quick=True)]
    args = _parsed(
        cost.command_for(
            {"settings": dict(settings, measurements=list(cost.MEASUREMENTS)), "rows": quick}, "o"
        )
    )
    assert args.quick and args.variants is None and args.measure == ",".join(cost.MEASUREMENTS)


def test_bad_flags_are_one_line_errors(tmp_path):
    with pytest.raises(SystemExit, match="--runs must be >= 1"):
        cost.main(["--quick", "--runs", "0", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--measure: unknown \\['speed'\\]"):
        cost.main(["--quick", "--measure", "speed", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--variants: unknown \\['huge'\\]"):
        cost.main(["--quick", "--variants", "huge", "--out", str(tmp_path)])


@pytest.mark.slow
def test_quick_run_writes_table_and_json(tmp_path, capsys):
    assert cost.main(["--quick", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    with open(tmp_path / "cost.json") as f:
        results = json.load(f)
    assert [r["name"] for r in results["rows"]] == [v.name for v in cost.cost_variants(True)]
    assert printed.strip() == (tmp_path / "cost.md").read_text().strip()
    assert printed.strip() == cost.cost_table(results)
    base, cfsam = results["rows"]
    assert base["flops_ratio"] == 1.0 and base["latency_ms_ratio"] == 1.0
    assert cfsam["flops"] > base["flops"] and cfsam["params"] > base["params"]
    assert cfsam["flops_ratio"] == pytest.approx(cfsam["flops"] / base["flops"])
    settings = results["settings"]
    assert list(results["peak_gflops"]) == list(cost.MEASUREMENTS)
    assert all(peak > 0 for peak in results["peak_gflops"].values())
    for row in results["rows"]:
        assert row["latency_ms"] > 0 and row["train_step_ms"] > 0 and row["throughput_ips"] > 0
        assert len(row["latency_rounds_ms"]) == settings["runs"]
        assert len(row["train_step_rounds_ms"]) == settings["train_runs"]
        assert math.isclose(
            row["gflops_per_s"] / results["peak_gflops"]["throughput"], row["peak_fraction"]
        )
    conv_check, cfsam_check = results["cross_check"]
    assert conv_check["counted"] == conv_check["analytic"]
    assert cfsam_check["analytic"] <= cfsam_check["counted"] <= 1.15 * cfsam_check["analytic"]
    assert results["machine"]["cores"] > 0 and "tensorflow" in results["machine"]
    assert _parsed(results["command"]).quick
