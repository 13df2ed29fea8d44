"""MultiBoxLoss under tf.distribute: normalised by the GLOBAL number of positives.

Runs in a subprocess because the two logical CPU devices must be configured
before TensorFlow initialises its devices.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, os
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from cfsam_keras.losses import MultiBoxLoss

    rng = np.random.default_rng(0)
    batch, anchors, classes = 6, 12, 2
    y_true = np.zeros((batch, anchors, 5), np.float32)
    # Replica 0 gets images 0-2 (1 positive), replica 1 images 3-5 (6 positives).
    for b, n in enumerate([1, 0, 0, 2, 3, 1]):
        rows = rng.choice(anchors, n, replace=False)
        y_true[b, rows, :4] = rng.normal(size=(n, 4))
        y_true[b, rows, 4] = rng.integers(1, classes + 1, n)
    x = rng.normal(size=(batch, anchors, 3)).astype(np.float32)

    def build():
        keras.utils.set_random_seed(7)
        model = keras.Sequential(
            [keras.Input((anchors, 3)), keras.layers.Dense(4 + classes + 1)])
        model.compile(optimizer=keras.optimizers.SGD(0.5),
                      loss=MultiBoxLoss(classes))
        return model

    single = build()
    single_loss = single.fit(x, y_true, batch_size=batch, epochs=1, shuffle=False,
                             verbose=0).history["loss"][0]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        mirrored = build()
    mirrored_loss = mirrored.fit(x, y_true, batch_size=batch, epochs=1,
                                 shuffle=False, verbose=0).history["loss"][0]

    # The loss alone, replica by replica: the sum of the replicas' values is
    # the single-device loss (Keras divides each by the number of replicas).
    loss_fn = MultiBoxLoss(classes)
    y_pred = np.asarray(single.predict(x, verbose=0))
    full = float(loss_fn(y_true, y_pred))
    def step(ctx_y_true, ctx_y_pred):
        return loss_fn(ctx_y_true, ctx_y_pred)
    dataset = tf.data.Dataset.from_tensor_slices((y_true, y_pred)).batch(batch)
    dist = strategy.experimental_distribute_dataset(dataset)
    per_replica = strategy.run(step, args=next(iter(dist)))
    replica_values = [float(v) for v in strategy.experimental_local_results(per_replica)]

    weights = [np.abs(a - b).max() for a, b in
               zip(single.get_weights(), mirrored.get_weights())]
    moved = max(np.abs(a - b).max() for a, b in
                zip(single.get_weights(), build().get_weights()))
    print("RESULT" + json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "single_loss": single_loss, "mirrored_loss": mirrored_loss,
        "max_weight_diff": float(max(weights)), "moved": float(moved),
        "full": full, "replica_values": replica_values,
    }))
    """
)


@pytest.mark.slow
def test_two_replicas_match_one_device_on_the_same_global_batch():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT") :])
    assert result["replicas"] == 2
    assert result["moved"] > 1e-3  # the step changed the weights ...
    assert result["max_weight_diff"] < 1e-5  # ... identically on 1 and 2 devices
    assert result["mirrored_loss"] == pytest.approx(result["single_loss"], rel=1e-5)
    assert sum(result["replica_values"]) == pytest.approx(result["full"], rel=1e-5)
    # The replicas hold different numbers of positives, so normalising each
    # replica by its own count would not have matched.
    assert result["replica_values"][0] != pytest.approx(result["replica_values"][1])
