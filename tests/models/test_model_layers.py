"""The Keras-layer contract (tests/layer_testing.py) of the layers in cfsam_keras.models."""

import numpy as np
import pytest
from layer_testing import run_layer_test

from cfsam_keras.anchors import anchor_config
from cfsam_keras.anchors import boxes_per_location
from cfsam_keras.anchors import default_boxes
from cfsam_keras.models import NMS_METHODS
from cfsam_keras.models import CaffePreprocessing
from cfsam_keras.models import DecodePredictions
from cfsam_keras.models import PerClassNMS
from cfsam_keras.models import SSDPredictions

CONFIG = anchor_config("voc", 64, [8, 4, 2, 1, 1, 1])
K = boxes_per_location(CONFIG["aspect_ratios"])
A = len(default_boxes(**CONFIG))
RNG = np.random.default_rng(0)


def test_ssd_predictions():
    sizes = CONFIG["feature_sizes"]
    maps = [RNG.normal(size=(2, s, s, k * 4)).astype("float32") for s, k in zip(sizes, K)]
    maps += [RNG.normal(size=(2, s, s, k * 4)).astype("float32") for s, k in zip(sizes, K)]
    run_layer_test(
        SSDPredictions,
        {
            "num_classes": 3,
            "anchor_config": CONFIG,
            "class_names": ["a", "b", "c"],
            "variances": (0.1, 0.2),
        },
        maps,
        expected_output_shape=(2, A, 8),
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=0,
    )


def test_ssd_predictions_refuses_names_that_do_not_fit():
    with pytest.raises(ValueError, match="2 names but the model has 3"):
        SSDPredictions(3, CONFIG, class_names=["a", "b"])
    with pytest.raises(ValueError, match="one-line"):
        SSDPredictions(2, CONFIG, class_names=["a", "b\nc"])


def test_decode_predictions():
    run_layer_test(
        DecodePredictions,
        {"anchor_config": CONFIG, "variances": (0.1, 0.2)},
        RNG.normal(size=(2, A, 8)).astype("float32"),
        expected_output_shape=((2, A, 4), (2, A, 4)),
        expected_num_trainable_weights=0,
        mixed_precision_output_dtype=("float32", "compute"),
    )


@pytest.mark.parametrize("method", NMS_METHODS)
def test_per_class_nms(method):
    boxes = np.sort(RNG.uniform(size=(2, 50, 2, 2)), axis=2).transpose(0, 1, 3, 2).reshape(2, 50, 4)
    logits = RNG.normal(size=(2, 50, 4))
    scores = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    run_layer_test(
        PerClassNMS,
        {"score_threshold": 0.05, "max_detections": 10, "method": method},
        {"boxes": boxes.astype("float32"), "scores": scores.astype("float32")},
        expected_output_shape=((2, 10, 4), (2, 10), (2, 10), (2,)),
        expected_output_dtype=("float32", "float32", "int32", "int32"),
        mixed_precision_output_dtype=("float32", "float32", "int32", "int32"),
        # float16 scores change which boxes survive; TF's NMS ops do not compile with XLA.
        mixed_precision_tolerance=None,
        run_jit_check=False,
    )


def test_caffe_preprocessing():
    run_layer_test(
        CaffePreprocessing,
        {},
        RNG.uniform(0, 255, size=(2, 8, 8, 3)).astype("float32"),
        expected_output_shape=(2, 8, 8, 3),
        mixed_precision_tolerance=(0.01, 1.0),
    )
