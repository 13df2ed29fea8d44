"""Distributed training: MirroredStrategy on 2 logical CPUs, and 2 worker processes."""

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from recipe_helpers import DEMO
from recipe_helpers import REPO
from recipe_helpers import TINY
from recipe_helpers import backup_arrays
from recipe_helpers import subprocess_env
from recipe_helpers import write_tiny_dataset

MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from cfsam_keras.losses import MultiBoxLoss
    from cfsam_keras.models import SSD300
    from cfsam_keras.optimizers import build_optimizer
    from cfsam_keras.training import get_strategy

    def make():
        model = SSD300(2, backbone="mobilenet_v2", attention="cfsam", input_size=64,
                       backbone_kwargs={"alpha": 0.35, "extra_channels": (32, 32, 16, 16)},
                       attention_kwargs={"embed_dim": 32, "num_heads": 2})
        # Per-replica BatchNorm statistics differ from whole-batch ones by design;
        # frozen BatchNorm isolates what this test checks: the loss normalisation.
        for layer in model._flatten_layers(include_self=False):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
        return model

    keras.utils.set_random_seed(0)
    initial = make().get_weights()
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (4, 64, 64, 3)).astype("float32")
    num_anchors = make().output_shape[1]
    y = np.zeros((4, num_anchors, 5), "float32")
    y[..., :4] = rng.normal(0, 0.5, (4, num_anchors, 4))
    # Replica 0 gets images 0-1 (21 positives), replica 1 images 2-3 (1 positive).
    for image, count in enumerate((12, 9, 1, 0)):
        y[image, rng.choice(num_anchors, count, replace=False), 4] = rng.integers(1, 3, count)

    def one_step(strategy):
        with strategy.scope():
            model = make()
            model.set_weights(initial)
            model.compile(build_optimizer("sgd", 0.05, weight_decay=5e-4), loss=MultiBoxLoss(2))
        data = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
        model.fit(data, epochs=1, verbose=0)
        return model.get_weights(), strategy.num_replicas_in_sync

    single, n1 = one_step(get_strategy("one_device"))
    mirrored, n2 = one_step(get_strategy("mirrored"))
    worst = max(float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a))), 1e-12))
                for a, b in zip(single, mirrored))
    moved = max(float(np.max(np.abs(a - w))) for a, w in zip(single, initial))
    print(json.dumps({"replicas": [n1, n2], "worst_relative": worst, "moved": moved}))
    """
)


@pytest.mark.slow
def test_mirrored_step_matches_single_device_step():
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=500,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == [1, 2]
    assert report["moved"] > 1e-4  # the step did change the weights
    assert report["worst_relative"] < 1e-4, report


FIT_SCOPE_SCRIPT = """
import json
import numpy as np
import tensorflow as tf
strategy = tf.distribute.MultiWorkerMirroredStrategy()  # one local worker (no TF_CONFIG)
import keras
from keras.src.backend.tensorflow import trainer as tf_trainer
from cfsam_keras.training import fit_scope
keras.utils.set_random_seed(0)
with strategy.scope():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse", metrics=["mae"])
before = [w.copy() for w in model.get_weights()]
data = tf.data.Dataset.from_tensor_slices(
    (np.ones((8, 3), "float32"), np.ones((8, 2), "float32"))
).batch(4)
original = tf_trainer.reduce_per_replica
with fit_scope(model, strategy, data):
    inside = tf_trainer.reduce_per_replica is not original
    history = model.fit(data, epochs=1, verbose=0, shuffle=False)
print(json.dumps({
    "patched_inside": inside,
    "restored": tf_trainer.reduce_per_replica is original
    and "_maybe_symbolic_build" not in vars(model),
    "moved": float(max(np.abs(a - b).max() for a, b in zip(model.get_weights(), before))),
    "logs": sorted(history.history),
}))
"""


def test_fit_scope_trains_under_multi_worker_strategy_and_restores_keras():
    # One local worker (no TF_CONFIG): the fit_scope path runs end to end, in a
    # fresh process because collectives are configured at TensorFlow start-up.
    result = subprocess.run(
        [sys.executable, "-c", FIT_SCOPE_SCRIPT],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["patched_inside"] and report["restored"], report
    assert report["moved"] > 1e-4 and report["logs"] == ["loss", "mae"], report


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


# Keras 3 keeps BatchNormalization's moving statistics per replica (they are
# not all-reduced), so they are the one state the workers may hold apart.
_BN_MOVING_STATISTICS = re.compile(r"batch_normalization(_\d+)?/vars/[23]$")


@pytest.mark.slow
def test_multi_worker_two_processes_end_with_same_weights(tmp_path):
    data_dir = write_tiny_dataset(tmp_path / "shapes")
    out = str(tmp_path / "run")
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    # A constant rate without warm-up, so both optimizer steps move the weights.
    cmd = [
        sys.executable,
        DEMO,
        "--out",
        out,
        "--data-dir",
        data_dir,
        "--strategy",
        "multi_worker",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
        "--eval-every",
        "0",
        "--schedule",
        "constant",
        "--warmup-epochs",
        "0",
        *TINY,
    ]
    procs, logs = [], []
    deadline = time.monotonic() + 600  # both processes trace the model on a shared 2-core machine
    try:
        for index in range(2):
            config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            log = open(tmp_path / f"worker{index}.log", "w")
            logs.append(log)
            procs.append(
                subprocess.Popen(
                    cmd,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=REPO,
                    env=subprocess_env(TF_CONFIG=json.dumps(config)),
                )
            )
        for proc in procs:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()
    outputs = [open(tmp_path / f"worker{i}.log").read()[-3000:] for i in range(2)]
    assert [p.returncode for p in procs] == [0, 0], outputs
    chief = backup_arrays(os.path.join(out, "backup", "epoch-00001"))
    worker = backup_arrays(os.path.join(out, "backup", "worker-1", "epoch-00001"))
    assert chief.keys() == worker.keys() and len(chief) > 100
    # Both took the same two steps, and the steps changed the optimizer state.
    assert int(chief["optimizer/vars/0"]) == int(worker["optimizer/vars/0"]) == 2
    moments = [name for name in chief if name.startswith("optimizer/") and chief[name].size > 1]
    assert sum(bool(np.any(chief[name] != 0)) for name in moments) > len(moments) / 2
    compared = [name for name in chief if not _BN_MOVING_STATISTICS.search(name)]
    assert len(compared) > len(chief) / 2
    # Each worker saw other images (auto-sharding): equal weights and optimizer
    # state show that the gradients were all-reduced.
    for name in compared:
        np.testing.assert_allclose(chief[name], worker[name], rtol=1e-5, atol=1e-6, err_msg=name)
    # Only the chief writes checkpoints, the history and the report.
    assert os.path.exists(os.path.join(out, "checkpoints", "last.keras"))
    assert os.path.exists(os.path.join(out, "report.md"))
    with open(os.path.join(out, "history.jsonl")) as f:
        (row,) = [json.loads(line) for line in f if line.strip()]
    assert row["epoch"] == 1 and np.isfinite(row["loss"])
