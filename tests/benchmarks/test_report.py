import json
import math
import os
import re

import cost
import harness
import latency
import pytest
import report

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: Goal verdicts the generated page must not state.
VERDICTS = re.compile(r"\bmeets\b|\bmisses\b|over the limit|within the limit|\blimit\b")


def _run(variant, seed, ap50s, params=1000, attention=None, attention_kwargs=None):
    epochs = [
        {
            "epoch": i + 1,
            "loss": 1.0,
            "train_seconds": 1.0,
            **{m: v / 2 for m in report.METRICS},
            "AP50": v,
        }
        for i, v in enumerate(ap50s)
    ]
    return {
        "variant": variant,
        "attention": attention or variant,
        "attention_kwargs": attention_kwargs or {},
        "seed": seed,
        "params": params,
        "steps_per_epoch": 2,
        "epochs": epochs,
        "final": {k: v for k, v in epochs[-1].items() if k != "epoch"},
        "wall_seconds": 60.0,
    }


def _result(runs, variants, seeds):
    settings = dict(
        dataset="builtin",
        variants=variants,
        seeds=seeds,
        out="o",
        data_dir="d",
        input_size=64,
        image_size=64,
        train_images=8,
        val_images=4,
        epochs=3,
        batch_size=4,
        steps_per_epoch=2,
        kv_pool_size=3,
        backbone="mobilenet_v2",
        alpha=0.35,
        optimizer="adamw",
        lr=0.002,
        schedule="cosine",
    )
    return {
        "dataset": "builtin",
        "settings": settings,
        "runs": runs,
        "machine": {
            "cpu": "test cpu",
            "cores": 2,
            "load_average_1min_before": 1.0,
            "load_average_1min_after": 1.0,
            "tensorflow": "x",
            "platform": "y",
        },
    }


def _cost_row(name, group, attention, flops, latency_ms, kwargs=None):
    return {
        "name": name,
        "group": group,
        "attention": attention,
        "attention_kwargs": kwargs or {},
        "model": {"input_size": 192},
        "params": 1000,
        "flops": flops,
        "latency_rounds_ms": [latency_ms, latency_ms + 1],
    }


def _cost(rows):
    peaks = {"latency": 20.0, "throughput": 40.0, "train_step": 30.0}
    for r in rows:
        seconds = r["latency_rounds_ms"][0] / 1000
        cost._timings(
            r, {"latency": seconds, "throughput": 2 * seconds, "train_step": 3 * seconds}, peaks
        )
    cost._ratios(rows)
    return {
        "rows": rows,
        "peak_gflops": peaks,
        "cross_check": [{"what": "Conv2D", "counted": 10, "analytic": 10}],
        "settings": {
            "runs": 2,
            "batch_runs": 2,
            "train_runs": 1,
            "warmup": 1,
            "measurements": list(cost.MEASUREMENTS),
            "batch_size": 8,
            "peak_matmul_size": 128,
        },
        "machine": {
            "cpu": "test cpu",
            "cores": 2,
            "load_average_1min_before": 1.0,
            "load_average_1min_after": 1.2,
            "tensorflow": "x",
        },
        "seconds": 60.0,
    }


def _table_rows(text, first_cell):
    return [line for line in text.splitlines() if line.startswith(f"| {first_cell} |")]


def test_t_quantile_matches_the_published_table():
    for df, t in [(1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (30, 2.042)]:
        assert report.t_quantile_975(df) == pytest.approx(t, abs=1e-3)


def test_verdicts_pair_runs_by_seed():
    # Seeds move AP50 far more than the modules do: cfsam is 0.02 above the baseline on
    # every seed, well inside the seed spread of either mean.
    base = {0: 0.68, 1: 0.73, 2: 0.76}
    runs = [_run("none", k, [0.1, 0.2, v]) for k, v in base.items()]
    runs += [
        _run("cfsam", k, [0.2, 0.3, v + d]) for (k, v), d in zip(base.items(), (0.021, 0.019, 0.02))
    ]
    runs += [
        _run("se", k, [0.1, 0.2, v + d]) for (k, v), d in zip(base.items(), (0.04, -0.01, 0.01))
    ]
    runs += [_run("eca", k, [0.1, 0.2, v - 0.03 - k / 1000]) for k, v in base.items()]
    result = _result(runs[::-1], ["none", "cfsam", "se", "eca"], [0, 1, 2])
    summary = report.comparison_summary(result)
    assert summary["none"]["verdict"] == "baseline"
    assert summary["none"]["final"]["AP50"]["mean"] == pytest.approx(0.7233, abs=1e-4)
    cfsam = summary["cfsam"]["vs_baseline"]
    assert (cfsam["n"], cfsam["above"]) == (3, 3) and cfsam["mean"] == pytest.approx(0.02)
    half = report.t_quantile_975(2) * 0.001 / 3**0.5
    assert (cfsam["low"], cfsam["high"]) == pytest.approx((0.02 - half, 0.02 + half))
    assert summary["cfsam"]["verdict"] == "better"
    assert summary["se"]["verdict"] == "no difference (paired 95% interval holds 0)"
    assert summary["se"]["vs_baseline"]["above"] == 2
    assert summary["eca"]["verdict"] == "worse"
    table = report.comparison_table(result)
    assert "| +0.020 (+0.018 to +0.022); higher on 3 of 3 | better |" in table
    # Only seeds both variants have are paired: one in common is no spread at all.
    result = _result(
        [
            _run("none", 0, [0.5]),
            _run("none", 1, [0.6]),
            _run("se", 1, [0.9]),
            _run("se", 2, [0.1]),
        ],
        ["none", "se"],
        [0, 1, 2],
    )
    se = report.comparison_summary(result)["se"]
    assert se["vs_baseline"]["n"] == 1 and se["vs_baseline"]["mean"] == pytest.approx(0.3)
    assert se["verdict"].startswith("single seed")
    assert "| +0.300 (1 seed) | single seed" in report.comparison_table(result)
    tiny = {"n": 2, "mean": -0.0001, "low": -0.0004, "high": 0.0002, "above": 1}
    assert report.difference_cell(tiny) == "+0.000 (+0.000 to +0.000); higher on 1 of 2"


def test_a_variant_with_fewer_seeds_is_set_against_the_baseline_on_its_seeds():
    runs = [_run("none", k, [0.3, 0.5, v]) for k, v in ((0, 0.60), (1, 0.70), (2, 0.80))]
    runs.append(_run("cfsam", 0, [0.3, 0.62, 0.64]))
    result = _result(runs, ["none", "cfsam"], [0, 1, 2])
    summary = report.comparison_summary(result)
    # Above seed 0's baseline (0.60) from epoch 2, though never at the 3-seed mean (0.70).
    assert summary["cfsam"]["paired_seeds"] == [0]
    assert summary["cfsam"]["reaches_baseline_epoch"] == 2
    beats, faster, _ = report._comparison_claims(summary, result["settings"])
    assert "(3 epochs, seeds 0): AP50 0.640 against 0.600; difference paired by seed +0.040" in (
        beats
    )
    assert "epoch 2 of 3" in faster and "with one seed" in faster


def test_single_seed_is_never_called_a_difference():
    runs = [_run("none", 0, [0.1, 0.2]), _run("cfsam", 0, [0.1, 0.9])]
    summary = report.comparison_summary(_result(runs, ["none", "cfsam"], [0]))
    assert summary["cfsam"]["verdict"].startswith("single seed")
    assert math.isnan(summary["cfsam"]["final"]["AP50"]["std"])


def test_comparison_latency_comes_from_the_demo_rows_of_the_cost_table():
    kv = {"embed_dim": 8, "kv_pool_size": 3}
    runs = [
        _run("none", 0, [0.1, 0.2]),
        _run("cfsam", 0, [0.1, 0.3], attention_kwargs={"embed_dim": 8}),
        _run("cfsam_kv3", 0, [0.1, 0.3], attention="cfsam", attention_kwargs=kv),
        _run("eca", 0, [0.1, 0.3]),
    ]
    result = _result(runs, ["none", "cfsam", "cfsam_kv3", "eca"], [0])
    # An old compare.json still carries the recipe's own latency: it is ignored.
    result["latency"] = {v: {"latency_ratio": 9.99} for v in result["settings"]["variants"]}
    demo = cost.DEMO_GROUP
    costs = _cost(
        [
            _cost_row("d none", demo, "none", 100, 10.0),
            _cost_row("d cfsam", demo, "cfsam", 150, 20.0, {"embed_dim": 8}),
            _cost_row("d cfsam kv3", demo, "cfsam", 120, 15.0, dict(reversed(kv.items()))),
            _cost_row("v eca", "SSD300-VGG16", "eca", 100, 30.0),
        ]
    )
    table = report.comparison_table(result, costs)
    cells = {line.split(" | ")[0][2:]: line.split(" | ")[10] for line in table.splitlines()[2:]}
    assert cells == {"none": "x1.00", "cfsam": "x2.00", "cfsam_kv3": "x1.50", "eca": "n/a"}
    assert "9.99" not in table
    assert "latency" not in report.comparison_table(result)  # no cost table, no column


def test_cost_section_renders_every_row_and_states_no_goal_verdict(tmp_path):
    vgg, demo = "SSD300-VGG16", cost.DEMO_GROUP
    rows = [
        _cost_row("vgg16 none", vgg, "none", 100e9, 100.0),
        _cost_row("vgg16 cfsam", vgg, "cfsam", 125e9, 115.0),
        _cost_row("vgg16 se", vgg, "se", 100.1e9, 98.0),
        _cost_row("demo none", demo, "none", 1e9, 10.0),
        _cost_row("demo eca", demo, "eca", 1e9, 11.0),
    ]
    shapes = [[38, 38, 512], [19, 19, 1024], [10, 10, 512], [5, 5, 256], [3, 3, 256], [1, 1, 256]]
    results = _cost(rows)
    results["cross_check"].append(
        {
            "what": "CFSAM module of 'vgg16 cfsam' (x)",
            "counted": 14e9,
            "analytic": 13e9,
            "analytic_parts": cost.cfsam_matmul_flops([tuple(s) for s in shapes]),
            "feature_shapes": shapes,
        }
    )
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "cost.json").write_text(json.dumps(results))
    text = report.render_results(str(tmp_path / "results"), str(tmp_path / "results.md"))
    table = cost.cost_table(results)
    assert table in text
    for row in rows:
        assert len(_table_rows(table, row["name"])) == 1
    assert _table_rows(table, "vgg16 cfsam")[0].startswith("| vgg16 cfsam | 0.00 | 125.00 | x1.25 ")
    assert len(_table_rows(text, "Conv2D")) == 1
    assert not VERDICTS.search(text)
    # GPU estimate: 3 x 100 GFLOPs x the VOC07+12 images at 40 TFLOP/s, in minutes.
    configs = cost.configs
    minutes = 3 * 100e9 * configs.DATASET_IMAGES["VOC07+12 trainval"] / 40e12 / 60
    assert _table_rows(text, "vgg16 none")[-1].startswith(f"| vgg16 none | {minutes:.1f} min |")


def test_latency_section_renders_every_model(tmp_path):
    record = {
        "results": {
            name: {
                "Keras": {"median_ms": 10.0},
                "TFLite fp32": {"median_ms": 5.0},
                harness.PEAK: {"gflop_per_s": 10.0},
            }
            for name in ("m1", "m2")
        },
        "gflops": {"m1": 0.1, "m2": 0.2},
        "settings": {
            "runs": 3,
            "warmup": 1,
            "peak_size": 64,
            "quick": False,
            "runtimes": ["Keras", "TFLite fp32"],
            "threads_flag": None,
            "score_threshold": 0.01,
            "max_detections": 200,
        },
        "machine": {
            "cpu": "c",
            "cores": 2,
            "load_average_1min_before": 1.0,
            "load_average_1min_after": 1.0,
        },
    }
    (tmp_path / "latency.json").write_text(json.dumps(record))
    text = report.render_results(str(tmp_path))
    assert latency.latency_table(record) in text
    assert len(_table_rows(text, "m1")) == len(_table_rows(text, "m2")) == 1


def test_missing_results_name_the_commands_that_make_them(tmp_path):
    text = report.render_results(str(tmp_path))
    for command in (
        "python benchmarks/cost.py",
        "python recipes/compare_attention.py",
        "python benchmarks/latency.py",
    ):
        assert command in text


def test_table_plot_and_results_doc(tmp_path):
    runs = [_run("none", 0, [0.1, 0.2]), _run("cfsam", 0, [0.1, 0.3], params=2_500_000)]
    result = _result(runs, ["none", "cfsam"], [0])
    table = report.comparison_table(result)
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
    assert table in text and "](results/compare_builtin/convergence.png)" in text
    with pytest.raises(SystemExit, match="--results: no such folder"):
        report.main(["--results", str(tmp_path / "missing"), "--out", str(doc)])


def test_finetune_section_names_its_start_and_command(tmp_path):
    runs = [_run("none", 0, [0.61, 0.62]), _run("cfsam", 0, [0.6, 0.64], params=2000)]
    result = _result(runs, ["none", "cfsam"], [0])
    result["settings"].update(weights="base.keras", attention_kwargs={"embed_dim": 64})
    result["start"] = {"AP50": 0.6, "AP": 0.4}
    folder = tmp_path / "results" / "finetune_builtin"
    folder.mkdir(parents=True)
    (folder / "compare.json").write_text(json.dumps(result))
    doc = tmp_path / "results.md"
    assert report.main(["--results", str(tmp_path / "results"), "--out", str(doc)]) == 0
    text = doc.read_text().split("## Fine-tuning CFSAM on a trained detector")[1]
    assert "python recipes/finetune_attention.py --from base.keras --out o" in text
    assert "(`base.keras`; AP50 0.600, AP 0.400" in text
    assert report.comparison_table(result) in text
    assert (folder / "convergence.png").is_file() and (folder / "compare.md").is_file()


def test_committed_page_is_rendered_from_the_committed_json(monkeypatch):
    monkeypatch.chdir(ROOT)
    page = os.path.join("docs", "results.md")
    text = report.render_results(os.path.join("docs", "results"), page)
    with open(page, encoding="utf-8") as f:
        assert f.read() == text
    assert report.render_results(os.path.join("docs", "results"), page) == text
    assert not VERDICTS.search(text)
    with open(os.path.join("docs", "results", "cost.json")) as f:
        for row in json.load(f)["rows"]:
            assert len(_table_rows(text, row["name"])) >= 1
    comparison = text.split("## Fine-tuning")[0]
    with open(os.path.join("docs", "results", "compare_builtin", "compare.json")) as f:
        for variant in json.load(f)["settings"]["variants"]:
            assert len(_table_rows(comparison, variant)) == 1


def test_claims_follow_the_comparison():
    runs = [
        _run("none", 0, [0.1, 0.2, 0.30]),
        _run("none", 1, [0.1, 0.3, 0.32]),
        _run("cfsam", 0, [0.2, 0.35, 0.50]),
        _run("cfsam", 1, [0.2, 0.46, 0.52]),
        _run("se", 0, [0.1, 0.2, 0.31]),
        _run("se", 1, [0.1, 0.2, 0.30]),
    ]
    result = _result(runs, ["none", "cfsam", "se"], [0, 1])
    beats, faster, _ = report._comparison_claims(
        report.comparison_summary(result), result["settings"]
    )
    assert (
        "Supported" in beats
        and "0.510 against 0.310" in beats
        and "se +0.205 (+0.014 to +0.396); higher on 2 of 2 (above)." in beats
    )
    assert "higher on 2 of 2." in beats
    # At epoch 2 cfsam is above the baseline by 0.15 and 0.16 on the two seeds.
    assert "Supported" in faster and "epoch 2 of 3" in faster and "+0.155 (" in faster
    # Reaching the baseline's final AP50 early is not enough when the paired differences
    # at that epoch spread across 0.
    runs[0], runs[1] = _run("none", 0, [0.1, 0.4, 0.30]), _run("none", 1, [0.1, 0.3, 0.32])
    _, faster, _ = report._comparison_claims(report.comparison_summary(result), result["settings"])
    assert "Not shown" in faster and "epoch 2 of 3" in faster and "holds 0" in faster
    runs[2], runs[3] = _run("cfsam", 0, [0.1, 0.2, 0.31]), _run("cfsam", 1, [0.1, 0.2, 0.30])
    beats, faster, _ = report._comparison_claims(
        report.comparison_summary(result), result["settings"]
    )
    assert "Not shown" in beats and "(no difference)." in beats
    assert "Not shown" in faster and "never" in faster
    # With one seed each, reaching the baseline's final AP50 early is not evidence.
    one_seed = [_run("none", 0, [0.1, 0.2, 0.30]), _run("cfsam", 0, [0.2, 0.35, 0.50])]
    result = _result(one_seed, ["none", "cfsam"], [0])
    _, faster, _ = report._comparison_claims(report.comparison_summary(result), result["settings"])
    assert "Not shown" in faster and "epoch 2 of 3" in faster and "with one seed" in faster


def test_load_is_set_against_the_core_count():
    calm = report._load_sentence(
        {"load_average_1min_before": 0.5, "load_average_1min_after": 2.1, "cores": 2}
    )
    busy = report._load_sentence(
        {"load_average_1min_before": 4.0, "load_average_1min_after": 2.1, "cores": 2}
    )
    old = report._load_sentence({"load_average_1min": 2.1, "cores": 2})  # an older record
    assert "0.5" in calm and "2.1" in calm and calm != busy and "4.0" in busy
    assert "2.1" in old and old != calm


def test_baseline_convergence_is_judged_against_the_seed_spread():
    early = [0.1, 0.3, 0.5, 0.6, 0.62]
    flat = [_run("none", 0, early + [0.66, 0.665, 0.66]), _run("none", 1, early + [0.69, 0.7, 0.7])]
    result = _result(flat + [_run("cfsam", 0, early + [0.6] * 3)], ["none", "cfsam"], [0, 1])
    c = report.baseline_convergence(report.comparison_summary(result))
    # The last quarter of 8 epochs: epochs 6-8 (the mean AP50 moves 0.675 -> 0.6825 -> 0.68).
    assert (c["from_epoch"], c["to_epoch"], c["converged"]) == (6, 8, True)
    assert c["moved"] == pytest.approx(0.0075) and c["spread"] == pytest.approx(0.04 / 2**0.5)
    assert "had stopped improving: its mean AP50 moved by 0.007" in (
        report._convergence_sentence(result)
    )
    claims = report._comparison_claims(report.comparison_summary(result), result["settings"])
    assert "converged detectors, but small ones" in claims[-1]

    rising = [
        _run("none", 0, early + [0.5, 0.58, 0.66]),
        _run("none", 1, early + [0.54, 0.62, 0.7]),
    ]
    result["runs"][:2] = rising
    c = report.baseline_convergence(report.comparison_summary(result))
    assert c["converged"] is False and c["moved"] == pytest.approx(0.16)
    assert "not converged at this budget" in report._convergence_sentence(result)
    claims = report._comparison_claims(report.comparison_summary(result), result["settings"])
    assert "early training only" in claims[-1]

    result["runs"][:2] = rising[:1]
    assert report.baseline_convergence(report.comparison_summary(result))["converged"] is None
    assert "no spread to judge" in report._convergence_sentence(result)


def test_unfinished_runs_and_few_seeds_are_said():
    runs = [_run("none", 0, [0.1, 0.2]), _run("none", 1, [0.1, 0.3]), _run("se", 0, [0.1, 0.2])]
    result = _result(runs, ["none", "se"], [0, 1])
    result["missing"] = [{"variant": "se", "seed": 1}]
    text = report._unfinished_sentence(result)
    assert "**Not finished yet: se seed 1** (3 of 4 runs)" in text
    assert "**Fewer than 3 seeds for none (2), se (1)**" in text
    result["missing"] = []
    assert "Not finished" not in report._unfinished_sentence(result)
