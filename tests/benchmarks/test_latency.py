import json
import os
import shlex

import harness
import latency
import pytest

from cfsam_keras.export.predictors import PREDICTOR_KINDS


def _record(results, gflops=None, **settings):
    settings = dict(
        dict(
            runs=5,
            warmup=1,
            peak_size=64,
            quick=False,
            runtimes=[r.title for r in latency.RUNTIMES],
            threads_flag=None,
            score_threshold=0.01,
            max_detections=200,
        ),
        **settings,
    )
    return {
        "results": results,
        "gflops": gflops or {},
        "settings": settings,
        "machine": {
            "cpu": "cpu",
            "cores": 2,
            "load_average_1min_before": 1.0,
            "load_average_1min_after": 1.5,
        },
    }


def test_runtime_list():
    titles = [r.title for r in latency.RUNTIMES]
    assert len(set(titles)) == len(titles) and harness.PEAK not in titles
    assert all(r.kind in PREDICTOR_KINDS and callable(r.export) for r in latency.RUNTIMES)
    assert set(latency.QUICK_RUNTIMES) <= set(titles)


def test_table_has_every_model_and_ratios_to_keras():
    table = latency.latency_table(
        _record(
            {
                "m": {"Keras": {"median_ms": 100.0}, "TFLite fp32": {"median_ms": 50.0}},
                "n": {"Keras": {"median_ms": 10.0}, "TFLite int8": {"median_ms": 2.5}},
            }
        )
    )
    lines = table.splitlines()
    assert lines[0] == "| model | Keras (ms) | TFLite fp32 (ms) | TFLite int8 (ms) |"
    assert lines[2] == "| m | 100.0 | 50.0 (0.50x) |  |"
    assert lines[3] == "| n | 10.0 |  | 2.5 (0.25x) |"


def test_roofline_rates_leave_out_the_integer_runtime():
    text = latency.latency_roofline(
        _record(
            {
                "a": {
                    "Keras": {"median_ms": 500.0},
                    "TFLite fp32": {"median_ms": 400.0},
                    "TFLite int8": {"median_ms": 100.0},
                    harness.PEAK: {"gflop_per_s": 200.0},
                },
                "b": {"Keras": {"median_ms": 1.0}, harness.PEAK: {"gflop_per_s": 1.0}},
            },
            gflops={"a": 50.0},
        )
    )
    # 50 GFLOP in 0.5 s = 100 GFLOP/s, half the peak; in 0.4 s 125 GFLOP/s.
    assert "Keras 100 (50%)" in text and "TFLite fp32 125 (62%)" in text
    assert "TFLite int8" not in text and "b:" not in text  # no FLOP count for b


def test_command_for_reproduces_the_settings():
    record = _record(
        {}, runs=7, warmup=2, peak_size=512, threads_flag=1, runtimes=["Keras", "TFLite int8"]
    )
    argv = shlex.split(latency.command_for(record, "my out"))
    assert argv[:2] == ["python", "benchmarks/latency.py"]
    args = latency.parser().parse_args(argv[2:])
    assert (args.out, args.runs, args.warmup, args.peak_size, args.threads, args.quick) == (
        "my out",
        7,
        2,
        512,
        1,
        False,
    )
    assert args.runtimes == "Keras,TFLite int8"
    quick = latency.command_for(_record({}, quick=True, runtimes=list(latency.QUICK_RUNTIMES)), "o")
    args = latency.parser().parse_args(shlex.split(quick)[2:])
    assert args.quick and args.runtimes is None


def test_bad_flags_are_one_line_errors(tmp_path):
    with pytest.raises(SystemExit, match="--runtimes: unknown \\['CoreML'\\]"):
        latency.main(["--runtimes", "Keras,CoreML", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--runs"):
        latency.main(["--quick", "--runs", "0", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--threads"):
        latency.main(["--quick", "--threads", "0", "--out", str(tmp_path)])


def test_quick_run_writes_json_and_markdown(tmp_path):
    assert latency.main(["--quick", "--runs", "2", "--out", str(tmp_path)]) == 0
    with open(tmp_path / "latency.json") as f:
        record = json.load(f)
    (row,) = record["results"].values()
    assert set(row) == set(latency.QUICK_RUNTIMES) | {harness.PEAK}
    assert all(v["median_ms"] > 0 and len(v["times_ms"]) == 2 for v in row.values())
    assert row[harness.PEAK]["gflop_per_s"] > 0
    assert row["TFLite fp32"]["threads"] == row["ONNX Runtime"]["threads"] == os.cpu_count()
    assert all(g > 0 for g in record["gflops"].values())
    assert record["settings"]["runs"] == 2 and record["machine"]["cores"] == os.cpu_count()
    text = (tmp_path / "latency.md").read_text()
    assert text == latency.latency_table(record) + "\n\n" + latency.latency_note(record) + "\n"
    assert latency.parser().parse_args(shlex.split(record["command"])[2:]).runs == 2
