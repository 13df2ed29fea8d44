"""encode must trace in tf.data, and decode / MultiBoxLoss run, with KERAS_BACKEND=jax.

A subprocess, because the Keras backend is fixed when keras is first imported.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cfsam_keras.anchors import ssd300_default_boxes
from cfsam_keras.losses import MultiBoxLoss
from cfsam_keras.models import decode
from cfsam_keras.targets import encode

BOXES = [[0.1, 0.2, 0.4, 0.6], [0.5, 0.5, 0.9, 0.95], [0.3, 0.3, 0.3, 0.5]]
CLASSES = [3, 0, 5]

SCRIPT = textwrap.dedent(
    """
    import json
    import keras
    assert keras.backend.backend() == "jax", keras.backend.backend()
    import numpy as np
    import tensorflow as tf
    from cfsam_keras.anchors import ssd300_default_boxes
    from cfsam_keras.losses import MultiBoxLoss
    from cfsam_keras.models import decode
    from cfsam_keras.targets import encode

    boxes = np.array(%r, np.float32)
    classes = np.array(%r, np.int32)
    anchors = ssd300_default_boxes("voc")
    dataset = tf.data.Dataset.from_tensor_slices([0, 1, 3]).map(
        lambda n: encode(tf.constant(boxes)[:n],
                         tf.constant(classes)[:n], anchors)).batch(3)
    targets = next(iter(dataset)).numpy()
    decoded = np.asarray(decode(targets[:, :, :4], anchors))
    rng = np.random.default_rng(0)
    y_pred = rng.normal(size=(3, 8732, 4 + 6 + 1)).astype(np.float32)
    loss = MultiBoxLoss(num_classes=6)(targets, y_pred)
    print("RESULT" + json.dumps({
        "targets_sum": targets.sum(axis=(1, 2)).tolist(),
        "positives": (targets[..., 4] > 0).sum(axis=1).tolist(),
        "decoded_head": decoded[2][targets[2, :, 4] > 0][:5].tolist(),
        "loss": float(loss),
        "loss_type": type(loss).__module__,
    }))
    """
) % (BOXES, CLASSES)


@pytest.mark.slow
def test_targets_and_loss_under_the_jax_backend():
    pytest.importorskip("jax")
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT") :])

    anchors = ssd300_default_boxes("voc")
    boxes = np.array(BOXES, np.float32)
    targets = np.stack([encode(boxes[:n], CLASSES[:n], anchors).numpy() for n in (0, 1, 3)])
    np.testing.assert_allclose(result["targets_sum"], targets.sum(axis=(1, 2)), rtol=1e-5)
    assert result["positives"] == (targets[..., 4] > 0).sum(axis=1).tolist()
    assert result["positives"][0] == 0 and result["positives"][2] > result["positives"][1] > 0
    decoded = np.asarray(decode(targets[:, :, :4], anchors))
    np.testing.assert_allclose(
        result["decoded_head"], decoded[2][targets[2, :, 4] > 0][:5], atol=1e-6
    )
    y_pred = np.random.default_rng(0).normal(size=(3, 8732, 4 + 6 + 1)).astype(np.float32)
    expected = float(MultiBoxLoss(num_classes=6)(targets, y_pred))
    assert result["loss"] == pytest.approx(expected, rel=1e-5)
    assert result["loss_type"].startswith("jax")
