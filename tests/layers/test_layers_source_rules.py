"""Guards on the layers' sources: docstring examples run, backend-agnostic code."""

import doctest
import importlib
import pathlib
import re

import pytest

import cfsam_keras.layers

LAYERS_DIR = pathlib.Path(cfsam_keras.layers.__file__).parent
MODULES = sorted(
    f"cfsam_keras.layers.{p.stem}" for p in LAYERS_DIR.glob("*.py") if p.stem != "__init__"
)


@pytest.mark.parametrize("name", MODULES + ["cfsam_keras.flops"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0


#: The one layer module with a TensorFlow path: BatchNormalization's fused training step.
TENSORFLOW_PATH = "batch_normalization.py"


@pytest.mark.parametrize("path", sorted(LAYERS_DIR.glob("*.py")), ids=lambda p: p.name)
def test_layers_use_only_keras(path):
    source = path.read_text()
    assert "Lambda(" not in source
    if path.name == TENSORFLOW_PATH:
        # TensorFlow only inside the call that has checked the backend, imported there.
        assert not re.search(r"^(import|from)\s+(tensorflow|jax|torch)\b", source, re.M)
        fused = source.split('keras.backend.backend() == "tensorflow"', 1)
        assert len(fused) == 2 and not re.search(r"\btf\.", fused[0])
        return
    # keras.layers and keras.ops only: no TensorFlow, no Lambda layers.
    assert not re.search(r"^\s*(import|from)\s+(tensorflow|jax|torch)\b", source, re.M)
    assert not re.search(r"\btf\.", source)


def test_every_public_layer_is_registered():
    import keras

    for name in [
        "CFSAM",
        "SqueezeExcitation",
        "CBAM",
        "ECA",
        "L2Normalization",
        "CrossLevelEncoderLayer",
        "BatchNormalization",
    ]:
        cls = getattr(cfsam_keras.layers, name)
        assert keras.saving.get_registered_name(cls) == f"cfsam_keras>{name}"
        assert cls.get_config is not keras.layers.Layer.get_config
        assert cls.__doc__ and "Args:" in cls.__doc__
