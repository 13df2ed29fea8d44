"""``benchmarks/train_step.py``: its NumPy targets, a quick run per backend, the peer's path."""

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import train_step

from cfsam_keras.anchors import ssd300_default_boxes
from cfsam_keras.targets import encode

BENCHMARKS = os.path.dirname(os.path.abspath(train_step.__file__))


def test_numpy_targets_are_what_encode_gives():
    anchors = ssd300_default_boxes("voc")
    batch = train_step.synthetic_batch(anchors, 4, 20, 32, seed=3)
    assert batch["images"].shape == (4, 32, 32, 3) and batch["targets"].shape == (4, 8732, 5)
    for boxes, labels, targets in zip(batch["boxes"], batch["labels"], batch["targets"]):
        expected = encode(boxes, labels - 1, anchors).numpy()
        np.testing.assert_array_equal(targets[:, 4], expected[:, 4])
        np.testing.assert_allclose(targets[:, :4], expected[:, :4], atol=1e-4)
    positives = (batch["targets"][..., 4] > 0).sum(1)
    assert positives.min() >= 1 and positives.mean() > 5
    # A box too small for any default box to reach the IoU threshold still takes its best one.
    tiny = np.array([[0.50, 0.50, 0.52, 0.53], [0.1, 0.1, 0.6, 0.5]], np.float32)
    targets = train_step.numpy_targets(tiny, [4, 2], anchors)
    np.testing.assert_allclose(targets, encode(tiny, [3, 1], anchors).numpy(), atol=1e-4)
    assert (targets[:, 4] == 4).sum() == 1


class _FakeTensor(np.ndarray):
    """Just enough of a torch tensor for `TorchvisionTimers`."""

    def permute(self, *axes):
        return self.transpose(axes)

    def contiguous(self):
        return self.copy()


class _Loss:
    def __init__(self, calls):
        self.calls = calls

    def __add__(self, other):
        return self

    __radd__ = __add__

    def backward(self):
        self.calls.append("backward")


class _FakeSSD:
    def __init__(self, calls, num_classes):
        self.calls, self.num_classes = calls, num_classes
        self.backbone = lambda x: calls.append(("forward", x.shape)) or {"a": x}
        self.head = lambda features: calls.append("head")

    def train(self):
        self.calls.append("train mode")

    def eval(self):
        self.calls.append("eval mode")

    def parameters(self):
        return []

    def __call__(self, images, targets):
        self.calls.append(("train", len(images), images[0].shape, float(np.max(images[0]))))
        self.calls.append(("boxes", [t["boxes"].copy() for t in targets]))
        return {"loc": _Loss(self.calls), "cls": _Loss(self.calls)}


def _fake_torch(calls):
    """Fake ``torch`` and ``torchvision`` modules recording what the peer does."""
    import contextlib

    torch = types.ModuleType("torch")
    torch.manual_seed = lambda seed: None
    torch.from_numpy = lambda a: np.asarray(a).view(_FakeTensor)
    torch.float32, torch.bfloat16, torch.float16 = "f32", "bf16", "f16"
    torch.autocast = lambda device, dtype, enabled: contextlib.nullcontext()
    torch.no_grad = contextlib.nullcontext

    class Scaler:
        def __init__(self, device, enabled):
            pass

        def scale(self, loss):
            return loss

        def step(self, optimizer):
            calls.append("step")

        def update(self):
            pass

    torch.amp = types.SimpleNamespace(GradScaler=Scaler)
    torch.optim = types.SimpleNamespace(
        SGD=lambda params, lr, momentum: types.SimpleNamespace(zero_grad=lambda: None)
    )
    detection = types.SimpleNamespace(
        ssd300_vgg16=lambda weights, weights_backbone, num_classes: _FakeSSD(calls, num_classes)
    )
    torchvision = types.ModuleType("torchvision")
    torchvision.models = types.SimpleNamespace(detection=detection)
    return torch, torchvision


def test_quick_run_under_tensorflow_with_the_peer(tmp_path, monkeypatch, capsys):
    calls = []
    torch, torchvision = _fake_torch(calls)
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torchvision", torchvision)
    monkeypatch.setattr(train_step, "torchvision_available", lambda: True)
    # The peer runs beside the SSD300-VGG16 rows only: a tiny VGG16 model (268 is
    # its smallest input) would still be slow, so the quick model stands in for one.
    monkeypatch.setattr(train_step, "_comparable", lambda variant: True)
    argv = ["--quick", "--out", str(tmp_path), "--batch-size", "2"]
    assert train_step.main(argv) == 0
    record = json.loads((tmp_path / "train_step_tensorflow_float32.json").read_text())
    rows = record["rows"]
    assert list(rows) == ["tiny cfsam", train_step.TORCHVISION]
    ours, peer = rows["tiny cfsam"], rows[train_step.TORCHVISION]
    assert ours["flops"] > 1e6 and ours["positives_per_image"] >= 1
    assert ours["train_images_per_s"] == pytest.approx(2 / ours["train_s"])
    assert ours["train_gflops_per_s"] == pytest.approx(
        3 * ours["flops"] * 2 / ours["train_s"] / 1e9
    )
    assert (
        0
        < ours["train_peak_fraction"]
        == pytest.approx(ours["train_gflops_per_s"] / record["peak_gflops"]["train"])
    )
    assert ours["train_vs_torchvision"] == pytest.approx(peer["train_s"] / ours["train_s"])
    # The peer trained on our images (NCHW, in [0, 1]) and boxes (in pixels).
    train = [c for c in calls if isinstance(c, tuple) and c[0] == "train"]
    assert train and train[0][1:3] == (2, (3, 64, 64)) and train[0][3] <= 1.0
    boxes = next(c[1] for c in calls if isinstance(c, tuple) and c[0] == "boxes")
    assert 1 < max(float(b.max()) for b in boxes) <= 64
    assert "step" in calls and ("forward", (1, 3, 64, 64)) in calls
    table = (tmp_path / "train_step_tensorflow_float32.md").read_text()
    assert "| tiny cfsam |" in table and train_step.TORCHVISION in table
    assert "Intel" in table or record["machine"]["cpu"] in table
    assert "python benchmarks/train_step.py --quick" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--models", "nope"], "--models: unknown ['nope']"),
        (["--backend", "jax", "--xla", "off"], "--xla off"),
        (["--rounds", "0"], "--rounds must be >= 1"),
    ],
)
def test_bad_flags_end_with_one_line(argv, message, capsys):
    with pytest.raises(SystemExit):
        train_step.parse(argv)
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in err


@pytest.mark.slow
def test_quick_run_under_jax_imports_no_tensorflow(tmp_path):
    pytest.importorskip("jax")
    script = (
        f"import sys; sys.path.insert(0, {BENCHMARKS!r}); import train_step;"
        f"train_step.main(['--quick', '--out', {str(tmp_path)!r}, '--warmup', '0',"
        " '--models', 'tiny none']);"
        "print('TENSORFLOW' if 'tensorflow' in sys.modules else 'NO TENSORFLOW')"
    )
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "NO TENSORFLOW"
    record = json.loads((tmp_path / "train_step_jax_float32.json").read_text())
    row = record["rows"]["tiny none"]
    assert record["settings"]["xla"] and row["flops_counter"] == "XLA cost analysis"
    assert row["flops"] > 1e6 and row["train_images_per_s"] > 0
