"""The fine-tuning recipe: a trained detector continued with and without CFSAM."""

import json

import pytest
from recipe_helpers import write_tiny_dataset


def _baseline(tmp_path, attention="none"):
    """A small SSD of the tiny dataset's classes, saved as a recipe checkpoint would be."""
    import common

    from cfsam_keras.models import SSD300

    data_dir = write_tiny_dataset(tmp_path / "data")
    train, _ = common.builtin_dataset(data_dir, 24, 8, 96, 0)
    model = SSD300(
        class_names=train.class_names,
        backbone="small_vgg",
        attention=attention,
        input_size=96,
        backbone_kwargs={"widths": (8, 16, 16, 16)},
        attention_kwargs={"embed_dim": 16, "num_heads": 2} if attention == "cfsam" else None,
    )
    path = str(tmp_path / f"{attention}.keras")
    model.save(path)
    return data_dir, path


FLAGS = ["--train-images", "24", "--val-images", "8", "--image-size", "96", "--batch-size", "4"]


@pytest.mark.slow
def test_both_arms_train_from_the_same_detector(tmp_path):
    import finetune_attention

    data_dir, weights = _baseline(tmp_path)
    out = tmp_path / "finetune"
    argv = ["--from", weights, "--data-dir", data_dir, "--out", str(out), "--seeds", "0"]
    argv += FLAGS + ["--epochs", "1", "--steps-per-epoch", "2"]
    assert finetune_attention.main(argv) == 0
    with open(out / "compare.json") as f:
        result = json.load(f)
    assert [r["variant"] for r in result["runs"]] == ["none", "cfsam"]
    assert 0.0 <= result["start"]["AP50"] <= 1.0
    assert result["start_run"] is None  # the baseline was not written by a recipe
    none, cfsam = result["runs"]
    assert [e["epoch"] for e in cfsam["epochs"]] == [1]
    assert cfsam["params"] > none["params"]
    assert result["settings"]["lr"] == pytest.approx(2e-4)  # configs.FINETUNE
    assert "| cfsam | 1 |" in (out / "compare.md").read_text()
    assert (out / "convergence.png").stat().st_size > 0


def test_refusals_name_the_flag(tmp_path):
    import finetune_attention

    data_dir, with_cfsam = _baseline(tmp_path, attention="cfsam")
    argv = ["--data-dir", data_dir, "--out", str(tmp_path / "o"), "--seeds", "0"] + FLAGS
    with pytest.raises(ValueError, match="already has the attention module"):
        finetune_attention.main(argv + ["--from", with_cfsam])
    with pytest.raises(ValueError, match="--from .*missing.keras: expected an existing .keras"):
        finetune_attention.main(argv + ["--from", str(tmp_path / "missing.keras")])
    with pytest.raises(ValueError, match="--attention: pick the module"):
        finetune_attention.main(argv + ["--from", with_cfsam, "--attention", "none"])
