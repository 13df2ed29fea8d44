import json
import math

import pytest

from cfsam_keras.benchmarks import report


def _run(variant, seed, ap50s, params=1000):
    epochs = [
        {"epoch": i + 1, "loss": 1.0, "train_seconds": 1.0,
         **{m: v / 2 for m in report.METRICS}, "AP50": v}
        for i, v in enumerate(ap50s)
    ]
    return {"variant": variant, "attention": variant, "attention_kwargs": {}, "seed": seed,
            "params": params, "steps_per_epoch": 2, "epochs": epochs,
            "final": {k: v for k, v in epochs[-1].items() if k != "epoch"}, "wall_seconds": 60.0}


def _result(runs, variants, seeds):
    settings = dict(dataset="builtin", variants=variants, seeds=seeds, out="o", data_dir="d",
                    input_size=64, image_size=64, train_images=8, val_images=4, epochs=3,
                    batch_size=4, latency_runs=3, steps_per_epoch=2, kv_pool_size=3,
                    backbone="mobilenet_v2", alpha=0.35, optimizer="adamw", lr=0.002,
                    schedule="cosine")
    return {"dataset": "builtin", "settings": settings, "runs": runs,
            "latency": {v: {"params": 1000, "latency_ms": 2.0, "latency_ratio": 1.0} for v in variants},
            "machine": {"cpu": "test cpu", "cores": 2, "load_average_1min": 1.0,
                        "tensorflow": "x", "platform": "y"}}


def test_verdicts_follow_the_seed_spread():
    runs = [
        _run("none", 0, [0.1, 0.2, 0.30]), _run("none", 1, [0.1, 0.2, 0.34]),
        _run("cfsam", 0, [0.2, 0.3, 0.33]), _run("cfsam", 1, [0.2, 0.35, 0.35]),
        _run("se", 0, [0.3, 0.5, 0.60]), _run("se", 1, [0.3, 0.5, 0.62]),
    ]
    summary = report.comparison_summary(_result(runs, ["none", "cfsam", "se"], [0, 1]))
    assert summary["none"]["verdict"] == "baseline"
    assert summary["none"]["final"]["AP50"]["mean"] == pytest.approx(0.32)
    assert summary["cfsam"]["verdict"] == "no difference (within seed spread)"
    assert summary["se"]["verdict"] == "better"
    # Baseline's final mean AP50 is 0.32: cfsam's mean curve reaches it at epoch 2.
    assert summary["cfsam"]["reaches_baseline_epoch"] == 2
    assert summary["se"]["reaches_baseline_epoch"] == 2
    assert summary["none"]["reaches_baseline_epoch"] == 3


def test_single_seed_is_never_called_a_difference():
    runs = [_run("none", 0, [0.1, 0.2]), _run("cfsam", 0, [0.1, 0.9])]
    summary = report.comparison_summary(_result(runs, ["none", "cfsam"], [0]))
    assert summary["cfsam"]["verdict"].startswith("single seed")
    assert math.isnan(summary["cfsam"]["final"]["AP50"]["std"])


def test_table_plot_and_results_doc(tmp_path):
    runs = [_run("none", 0, [0.1, 0.2]), _run("cfsam", 0, [0.1, 0.3], params=2_500_000)]
    result = _result(runs, ["none", "cfsam"], [0])
    table = report.comparison_table(result)
    assert table.splitlines()[0].startswith("| variant | seeds | AP | AP50")
    assert "| cfsam | 1 | 0.150 | 0.300 |" in table and "| 2.50 |" in table
    folder = tmp_path / "results" / "compare_builtin"
    folder.mkdir(parents=True)
    (folder / "compare.json").write_text(json.dumps(result))
    report.write_comparison(str(folder))
    assert (folder / "convergence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (folder / "compare.md").read_text().strip() == table
    doc = tmp_path / "results.md"
    assert report.main(["--results", str(tmp_path / "results"), "--out", str(doc)]) == 0
    text = doc.read_text()
    assert "Cost" in text and "Not run yet: `cfsam-keras benchmark --cost" in text
    assert table in text and "](results/compare_builtin/convergence.png)" in text
    assert "python recipes/compare_attention.py --out o " in text


def _cost_row(name, attention, flops, latency, kwargs=None):
    return {"name": name, "group": "SSD300-VGG16", "attention": attention,
            "attention_kwargs": kwargs or {}, "params": 1000, "flops": flops,
            "latency_ms": latency, "throughput_ips": 1.0, "train_step_ms": 10.0,
            "gflops_per_s": 1.0, "peak_fraction": 0.5}


def test_cost_section_states_the_goal_from_the_numbers(tmp_path):
    rows = [_cost_row("vgg16 none", "none", 100e9, 100.0),
            _cost_row("vgg16 cfsam", "cfsam", 125e9, 115.0),
            _cost_row("vgg16 cfsam kv5 local64", "cfsam", 108e9, 105.0, {"kv_pool_size": 5})]
    for r in rows:
        for key in ("params", "flops", "latency_ms", "throughput_ips", "train_step_ms"):
            r[f"{key}_ratio"] = r[key] / rows[0][key]
    parts = {"local": 5e9, "qkv_out": 1e9, "attention": 4e9, "mlp": 2e9, "fusion": 1e9, "total": 13e9}
    cost = {"rows": rows, "peak_gflops": 2.0,
            "cross_check": [{"what": "Conv2D", "counted": 10, "analytic": 10},
                            {"what": "CFSAM module of 'vgg16 cfsam' (x)", "counted": 14e9,
                             "analytic": 13e9, "analytic_parts": parts,
                             "feature_shapes": [[38, 38, 512], [19, 19, 1024], [10, 10, 512], [5, 5, 256], [3, 3, 256], [1, 1, 256]]}],
            "settings": {"runs": 3, "train_runs": 2, "warmup": 1, "batch_size": 8,
                         "peak_matmul_size": 512},
            "machine": {"cpu": "test cpu", "cores": 2, "load_average_1min": 1.0,
                        "tensorflow": "x", "platform": "y"}, "seconds": 60.0}
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "cost.json").write_text(json.dumps(cost))
    text = report.render_results(str(tmp_path / "results"), str(tmp_path / "results.md"))
    assert "FLOPs +25.0%, misses the +20% FLOP limit; batch-1 latency +15.0%, training step +0.0%; latency within the limit." in text
    assert "FLOPs +8.0%, meets the +10% FLOP limit; batch-1 latency +5.0%" in text
    # GPU estimate: 3 x 100 GFLOPs x 16551 images / 40 TFLOP/s = 124 s = 2.1 min.
    assert "| vgg16 none | 2.1 min |" in text
    assert "| vgg16 cfsam | 5.00 | 1.00 | 4.00 | 2.00 | 1.00 |" in text


def test_noise_band_comes_from_modules_without_flops():
    rows = [
        {"attention": "none", "flops_ratio": 1.0, "latency_ms_ratio": 1.0},
        {"attention": "se", "flops_ratio": 1.001, "latency_ms_ratio": 1.3},
        {"attention": "eca", "flops_ratio": 1.0, "latency_ms_ratio": 0.9},
        {"attention": "cfsam", "flops_ratio": 1.2, "latency_ms_ratio": 2.0},
    ]
    assert report._noise_band({"rows": rows}) == (0.9, 1.3)
    assert report._noise_band({"rows": rows[:1] + rows[3:]}) is None


def test_claims_follow_the_comparison():
    runs = [
        _run("none", 0, [0.1, 0.2, 0.30]), _run("none", 1, [0.1, 0.2, 0.32]),
        _run("cfsam", 0, [0.2, 0.35, 0.50]), _run("cfsam", 1, [0.2, 0.34, 0.52]),
        _run("se", 0, [0.1, 0.2, 0.31]), _run("se", 1, [0.1, 0.2, 0.30]),
    ]
    result = _result(runs, ["none", "cfsam", "se"], [0, 1])
    lines = report._comparison_claims(report.comparison_summary(result), result["settings"])
    text = "\n".join(lines)
    assert "(`cfsam`): Supported on the CPU-sized built-in comparison (3 epochs, 2 seed(s)): AP50 0.510 against 0.310 (better)." in text
    assert "Against the best other module (se, AP50 0.305): above it." in text
    assert "reaches the baseline's final AP50 at epoch 2 of 3." in text
    runs[2], runs[3] = _run("cfsam", 0, [0.1, 0.2, 0.31]), _run("cfsam", 1, [0.1, 0.2, 0.30])
    text = "\n".join(report._comparison_claims(report.comparison_summary(result), result["settings"]))
    assert "Not shown on the CPU-sized" in text and "no difference from it" in text
    assert "never reaches the baseline's final AP50" in text


def test_load_and_convergence_sentences():
    assert "no other heavy jobs" in report._load_sentence({"load_average_1min": 2.1, "cores": 2})
    assert "other jobs competed" in report._load_sentence({"load_average_1min": 4.0, "cores": 2})
    rising = _result([_run("none", 0, [0.1, 0.3])], ["none"], [0])
    assert "still rising at the last epoch (0.100 -> 0.300)" in report._convergence_sentence(rising)
    flat = _result([_run("none", 0, [0.3, 0.305])], ["none"], [0])
    assert "changed by +0.005" in report._convergence_sentence(flat)
