"""The SSD300 recipe and the schedules in recipes/configs.py."""

import subprocess
import sys

from recipe_helpers import RECIPES
from recipe_helpers import REPO
from recipe_helpers import subprocess_env


def test_ssd_schedules_are_the_published_iterations():
    import configs

    voc, coco = configs.SSD300_VOC, configs.SSD300_COCO
    assert (voc.iterations, tuple(voc.decay_at), voc.batch_size, voc.learning_rate) == (
        120_000,
        (80_000, 100_000),
        32,
        1e-3,
    )
    assert (coco.iterations, tuple(coco.decay_at)) == (240_000, (160_000, 200_000))
    assert voc.at_batch(32) == (120_000, [80_000, 100_000])
    # The same images at another batch: twice the steps at batch 16, a third at 96.
    assert voc.at_batch(16) == (240_000, [160_000, 200_000])
    assert voc.at_batch(96) == (40_000, [26_667, 33_333])
    assert coco.at_batch(64) == (120_000, [80_000, 100_000])


def test_ssd300_recipe_defaults_follow_ssd():
    import configs
    import ssd300

    args = ssd300.parser().parse_args([])
    assert (args.backbone, args.input_size, args.optimizer, args.lr, args.batch_size) == (
        "vgg16",
        300,
        "sgd",
        1e-3,
        32,
    )
    assert (args.weight_decay, args.warmup_epochs, args.clipnorm, args.schedule) == (
        5e-4,
        0.0,
        0.0,
        "step",
    )
    assert args.backbone_weights == "imagenet" and args.loc_weight == 1.0
    assert configs.SSD300_DATASETS["voc"]["anchor_preset"] == "voc"
    assert configs.SSD300_DATASETS["coco"]["anchor_preset"] == "coco"


def test_missing_dataset_is_one_line(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            f"{RECIPES}/ssd300.py",
            "--dataset",
            "voc",
            "--data-dir",
            str(tmp_path / "nowhere"),
            "--out",
            str(tmp_path / "run"),
            "--backbone-weights",
            "none",
        ],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "VOC2007 not found under" in line
