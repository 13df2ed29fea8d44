import json
import math
import os
import runpy

import keras
import pytest

from cfsam_keras.benchmarks import cost
from cfsam_keras.flops import count_flops
from cfsam_keras.layers import CFSAM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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


def test_variants_and_their_names():
    names = [v.name for v in cost.cost_variants()]
    assert names[0] == "vgg16 none" and "vgg16 cfsam" in names and len(names) == 11
    assert {v.attention for v in cost.cost_variants()} == {"none", "cfsam", "se", "cbam", "eca"}
    assert [v.name for v in cost.cost_variants(names=["vgg16 se"])] == ["vgg16 se"]
    with pytest.raises(ValueError, match="vgg16 sse"):
        cost.cost_variants(names=["vgg16 sse"])


def test_demo_model_settings_match_the_demo_recipe():
    demo = runpy.run_path(os.path.join(ROOT, "recipes", "demo.py"))
    assert cost.DEMO_MODEL["input_size"] == demo["DEFAULTS"]["input_size"]
    assert cost.DEMO_MODEL["backbone"] == demo["DEFAULTS"]["backbone"]
    assert cost.DEMO_MODEL["anchor_preset"] == demo["ANCHOR_PRESET"]
    assert cost.DEMO_MODEL["backbone_kwargs"] == demo["BACKBONE_KWARGS"]["small_vgg"]
    assert cost.DEMO_CFSAM_KWARGS == demo["ATTENTION_KWARGS"]["cfsam"]
    # The MobileNetV2 rows are the demo's --backbone mobilenet_v2 model.
    assert cost.MOBILENET_MODEL["backbone_kwargs"]["alpha"] == demo["DEFAULTS"]["alpha"]
    assert tuple(cost.MOBILENET_MODEL["backbone_kwargs"]["extra_channels"]) == tuple(
        demo["BACKBONE_KWARGS"]["mobilenet_v2"]["extra_channels"])


def test_median_seconds_validates_and_calls():
    calls = []
    assert cost.median_seconds(lambda: calls.append(1), runs=3, warmup=2) >= 0
    assert len(calls) == 5
    with pytest.raises(ValueError, match="runs"):
        cost.median_seconds(lambda: None, runs=0)


@pytest.mark.slow
def test_cli_cost_quick_writes_table_and_json(tmp_path, capsys):
    from cfsam_keras.cli import main

    assert main(["benchmark", "--cost", "--quick", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "| tiny none |" in printed and "| tiny cfsam |" in printed
    with open(tmp_path / "cost.json") as f:
        results = json.load(f)
    base, cfsam = results["rows"]
    assert base["flops_ratio"] == 1.0 and base["latency_ms_ratio"] == 1.0
    assert cfsam["flops"] > base["flops"] and cfsam["params"] > base["params"]
    assert cfsam["flops_ratio"] == pytest.approx(cfsam["flops"] / base["flops"])
    assert results["peak_gflops"] > 0
    for row in results["rows"]:
        assert row["latency_ms"] > 0 and row["train_step_ms"] > 0
        assert math.isclose(row["gflops_per_s"] / results["peak_gflops"], row["peak_fraction"])
    conv_check, cfsam_check = results["cross_check"]
    assert conv_check["counted"] == conv_check["analytic"]
    assert cfsam_check["analytic"] <= cfsam_check["counted"] <= 1.15 * cfsam_check["analytic"]
    assert (tmp_path / "cost.md").read_text().startswith("| model |")
