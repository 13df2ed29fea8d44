"""``benchmarks/anchor_coverage.py``: best IoUs against hand-computed ones; the tables' counts."""

import json

import anchor_coverage
import numpy as np
import pytest


def test_best_overlaps_are_the_ious_with_the_best_default_box():
    anchors = np.array([[0.5, 0.5, 0.2, 0.2], [0.25, 0.25, 0.5, 0.5]])  # (cx, cy, w, h)
    boxes = np.array(
        [
            [0.4, 0.4, 0.6, 0.6],  # the first default box itself
            [0.0, 0.0, 0.5, 0.25],  # half of the second: IoU 0.5
            [0.45, 0.45, 0.55, 0.55],  # a quarter of the first's area: IoU 0.25
            [0.9, 0.9, 1.0, 1.0],  # touches none
        ]
    )
    best, positives = anchor_coverage.best_overlaps(boxes, anchors)
    np.testing.assert_allclose(best, [1.0, 0.5, 0.25, 0.0], atol=1e-12)
    np.testing.assert_array_equal(positives, [1, 1, 0, 0])


def test_candidates_keep_the_models_grid_and_change_only_the_sizes():
    from cfsam_keras.anchors import anchor_config

    base = anchor_config("coco", 192, [24, 12, 6, 3, 2, 1])
    for name, (preset, sizes) in anchor_coverage.CANDIDATES.items():
        config = anchor_coverage.candidate_config(base, preset, sizes)
        assert config["steps"] == base["steps"], name
        assert config["feature_sizes"] == base["feature_sizes"], name
        if sizes is None:
            assert config == anchor_config(preset, 192, [24, 12, 6, 3, 2, 1])
        else:
            np.testing.assert_allclose(config["min_sizes"], np.array(sizes[0]) * 192)
    # The first-level candidate is coco's sizes at 192 px but for its first level.
    coco = base["min_sizes"]
    first = anchor_coverage.candidate_config(
        base, *anchor_coverage.CANDIDATES["coco first level 0.052"]
    )
    np.testing.assert_allclose(first["min_sizes"][1:], coco[1:], rtol=1e-3)
    np.testing.assert_allclose(first["max_sizes"][1:], base["max_sizes"][1:], rtol=1e-3)
    assert first["min_sizes"][0] < coco[0]


@pytest.mark.slow
def test_main_writes_every_candidates_bins_over_all_objects(tmp_path):
    from cfsam_keras.data import write_builtin_dataset

    write_builtin_dataset(str(tmp_path / "data"), train=0, val=6, seed=0, image_size=96)
    out = tmp_path / "out"
    flags = ["--data-dir", str(tmp_path / "data"), "--split", "val", "--candidates", "coco,voc"]
    assert anchor_coverage.main([*flags, "--out", str(out)]) == 0
    record = json.loads((out / "anchor_coverage.json").read_text())
    annotations = json.loads((tmp_path / "data" / "instances_val.json").read_text())
    objects = len(annotations["annotations"])
    assert list(record["candidates"]) == ["coco", "voc"] and objects > 0
    for bins in record["candidates"].values():
        assert bins["all"]["objects"] == objects
        assert sum(row["objects"] for name, row in bins.items() if name != "all") == objects
        assert 0.0 < bins["all"]["mean_best_iou"] <= 1.0
    table = (out / "anchor_coverage.md").read_text()
    assert table.count("| coco") >= 2 and "| voc |" in table


def test_unknown_candidate_and_missing_split_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        anchor_coverage.main(["--candidates", "coco,nope"])
    assert "--candidates: ['nope']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        anchor_coverage.main(["--data-dir", str(tmp_path), "--out", str(tmp_path / "o")])
    assert "instances_train.json does not exist" in capsys.readouterr().err
