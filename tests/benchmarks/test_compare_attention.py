import json
import os
import runpy

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPE = os.path.join(ROOT, "recipes", "compare_attention.py")


def _recipe():
    return runpy.run_path(RECIPE)


def test_bad_variant_and_missing_baseline_are_refused(tmp_path):
    main = _recipe()["main"]
    with pytest.raises(SystemExit, match="unknown \\['sse'\\]"):
        main(["--out", str(tmp_path), "--variants", "none,sse"])
    with pytest.raises(SystemExit, match="baseline 'none'"):
        main(["--out", str(tmp_path), "--variants", "cfsam,se"])
    with pytest.raises(SystemExit, match="no results"):
        main(["--out", str(tmp_path), "--render-only"])


def test_paper_settings_follow_ssd():
    settings = _recipe()["dataset_settings"]
    voc, preset, _, cfsam = settings("voc")
    assert preset == "voc" and cfsam == {}  # the faithful default CFSAM
    assert (voc["backbone"], voc["input_size"], voc["optimizer"], voc["lr"], voc["batch_size"]) == (
        "vgg16", 300, "sgd", 1e-3, 32)
    # 120k iterations at batch 32 over 16551 images, x0.1 at 80k and 100k.
    assert voc["epochs"] == round(120_000 * 32 / 16551)
    assert voc["decay_epochs"] == [round(80_000 * 32 / 16551), round(100_000 * 32 / 16551)]
    assert settings("coco")[1] == "coco"


@pytest.mark.slow
def test_quick_comparison_end_to_end(tmp_path):
    out = tmp_path / "compare"
    assert _recipe()["main"](["--quick", "--out", str(out)]) == 0
    with open(out / "compare.json") as f:
        result = json.load(f)
    assert [r["variant"] for r in result["runs"]] == ["none", "cfsam"]
    for run in result["runs"]:
        assert [e["epoch"] for e in run["epochs"]] == [1, 2]
        assert all(0.0 <= e["AP50"] <= 1.0 for e in run["epochs"])
        assert run["steps_per_epoch"] == 2
    assert result["runs"][1]["params"] > result["runs"][0]["params"]
    assert result["latency"]["none"]["latency_ratio"] == 1.0
    assert result["latency"]["cfsam"]["latency_ms"] > 0
    table = (out / "compare.md").read_text()
    assert "| none | 1 |" in table and "| cfsam | 1 |" in table
    assert (out / "convergence.png").stat().st_size > 1000
    os.remove(out / "compare.md")
    assert _recipe()["main"](["--out", str(out), "--render-only"]) == 0
    assert (out / "compare.md").read_text() == table
