import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from cfsam_keras.anchors import anchor_config
from cfsam_keras.anchors import default_boxes
from cfsam_keras.anchors import ssd300_default_boxes
from cfsam_keras.models import ATTENTIONS
from cfsam_keras.models import SSD300
from cfsam_keras.models import model_config
from cfsam_keras.models import model_default_boxes

# A small, fast configuration for the CPU tests.
SMALL = dict(backbone="mobilenet_v2", input_size=128, backbone_kwargs={"alpha": 0.35})
SMALL_ATTENTION_KWARGS = {
    "none": None,
    "cfsam": {"embed_dim": 32, "num_heads": 2},
    "se": None,
    "cbam": None,
    "eca": None,
}


def _images(batch, size, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, size, size, 3)).astype("float32")


def _randomize(model, seed=0):
    """Gives every weight a distinct random value, so copies can be checked."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(
            rng.normal(0, 0.05, v.shape).astype("float32") + (1.0 if "variance" in v.path else 0.0)
        )


def test_vgg16_voc_output_shape_parameters_and_default_boxes():
    model = SSD300(num_classes=20, attention="none")
    assert model.count_params() == 26_285_486
    outputs = model(_images(2, 300))
    assert tuple(outputs.shape) == (2, 8732, 25)
    assert model.get_layer("predictions").get_config()["num_classes"] == 20
    np.testing.assert_array_equal(model_default_boxes(model), ssd300_default_boxes("voc"))
    # VGG16 layers carry keras.applications' names and shapes (so ImageNet weights load).
    assert model.get_layer("block5_conv3").kernel.shape == (3, 3, 512, 512)
    assert model.get_layer("fc6").dilation_rate == (6, 6)
    assert model.get_layer("conv4_3_norm").output.shape[1:] == (38, 38, 512)


def test_vgg16_coco_preset_default_boxes():
    model = SSD300(num_classes=80, attention="none", anchor_preset="coco")
    assert model.output_shape == (None, 8732, 85)
    np.testing.assert_array_equal(model_default_boxes(model), ssd300_default_boxes("coco"))


@pytest.mark.parametrize(
    "size, feature_sizes", [(128, [8, 4, 2, 1, 1, 1]), (160, [10, 5, 3, 2, 1, 1])]
)
def test_mobilenet_default_boxes_follow_feature_maps(size, feature_sizes):
    model = SSD300(3, attention="none", **{**SMALL, "input_size": size})
    heads = [model.get_layer(f"box_head_{i}").output.shape[1] for i in range(6)]
    assert heads == feature_sizes
    expected = default_boxes(**anchor_config("voc", size, feature_sizes))
    np.testing.assert_array_equal(model_default_boxes(model), expected)
    assert model(_images(1, size)).shape == (1, len(expected), 4 + 3 + 1)


def test_small_vgg_source_maps_default_boxes_and_round_trip(tmp_path):
    model = SSD300(
        3,
        backbone="small_vgg",
        attention="cfsam",
        input_size=192,
        attention_kwargs={"embed_dim": 16, "num_heads": 2},
        backbone_kwargs={"widths": (8, 16, 16, 32)},
    )
    heads = [model.get_layer(f"box_head_{i}").output.shape[1] for i in range(6)]
    assert heads == [24, 12, 6, 3, 2, 1]  # strides 8 .. 256, as SSD300's first maps
    expected = default_boxes(**anchor_config("voc", 192, heads))
    np.testing.assert_array_equal(model_default_boxes(model), expected)
    assert model.get_layer("conv3_2").output.shape[-1] == 16
    assert model.get_layer("extra4_2").output.shape[1:] == (1, 1, 16)
    _randomize(model)
    images = _images(2, 192)
    path = tmp_path / "small_vgg.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(reloaded(images), model(images), atol=1e-5)


def test_small_vgg_refuses_imagenet_and_bad_widths():
    kwargs = dict(num_classes=3, backbone="small_vgg", attention="none", input_size=64)
    with pytest.raises(ValueError, match="'small_vgg' backbone has no ImageNet weights"):
        SSD300(**kwargs, backbone_weights="imagenet")
    with pytest.raises(ValueError, match="widths must be four ints"):
        SSD300(**kwargs, backbone_kwargs={"widths": (8, 16)})


def test_small_vgg_weights_file_must_hold_the_whole_model(tmp_path):
    kwargs = dict(backbone="small_vgg", attention="none", input_size=64)
    path = str(tmp_path / "other.weights.h5")
    SSD300(4, **kwargs).save_weights(path)
    with pytest.raises(ValueError, match="do not fit this SSD model"):
        SSD300(3, **kwargs, backbone_weights=path)


def test_preprocessing_matches_keras_applications():
    images = _images(2, 128)
    vgg = SSD300(2, attention="none").get_layer("preprocessing")
    np.testing.assert_allclose(
        vgg(images), keras.applications.vgg16.preprocess_input(images.copy()), atol=1e-4
    )
    mobile = SSD300(2, attention="none", **SMALL).get_layer("preprocessing")
    np.testing.assert_allclose(
        mobile(images), keras.applications.mobilenet_v2.preprocess_input(images.copy()), atol=1e-5
    )


def test_preprocessing_of_the_peers_is_selectable_and_stored(tmp_path):
    images = _images(2, 128)
    # torchvision: Normalize(mean, std=1/255) on images / 255; ssd.pytorch: BGR - (104, 117, 123).
    mean = np.array([0.48235, 0.45882, 0.40784], np.float32)
    expected = {
        "torchvision": (images / 255.0 - mean) / (1 / 255.0),
        "ssd.pytorch": images[..., ::-1] - np.array([104.0, 117.0, 123.0], np.float32),
    }
    for mode, reference in expected.items():
        model = SSD300(2, attention="none", preprocessing=mode, **SMALL)
        np.testing.assert_allclose(model.get_layer("preprocessing")(images), reference, atol=1e-4)
        path = str(tmp_path / "m.keras")
        model.save(path)
        reloaded = keras.saving.load_model(path, safe_mode=True)
        assert reloaded.get_layer("preprocessing").get_config()["mode"] == mode
    with pytest.raises(ValueError, match="Unknown preprocessing 'bgr'.*torchvision"):
        SSD300(2, attention="none", preprocessing="bgr", **SMALL)


@pytest.mark.slow
@pytest.mark.parametrize("attention", ATTENTIONS)
def test_every_attention_saves_and_reloads_in_safe_mode(attention, tmp_path):
    model = SSD300(
        3, attention=attention, attention_kwargs=SMALL_ATTENTION_KWARGS[attention], **SMALL
    )
    _randomize(model)
    images = _images(2, 128)
    expected = model(images)
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(reloaded(images), expected, atol=1e-5)
    assert model_config(reloaded) == model_config(model)
    np.testing.assert_array_equal(model_default_boxes(reloaded), model_default_boxes(model))


@pytest.mark.slow
def test_vgg16_cfsam_round_trip(tmp_path):
    model = SSD300(20, attention="cfsam")
    images = _images(1, 300)
    expected = model(images)
    path = tmp_path / "ssd300_cfsam.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(reloaded(images), expected, atol=1e-4)
    np.testing.assert_array_equal(model_default_boxes(reloaded), ssd300_default_boxes("voc"))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"backbone": "resnet50"}, "Unknown backbone 'resnet50'.*mobilenet_v2.*vgg16"),
        ({"attention": "nonlocal"}, "Unknown attention 'nonlocal'.*cfsam"),
        ({"backbone_weights": "imagenet21k"}, "backbone_weights='imagenet21k'"),
        (
            {"backbone_weights": "/nonexistent/ssd.weights.h5"},
            "/nonexistent/ssd.weights.h5.*does not exist",
        ),
        ({"backbone_weights": 3}, "backbone_weights must be"),
        ({"backbone_kwargs": {"depth": 2}}, "depth"),
        ({"num_classes": 0}, "num_classes"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SSD300(**{"num_classes": 3, "attention": "none", **SMALL, **kwargs})


def test_too_small_vgg16_input_raises():
    with pytest.raises(ValueError, match="input_size=200 is too small"):
        SSD300(3, attention="none", input_size=200)


@pytest.mark.slow
def test_forward_pass_under_jax_backend():
    code = textwrap.dedent(
        """
        import numpy as np
        import keras
        assert keras.backend.backend() == "jax"
        from cfsam_keras.models import SSD300, DecodePredictions, model_config
        model = SSD300(3, backbone="mobilenet_v2", input_size=128, attention="cfsam",
                       backbone_kwargs={"alpha": 0.35},
                       attention_kwargs={"embed_dim": 32, "num_heads": 2})
        images = np.random.default_rng(0).uniform(0, 255, (2, 128, 128, 3)).astype("float32")
        outputs = model.predict(images, verbose=0)  # one jit-compiled forward pass
        boxes, scores = DecodePredictions(model_config(model)["anchor_config"])(outputs)
        assert outputs.shape == (2, 390, 8) and np.isfinite(np.asarray(outputs)).all()
        assert boxes.shape == (2, 390, 4)
        np.testing.assert_allclose(np.asarray(scores).sum(-1), 1.0, atol=1e-5)
        print("ok")
        """
    )
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    # XLA's CPU optimisations make compiling each weight initializer take seconds; the
    # test checks results, not speed.
    env["XLA_FLAGS"] = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"

    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
