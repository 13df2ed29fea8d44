"""EvaluationCallback adds val_* keys to the epoch logs seen by later callbacks."""

import csv
import math
import os

import keras
import numpy as np
import pytest
from evaluation_fakes import eval_dataset
from evaluation_fakes import perfect_detector

from cfsam_keras.evaluation import EvaluationCallback

KEYS = [
    "val_AP",
    "val_AP50",
    "val_AP75",
    "val_AP_small",
    "val_AP_medium",
    "val_AP_large",
    "val_voc_map",
    "val_voc_map_area",
]


def _tiny_fit(callbacks, epochs):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.zeros((4, 2), np.float32)
    return model.fit(x, x[:, :1], epochs=epochs, verbose=0, callbacks=callbacks)


def test_adds_val_keys_for_later_callbacks(tmp_path):
    evaluation = EvaluationCallback(
        perfect_detector,
        eval_dataset(),
        every_n_epochs=2,
        num_classes=3,
        log_dir=str(tmp_path / "logs"),
    )
    csv_path = str(tmp_path / "log.csv")
    history = _tiny_fit([evaluation, keras.callbacks.CSVLogger(csv_path)], epochs=2)
    # Epoch 1 is not an evaluation epoch: NaN, so the CSV columns exist from the start.
    assert math.isnan(history.history["val_AP50"][0])
    assert history.history["val_AP50"][1] == pytest.approx(1.0)
    assert history.history["val_voc_map"][1] == pytest.approx(1.0)
    for key in KEYS:
        assert key in history.history
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    assert float(rows[1]["val_AP"]) == pytest.approx(1.0)
    assert os.listdir(tmp_path / "logs" / "evaluation")  # TensorBoard event file
    assert evaluation.last_results["coco"]["AR100"] == pytest.approx(1.0)
    assert evaluation.last_epoch == 1  # the epoch whose weights last_results scored
    _tiny_fit([evaluation], epochs=3)  # evaluates after epoch 2 only, not 3
    assert evaluation.last_epoch == 1
    evaluation.evaluate()  # a direct call is of no epoch
    assert evaluation.last_epoch is None


def test_argument_validation():
    with pytest.raises(ValueError, match="every_n_epochs"):
        EvaluationCallback(perfect_detector, eval_dataset(), every_n_epochs=0)
    with pytest.raises(ValueError, match="val_data is required"):
        EvaluationCallback(perfect_detector)
