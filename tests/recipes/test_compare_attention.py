"""The attention comparison recipe: its settings, refusals and a quick end-to-end run."""

import json
import os

import pytest


def test_bad_variant_and_missing_baseline_are_refused(tmp_path):
    import compare_attention

    with pytest.raises(ValueError, match="unknown \\['sse'\\]"):
        compare_attention.main(["--out", str(tmp_path), "--variants", "none,sse"])
    with pytest.raises(ValueError, match="baseline 'none'"):
        compare_attention.main(["--out", str(tmp_path), "--variants", "cfsam,se"])


def test_settings_come_from_configs():
    import compare_attention
    import configs

    voc, preset, _, cfsam = compare_attention.dataset_settings("voc")
    assert preset == "voc" and cfsam == {}  # the faithful default CFSAM
    assert {k: voc[k] for k in configs.SSD300} == dict(configs.SSD300, eval_every=1)
    builtin, preset, backbone_kwargs, cfsam = compare_attention.dataset_settings("builtin")
    assert preset == configs.DEMO_MODEL["anchor_preset"]
    assert backbone_kwargs == configs.DEMO_MODEL["backbone_kwargs"]
    assert "kv_pool_size" not in cfsam and cfsam["embed_dim"] == 64
    variants = compare_attention.variants(cfsam, 4)
    assert variants["cfsam_kv4"] == ("cfsam", dict(cfsam, kv_pool_size=4))


def test_run_grid_reads_every_kept_run_first_and_refuses_other_settings_early(tmp_path):
    import compare_attention

    def record(name, seed):
        return {"variant": name, "seed": seed, "final": {"AP50": 0.5, "AP": 0.3}, "wall_seconds": 1}

    runs = str(tmp_path)
    grid = [(n, s) for s in (0, 1) for n in ("none", "cfsam")]
    settings = {"lr": 0.002}
    compare_attention.atomic_write_json(
        dict(record("cfsam", 1), settings=settings), os.path.join(runs, "cfsam_seed1.json")
    )
    trained, written = [], []

    def train(name, seed):
        if (name, seed) == ("cfsam", 0):
            raise KeyboardInterrupt
        trained.append((name, seed))
        return record(name, seed)

    def write(records, missing):
        written.append(([(r["variant"], r["seed"]) for r in records], missing))

    with pytest.raises(KeyboardInterrupt):
        compare_attention.run_grid(runs, grid, settings, train, write)
    # A run kept from an earlier start is in compare.json from the start, wherever it
    # stands in the grid, and the pairs left are named as missing.
    assert written[0][0] == [("cfsam", 1)]
    assert written[-1][0] == [("none", 0), ("cfsam", 1)]
    assert written[-1][1] == [{"variant": "cfsam", "seed": 0}, {"variant": "none", "seed": 1}]
    assert trained == [("none", 0)]
    # Collecting trains nothing: the finished runs, and the rest named as missing.
    assert len(compare_attention.run_grid(runs, grid, settings, None, write)) == 2
    assert written[-1][0] == [("none", 0), ("cfsam", 1)] and len(written[-1][1]) == 2
    # Started again: only what is missing trains; the records come back in grid order.
    trained.clear()
    records = compare_attention.run_grid(runs, grid, settings, lambda n, s: record(n, s), write)
    assert [(r["variant"], r["seed"]) for r in records] == grid
    assert written[-1][1] == [] and all(r["settings"] == settings for r in records)
    # A kept run made with other flags stops the comparison before anything trains.
    with pytest.raises(
        ValueError, match=r"none_seed0\.json: a run made with other settings \(lr\)"
    ):
        compare_attention.run_grid(runs, grid, {"lr": 0.01}, train, write)
    assert trained == []


@pytest.mark.slow
def test_quick_comparison_end_to_end(tmp_path, monkeypatch):
    import compare_attention

    out = tmp_path / "compare"
    train_one = compare_attention.train_one

    def interrupted(args, name, *rest, **kwargs):
        if name == "cfsam":
            raise KeyboardInterrupt
        return train_one(args, name, *rest, **kwargs)

    # Interrupted in its second run, the comparison leaves the first one's result.
    monkeypatch.setattr(compare_attention, "train_one", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compare_attention.main(["--quick", "--out", str(out)])
    with open(out / "compare.json") as f:
        result = json.load(f)
    assert [r["variant"] for r in result["runs"]] == ["none"]
    assert result["missing"] == [{"variant": "cfsam", "seed": 0}]
    before = (out / "runs" / "none_seed0.json").stat().st_mtime_ns
    # Collecting rewrites compare.json from the kept runs, with the load averages of the
    # runs' invocation, not its own.
    result["runs"], result["machine"]["cpu"] = [], "the training run's"
    (out / "compare.json").write_text(json.dumps(result))
    assert compare_attention.main(["--quick", "--out", str(out), "--collect"]) == 0
    with open(out / "compare.json") as f:
        collected = json.load(f)
    assert collected["missing"] == [{"variant": "cfsam", "seed": 0}]
    assert [r["variant"] for r in collected["runs"]] == ["none"]
    assert collected["machine"]["cpu"] == "the training run's"
    assert (out / "runs" / "none_seed0.json").stat().st_mtime_ns == before

    # Started again, the finished run is kept, not trained again, and the rest is run.
    monkeypatch.setattr(compare_attention, "train_one", train_one)
    assert compare_attention.main(["--quick", "--out", str(out)]) == 0
    assert (out / "runs" / "none_seed0.json").stat().st_mtime_ns == before
    with open(out / "compare.json") as f:
        result = json.load(f)
    assert [r["variant"] for r in result["runs"]] == ["none", "cfsam"] and result["missing"] == []
    for run in result["runs"]:
        assert [e["epoch"] for e in run["epochs"]] == [1, 2]
        assert all(0.0 <= e["AP50"] <= 1.0 for e in run["epochs"])
        assert run["steps_per_epoch"] == 2
    assert result["runs"][1]["params"] > result["runs"][0]["params"]

    # A kept run made with other training flags is refused, not mixed into the table.
    with pytest.raises(
        ValueError, match=r"none_seed0\.json: a run made with other settings \(lr\)"
    ):
        compare_attention.main(["--quick", "--out", str(out), "--lr", "0.01"])
    assert json.load(open(out / "runs" / "none_seed0.json"))["settings"]["lr"] != 0.01
