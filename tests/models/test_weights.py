"""Starting weights of SSD300 (cfsam_keras.models.weights): ImageNet with SSD's reduced
fc6 / fc7, weights files of keras.applications, of ssd.pytorch and of the whole model."""

import keras
import numpy as np
import pytest

from cfsam_keras.models import SSD300
from cfsam_keras.models.weights import reference_backbone

SMALL = dict(backbone="mobilenet_v2", input_size=128, backbone_kwargs={"alpha": 0.35})
VGG_CONVS = [f"block{b}_conv{i}" for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)) for i in
             range(1, n + 1)]  # fmt: skip


def _randomize(model, seed=0):
    """Gives every weight a distinct random value, so copies can be checked."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(
            rng.normal(0, 0.05, v.shape).astype("float32") + (1.0 if "variance" in v.path else 0.0)
        )


def _decimated(fc1_kernel, fc1_bias, fc2_kernel, fc2_bias):
    """SSD's fc6 / fc7 written out by index: taps 0, 3, 6 and filters 0, 4, 8, ..."""
    taps, filters = [0, 3, 6], np.arange(0, 4096, 4)
    grid = fc1_kernel.reshape(7, 7, 512, 4096)  # Flatten of a channels-last 7 x 7 x 512
    fc6 = grid[np.ix_(taps, taps, np.arange(512), filters)]
    fc7 = fc2_kernel[np.ix_(filters, filters)].reshape(1, 1, 1024, 1024)
    return (fc6, fc1_bias[filters]), (fc7, fc2_bias[filters])


def _assert_vgg16_with_top_loaded(model, reference):
    for name in VGG_CONVS:
        for ours, theirs in zip(
            model.get_layer(name).get_weights(), reference.get_layer(name).get_weights()
        ):
            np.testing.assert_array_equal(ours, theirs)
    fc6, fc7 = _decimated(
        *reference.get_layer("fc1").get_weights(), *reference.get_layer("fc2").get_weights()
    )
    for name, expected in (("fc6", fc6), ("fc7", fc7)):
        for ours, theirs in zip(model.get_layer(name).get_weights(), expected):
            np.testing.assert_array_equal(ours, theirs)


@pytest.fixture(scope="module")
def vgg16_with_top(tmp_path_factory):
    """A seeded keras.applications.VGG16(include_top=True) and its .weights.h5 file."""
    keras.utils.set_random_seed(11)
    reference = keras.applications.VGG16(include_top=True, weights=None)
    path = str(tmp_path_factory.mktemp("vgg") / "vgg16_top.weights.h5")
    reference.save_weights(path)
    return reference, path


@pytest.mark.slow
def test_vgg16_file_with_top_gives_ssd_reduced_fc(vgg16_with_top):
    reference, path = vgg16_with_top
    model = SSD300(3, attention="none", backbone_weights=path)
    _assert_vgg16_with_top_loaded(model, reference)


@pytest.mark.slow
def test_imagenet_is_vgg16_with_top_and_reduced_fc(monkeypatch, vgg16_with_top):
    reference, _ = vgg16_with_top
    original = keras.applications.VGG16
    asked = []

    def fake(**kwargs):  # keras.applications' download, without the download
        asked.append(kwargs)
        return reference if kwargs["weights"] == "imagenet" else original(**kwargs)

    monkeypatch.setattr(keras.applications, "VGG16", fake)
    model = SSD300(3, attention="none", backbone_weights="imagenet")
    assert [a["include_top"] for a in asked if a["weights"] == "imagenet"] == [True]
    _assert_vgg16_with_top_loaded(model, reference)


def test_mobilenet_imagenet_weights_are_copied_by_layer_name(monkeypatch):
    original = keras.applications.MobileNetV2
    store = []

    def fake(**kwargs):
        if kwargs["weights"] is None:  # the SSD backbone itself
            return original(**kwargs)
        assert kwargs["weights"] == "imagenet" and kwargs["include_top"] is False
        model = original(**{**kwargs, "weights": None})
        _randomize(model, seed=7)
        store.append(model)
        return model

    monkeypatch.setattr(keras.applications, "MobileNetV2", fake)
    model = SSD300(3, attention="none", backbone_weights="imagenet", **SMALL)
    (reference,) = store
    copied = 0
    for layer in reference.layers:
        if not layer.weights:
            continue
        for ours, theirs in zip(model.get_layer(layer.name).get_weights(), layer.get_weights()):
            np.testing.assert_array_equal(ours, theirs)
            copied += 1
    assert copied == len(reference.weights) > 20


@pytest.mark.parametrize("backbone", ["vgg16", "mobilenet_v2"])
def test_backbone_file_without_top_is_copied_by_layer_name(tmp_path, backbone):
    kwargs = SMALL if backbone == "mobilenet_v2" else dict(backbone="vgg16")
    reference = reference_backbone(backbone, None, alpha=0.35)
    _randomize(reference, seed=3)
    path = str(tmp_path / "backbone.weights.h5")
    reference.save_weights(path)
    model = SSD300(3, attention="none", backbone_weights=path, **kwargs)
    for layer in reference.layers:
        if not layer.weights:
            continue
        for ours, theirs in zip(model.get_layer(layer.name).get_weights(), layer.get_weights()):
            np.testing.assert_array_equal(ours, theirs)


def test_ssd_pytorch_vgg16_reducedfc_loads(tmp_path):
    # vgg16_reducedfc.pth's keys: ssd.pytorch's vgg ModuleList, conv i at index i.
    indices = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28, 31, 33)
    shapes = [(64, 3), (64, 64), (128, 64), (128, 128), (256, 128), (256, 256), (256, 256),
              (512, 256), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512),
              (1024, 512), (1024, 1024)]  # fmt: skip
    rng = np.random.default_rng(5)
    state = {}
    for i, (out, inp) in zip(indices, shapes):
        k = 1 if i == 33 else 3
        state[f"{i}.weight"] = rng.normal(0, 0.05, (out, inp, k, k)).astype(np.float32)
        state[f"{i}.bias"] = rng.normal(0, 0.05, out).astype(np.float32)
    path = str(tmp_path / "vgg16_reducedfc.npz")
    np.savez(path, **state)
    model = SSD300(3, attention="none", backbone_weights=path)
    patch = rng.normal(size=(1, 3, 3, 1024)).astype(np.float32)
    for i, name in zip(indices, VGG_CONVS + ["fc6", "fc7"]):
        layer = model.get_layer(name)
        weight, bias = state[f"{i}.weight"], state[f"{i}.bias"]
        np.testing.assert_array_equal(layer.get_weights()[1], bias)
        # PyTorch's cross-correlation of a patch the kernel's size, written out.
        k, inp = weight.shape[2], weight.shape[1]
        x = patch[:, :k, :k, :inp]
        expected = np.einsum("oihw,hwi->o", weight, x[0]) + bias
        conv = keras.ops.conv(x, layer.kernel, padding="valid")[0, 0, 0] + bias
        np.testing.assert_allclose(conv, expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match=r"vgg16_reducedfc.npz: lacks 2 expected keys.*33"):
        np.savez(path, **{k: v for k, v in state.items() if not k.startswith("33.")})
        SSD300(3, attention="none", backbone_weights=path)


def test_full_model_weights_file_loads(tmp_path):
    kwargs = dict(SMALL, attention="cfsam", attention_kwargs={"embed_dim": 32, "num_heads": 2})
    source = SSD300(3, **kwargs)
    _randomize(source, seed=5)
    path = str(tmp_path / "ssd.weights.h5")
    source.save_weights(path)
    model = SSD300(3, backbone_weights=path, **kwargs)
    images = np.random.default_rng(0).uniform(0, 255, (1, 128, 128, 3)).astype("float32")
    np.testing.assert_allclose(model(images), source(images), atol=1e-6)
    # A file of a model with other classes fits neither the model nor the backbone.
    with pytest.raises(ValueError, match="ssd.weights.h5.*fit neither"):
        SSD300(4, backbone_weights=path, **kwargs)


@pytest.mark.parametrize(
    "weights, kwargs, match",
    [
        ("vgg.pth", SMALL, r"vgg.pth'?: expected None, 'imagenet' or a path ending in \.h5$"),
        ("/nonexistent/vgg16.h5", {}, "/nonexistent/vgg16.h5.*does not exist"),
        ("/nonexistent/vgg16_reducedfc.pth", {}, "vgg16_reducedfc.pth.*does not exist"),
    ],
)
def test_bad_weights_files_are_named(weights, kwargs, match):
    with pytest.raises(ValueError, match=match):
        SSD300(3, attention="none", backbone_weights=weights, **kwargs)


def test_legacy_h5_file_as_keras_downloads_it(tmp_path):
    # keras.applications' downloads are Keras 2 (legacy) HDF5 files, e.g.
    # vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5; this one is written the same way.
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    reference = reference_backbone("vgg16", None)
    _randomize(reference, seed=9)
    path = str(tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, reference)
    model = SSD300(3, attention="none", backbone_weights=path)
    for name in VGG_CONVS:
        for ours, theirs in zip(
            model.get_layer(name).get_weights(), reference.get_layer(name).get_weights()
        ):
            np.testing.assert_array_equal(ours, theirs)
