"""The JAX side of `layer_testing.run_jax_cases`: `python layer_testing_jax.py DIRECTORY`.

Runs under `KERAS_BACKEND=jax`. For every case in `DIRECTORY/cases.json` it rebuilds the
layer from its config, runs it in one `jax.jit` program (a `stateless_call` on the
variable values recorded under TensorFlow) and compares with TensorFlow's outputs.
Prints `jax ok: N cases` when every case matches.
"""

import importlib
import json
import pathlib
import sys

import jax
import keras
import numpy as np
from keras import tree


def _load(structure, arrays):
    return tree.map_structure(lambda key: arrays[key], structure)


def run_case(case, arrays, index):
    cls = getattr(importlib.import_module(case["module"]), case["class_name"])
    layer = cls.from_config(case["config"])
    inputs = _load(case["inputs"], arrays)
    call_kwargs = dict(case["call_kwargs"])
    if layer._call_has_training_arg:
        call_kwargs["training"] = False
    symbolic = tree.map_structure(lambda x: keras.KerasTensor(x.shape, dtype=x.dtype), inputs)
    # Variables made in this scope are never initialised (JAX would compile every
    # initializer): the recorded values go straight into `stateless_call`.
    with keras.StatelessScope(initialize_variables=False):
        if isinstance(symbolic, dict):
            layer(**symbolic, **call_kwargs)
        else:
            layer(symbolic, **call_kwargs)
        trainable = _load(case["trainable"], arrays)
        non_trainable = _load(case["non_trainable"], arrays)
        for variable, value in zip(layer.trainable_variables, trainable):
            assert variable.shape == value.shape, (variable.path, variable.shape, value.shape)
        assert len(layer.trainable_variables) == len(trainable)
        assert len(layer.non_trainable_variables) == len(non_trainable)

        def forward(trainable, non_trainable, inputs):
            if isinstance(inputs, dict):
                outputs = layer.stateless_call(trainable, non_trainable, **inputs, **call_kwargs)
            else:
                outputs = layer.stateless_call(trainable, non_trainable, inputs, **call_kwargs)
            return outputs[0]

        outputs = jax.jit(forward)(trainable, non_trainable, inputs)
    expected = _load(case["outputs"], arrays)
    rtol, atol = case["tolerance"]
    for y, e in zip(tree.flatten(outputs), tree.flatten(expected)):
        assert isinstance(y, jax.Array), type(y)
        np.testing.assert_allclose(
            np.asarray(y), e, rtol=rtol, atol=atol, err_msg=f"case {index}: {cls.__name__}"
        )


def main(directory):
    assert keras.backend.backend() == "jax", keras.backend.backend()
    directory = pathlib.Path(directory)
    cases = json.loads((directory / "cases.json").read_text())
    with np.load(directory / "arrays.npz") as data:
        arrays = dict(data)
    for index, case in enumerate(cases):
        run_case(case, arrays, index)
    print(f"jax ok: {len(cases)} cases")


if __name__ == "__main__":
    main(sys.argv[1])
