"""The demo recipe: flags, its dataset, end-to-end runs and resuming after a kill."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from recipe_helpers import DEMO
from recipe_helpers import REPO
from recipe_helpers import TINY
from recipe_helpers import backup_arrays
from recipe_helpers import subprocess_env
from recipe_helpers import write_tiny_dataset


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("shapes"))


def _history(out):
    from cfsam_keras.training import read_history

    return read_history(os.path.join(out, "history.jsonl"))


def test_demo_help_lists_its_flags():
    result = subprocess.run(
        [sys.executable, DEMO, "--help"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    for word in ("--out", "--epochs", "--train-images", "--config", "--attention"):
        assert word in result.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "0"], "--epochs: must be a positive int, got 0"),
        (["--strategy", "warp"], "--strategy: invalid choice"),
        (["--bn-momentum", "1.5"], "--bn-momentum: must be in [0.0, 1.0), got 1.5"),
        (["--lr", "inf"], "--lr: must be a finite number, got inf"),
        (["--eval-images", "-1"], "--eval-images: must be an int >= 0, got -1"),
        (["--loc-weight", "-1"], "--loc-weight: must be"),
    ],
)
def test_bad_flags_give_one_line_before_any_work(argv, message, capsys):
    import demo

    with pytest.raises(SystemExit) as exit_info:
        demo.main(argv)
    assert exit_info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], lines


def test_bn_momentum_reaches_every_batch_norm_and_is_saved(tmp_path):
    import keras

    from cfsam_keras.models import SSD300
    from cfsam_keras.training import set_batch_norm_momentum

    model = SSD300(
        3,
        backbone="mobilenet_v2",
        attention="cfsam",
        input_size=64,
        backbone_kwargs={"alpha": 0.35},
        attention_kwargs={"embed_dim": 16, "num_heads": 2},
    )

    def momenta(m):
        return [
            x.momentum
            for x in m._flatten_layers()
            if isinstance(x, keras.layers.BatchNormalization)
        ]

    assert {0.999, 0.99} <= set(momenta(model))  # MobileNetV2's, and ours (CFSAM, extra blocks)
    count = set_batch_norm_momentum(model, 0.9)
    assert count == len(momenta(model)) > 50 and set(momenta(model)) == {0.9}
    # The model's own BatchNorm layers keep it in a .keras file (those inside CFSAM are
    # rebuilt from CFSAM's config; resuming sets it again on the rebuilt model).
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    top = [x.momentum for x in reloaded.layers if isinstance(x, keras.layers.BatchNormalization)]
    assert len(top) > 50 and set(top) == {0.9}


def test_json_config_gives_defaults_and_flags_win(tmp_path):
    import common
    import demo

    path = tmp_path / "run.json"
    path.write_text(json.dumps({"epochs": 3, "mixed_precision": True, "lr": 0.01}))
    args = common.parse_args(demo.parser(), ["--config", str(path), "--lr", "0.5"])
    assert (args.epochs, args.mixed_precision, args.lr) == (3, True, 0.5)
    path.write_text(json.dumps({"epochz": 3}))
    with pytest.raises(SystemExit):
        common.parse_args(demo.parser(), ["--config", str(path)])


@pytest.mark.parametrize("native", [True, False])
def test_mixed_precision_none_is_decided_by_the_cpu_and_recorded(tmp_path, monkeypatch, native):
    import common
    import demo
    import keras

    from cfsam_keras.training import strategy as strategy_module

    assert common.parse_args(demo.parser(), []).mixed_precision is False
    for argv, expected in ((["--mixed-precision"], True), (["--no-mixed-precision"], False)):
        assert common.parse_args(demo.parser(), argv).mixed_precision is expected
    monkeypatch.setattr(strategy_module, "cpu_computes_bfloat16", lambda: native)
    config = tmp_path / "flags.json"
    config.write_text(json.dumps({"mixed_precision": None}))
    args = common.parse_args(demo.parser(), ["--config", str(config), "--out", str(tmp_path / "r")])
    assert args.mixed_precision is None
    try:
        common.setup(args)
        assert keras.mixed_precision.global_policy().name == (
            "mixed_bfloat16" if native else "float32"
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    # The run folder records what was used, not "decided by the machine".
    assert json.load(open(tmp_path / "r" / "config.json"))["mixed_precision"] is native


def test_final_metrics_reuse_the_last_epochs_evaluation_only(monkeypatch):
    import types

    import demo

    monkeypatch.setattr(demo, "evaluate_detector", lambda *a, **k: "evaluated now")
    args = types.SimpleNamespace(epochs=16, eval_images=0)
    callback = types.SimpleNamespace(last_epoch=15, last_results="epoch 16's")
    assert demo.final_evaluation(callback, args, None, None) == ("epoch 16's", True)
    for last_epoch, eval_images in ((11, 0), (None, 0), (15, 100)):
        callback.last_epoch, args.eval_images = last_epoch, eval_images
        assert demo.final_evaluation(callback, args, None, None) == ("evaluated now", False)
    assert demo.final_evaluation(None, args, None, None) == ("evaluated now", False)


def test_loc_weight_reaches_the_loss():
    import common
    import demo

    from cfsam_keras.models import SSD300

    model = SSD300(
        3,
        backbone="small_vgg",
        attention="none",
        input_size=64,
        backbone_kwargs={"widths": (4, 4, 4, 4)},
    )
    for argv, alpha in (([], 1.0), (["--loc-weight", "2.5"], 2.5)):
        args = common.parse_args(demo.parser(), argv)
        common.compile_model(model, args, total_steps=10)
        assert model.loss.alpha == alpha


@pytest.mark.parametrize(
    "flags, wrong", [("--lr inf", "--lr"), ("--eval-images -1", "--eval-images")]
)
def test_bad_numbers_are_refused_from_the_command_line_and_from_config(
    tmp_path, capsys, flags, wrong
):
    import common
    import demo

    name, value = flags.split()
    with pytest.raises(SystemExit):
        common.parse_args(demo.parser(), [name, value])
    assert wrong in capsys.readouterr().err
    path = tmp_path / "run.json"
    path.write_text(json.dumps({name[2:].replace("-", "_"): float(value)}))
    with pytest.raises(SystemExit):
        common.parse_args(demo.parser(), ["--config", str(path)])
    assert wrong in capsys.readouterr().err


def _optimizer_iterations(backup_folder):
    return int(backup_arrays(backup_folder)["optimizer/vars/0"])


def _kill_in_epoch_two(cmd, log_path, steps):
    """Runs ``cmd`` and SIGKILLs it between two steps of its epoch 2."""
    log = open(log_path, "w")
    run = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=subprocess_env(), cwd=REPO
    )
    try:
        # Keras prints "Epoch 2/N" only after every callback of epoch 1 has run, and
        # the progress bar shows 1/steps once the first step of epoch 2 is done.
        deadline = time.monotonic() + 600  # a loaded 2-core machine traces slowly
        while time.monotonic() < deadline and run.poll() is None:
            _, started, rest = log_path.read_text().partition("Epoch 2/")
            if started and f"1/{steps}" in rest:
                run.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        run.wait(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        log.close()
    assert run.returncode == -signal.SIGKILL, (
        "the first run was not killed in epoch 2:\n" + log_path.read_text()[-3000:]
    )


@pytest.mark.slow
def test_demo_killed_in_epoch_two_resumes_and_runs_to_the_end(tmp_path, shapes_dir):
    """The demo end to end on a tiny budget, in two runs: the first is killed with
    SIGKILL inside epoch 2; started again, the second resumes from epoch 1's backup
    and goes on to evaluation, the exports and their scores, pictures and report."""
    out = str(tmp_path / "run")
    steps = 4
    cmd = [sys.executable, DEMO, "--out", out, "--data-dir", shapes_dir, "--epochs", "3"]
    cmd += ["--steps-per-epoch", str(steps), *TINY]
    _kill_in_epoch_two([*cmd, "--eval-every", "0"], tmp_path / "first.log", steps)
    # Killed inside epoch 2: only epoch 1 is on disk, and the checkpoint is whole.
    assert [r["epoch"] for r in _history(out)] == [1]
    assert sorted(os.listdir(os.path.join(out, "backup"))) == ["epoch-00001"]
    assert _optimizer_iterations(os.path.join(out, "backup", "epoch-00001")) == steps
    import keras

    keras.saving.load_model(os.path.join(out, "checkpoints", "last.keras"))

    # Started again, evaluating every epoch, exporting at the end and deterministic (flags a
    # resumed run may change; op determinism refuses the ops it cannot make deterministic).
    cmd = [*cmd[: cmd.index("--skip-export")], *cmd[cmd.index("--skip-export") + 1 :]]
    second = subprocess.run(
        [*cmd, "--eval-every", "1", "--deterministic"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        cwd=REPO,
        timeout=900,
    )
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "Epoch 1/3" not in second.stdout and "Epoch 2/3" in second.stdout
    rows = _history(out)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert "val_AP50" not in rows[0] and all("val_AP50" in r and r["loss"] > 0 for r in rows[1:])
    assert sorted(os.listdir(os.path.join(out, "backup"))) == ["epoch-00002", "epoch-00003"]
    # Epoch 1's optimizer state was restored: 3 epochs of steps in all, not 2.
    assert _optimizer_iterations(os.path.join(out, "backup", "epoch-00003")) == 3 * steps
    for name in (
        "checkpoints/last.keras",
        "checkpoints/best.keras",
        "history.csv",
        "config.json",
        "report.md",
        "loss.png",
        "metrics.json",
        "predictions/val_1.png",
        "export/1/saved_model.pb",
        "export/demo_float32.tflite",
        "export/demo_int8.tflite",
        "export/demo.onnx",
    ):
        assert os.path.exists(os.path.join(out, name)), name
    assert os.listdir(os.path.join(out, "logs"))
    report = open(os.path.join(out, "report.md")).read()
    assert re.search(
        r"Machine: \d+ CPU cores; load average \(1, 5 and 15 minutes\) at the start of "
        r"training [\d.]+ / [\d.]+ / [\d.]+; at its end [\d.]+ / [\d.]+ / [\d.]+; "
        r"TF_CPU_ALLOCATOR_USE_BFC true\.",  # the recipes pool TensorFlow's CPU memory
        report,
    )
    assert json.load(open(os.path.join(out, "config.json")))["deterministic"] is True
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert 0.0 <= metrics["AP50"] <= 1.0
    # Evaluated after every epoch: the final numbers are epoch 3's, not a second pass.
    assert "evaluation after epoch 3, made during training" in report
    assert metrics["AP50"] == pytest.approx(rows[-1]["val_AP50"])
    for key in ("AP50 TFLite float32", "AP50 TFLite int8", "AP50 ONNX"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert abs(metrics["AP50 ONNX"] - metrics["AP50"]) <= 0.005

    from cfsam_keras.data import BUILTIN_CLASSES
    from cfsam_keras.models import model_config

    # Plain load_model, as every command loads it: the optimizer and its schedule too.
    model = keras.saving.load_model(os.path.join(out, "checkpoints", "last.keras"))
    assert type(model.optimizer).__name__ == "AdamW"
    assert model.output_shape[-1] == 4 + 5 + 1
    assert model_config(model)["class_names"] == list(BUILTIN_CLASSES)


def test_demo_dataset_is_written_once_and_rewritten_when_its_settings_change(tmp_path):
    import common

    folder = str(tmp_path / "shapes")
    common.builtin_dataset(folder, 6, 2, 64, 0)
    annotations = os.path.join(folder, "instances_train.json")
    first = os.stat(annotations).st_mtime_ns
    os.utime(annotations, ns=(first - 10**9, first - 10**9))  # an older file, to see a rewrite
    train, _ = common.builtin_dataset(folder, 6, 2, 64, 0)
    assert len(train) == 6
    assert os.stat(annotations).st_mtime_ns == first - 10**9  # reused, not written again
    common.builtin_dataset(folder, 7, 2, 64, 0)
    assert os.stat(annotations).st_mtime_ns > first - 10**9
    with open(annotations) as f:
        assert len(json.load(f)["images"]) == 7
