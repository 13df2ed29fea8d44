import importlib.metadata
import json
import os
import subprocess
import sys

import harness
import pytest

BENCHMARKS = os.path.dirname(os.path.abspath(harness.__file__))


def test_rounds_interleave_and_every_call_runs_each_round():
    order = []
    calls = {name: (lambda name=name: order.append(name)) for name in ("a", "b", "c")}
    result = harness.interleaved_rounds(calls, runs=3, warmup=2)
    assert order == ["a", "b", "c"] * 5  # two warm-up rounds, then three timed ones
    assert list(result) == ["a", "b", "c"]
    for timing in result.values():
        assert len(timing["times_s"]) == len(timing["cpu_times_s"]) == 3
        assert timing["min_s"] == min(timing["times_s"]) <= timing["median_s"]
        assert timing["median_s"] <= max(timing["times_s"])


def test_prepare_runs_untimed_before_each_call_and_its_result_is_released():
    log = []

    class Prepared:
        def __init__(self, name):
            self.name = name
            log.append(f"prepare {name}")

        def __del__(self):
            log.append(f"release {self.name}")

    calls = {"a": lambda p: log.append(f"call a with {p.name}"), "b": lambda: log.append("call b")}
    harness.interleaved_rounds(calls, runs=1, warmup=1, prepare={"a": lambda: Prepared("a")})
    assert log == ["prepare a", "call a with a", "release a", "call b"] * 2


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="runs"):
        harness.interleaved_rounds({"a": lambda: None}, runs=0)
    with pytest.raises(ValueError, match="warmup"):
        harness.interleaved_rounds({"a": lambda: None}, runs=1, warmup=-1)
    with pytest.raises(ValueError, match="non-empty dict"):
        harness.interleaved_rounds({}, runs=1)
    with pytest.raises(ValueError, match=r"\['a'\] are not callable"):
        harness.interleaved_rounds({"a": 3}, runs=1)
    with pytest.raises(ValueError, match="prepare"):
        harness.interleaved_rounds({"a": lambda: None}, runs=1, prepare={"b": lambda: None})


def test_matmul_peak_counts_and_validates():
    product, flops = harness.matmul_peak(8)
    assert flops == 2 * 8**3 and product() is None
    with pytest.raises(ValueError, match="size"):
        harness.matmul_peak(0)


def test_machine_imports_none_of_the_libraries_it_names():
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import harness; "
        "record = harness.machine(load_before=0.5); "
        "print(json.dumps([record, [m for m in harness.LIBRARIES if m in sys.modules]]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, BENCHMARKS],
        check=True,
        capture_output=True,
        text=True,
        env=dict(os.environ, KERAS_BACKEND="jax"),
    )
    record, imported = json.loads(out.stdout)
    assert imported == []
    assert record["load_average_1min_before"] == 0.5 and record["cores"] == os.cpu_count()
    for module in ("keras", "tensorflow", "jax"):
        assert record[module] == importlib.metadata.version(module)
    assert "torch" not in record or record["torch"] == importlib.metadata.version("torch")


def test_fill_counts_load_text_and_write_results(tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--warmup", type=int)
    args = parser.parse_args(["--warmup", "0"])
    harness.fill_counts(parser, args, {"rounds": 3, "warmup": 1})
    assert (args.rounds, args.warmup) == (3, 0)
    with pytest.raises(SystemExit):
        harness.fill_counts(parser, parser.parse_args(["--rounds", "0"]), {"rounds": 3})
    assert "--rounds must be >= 1" in capsys.readouterr().err
    record = {"load_average_1min_before": 1.25, "load_average_1min_after": None}
    assert harness.load_text(record) == "1.2/n/a"
    harness.write_results(str(tmp_path / "out"), "x", {"a": 1}, "| t |\n")
    assert (tmp_path / "out" / "x.json").read_text().startswith("{")
    assert (tmp_path / "out" / "x.md").read_text() == "| t |\n"
    assert capsys.readouterr().out == "| t |\n\n"
