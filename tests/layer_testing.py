"""One harness for the contract every Keras layer of the library keeps.

`run_layer_test` is most of a layer's test: one call checks that a layer class

- creates its weights in `build` (none in `__init__`, none added by a call), as many
  trainable and non-trainable weights as expected;
- gives outputs of the expected shapes and dtypes, eagerly and symbolically (its
  `compute_output_shape` / `compute_output_spec` agree with what it computes);
- round-trips `get_config` (JSON, `from_config`, Keras serialisation), and lists every
  argument of its `__init__` in it;
- survives a `.keras` save and a `safe_mode=True` reload inside a functional model with
  the same outputs;
- builds and runs under `mixed_float16` and `mixed_bfloat16`: float32 variables,
  sub-layers computing in the policy's dtype, outputs in the documented dtype, close to
  the float32 outputs, finite gradients;
- gives under `jit_compile=True` the eager outputs, to a tolerance.

Every check but the first two can be switched off for a layer it does not apply to.
The saving, mixed precision and jit checks run on weights moved away from their
initial values (`perturb_weights`), so a layer that starts as the identity cannot pass
them by returning its input.

`jax_case` and `run_jax_cases` check that layers give TensorFlow's outputs under the JAX
backend, all in one subprocess (`layer_testing_jax.py`).

Input data is what the layer's `call` takes first: one array, or a list of arrays (a
multi-level layer), or a dict of arrays passed as keyword arguments (a layer whose
call takes several tensors, e.g. `{"boxes": ..., "scores": ...}`).
"""

import inspect
import json
import os
import pathlib
import subprocess
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf
from keras import tree

MIXED_POLICIES = ("mixed_float16", "mixed_bfloat16")
JAX_RUNNER = pathlib.Path(__file__).with_name("layer_testing_jax.py")


def run_layer_test(
    cls,
    init_kwargs,
    input_data,
    call_kwargs=None,
    expected_output_shape=None,
    expected_output_dtype="float32",
    output_check=None,
    expected_num_trainable_weights=None,
    expected_num_non_trainable_weights=None,
    run_config_check=True,
    run_saving_check=True,
    run_mixed_precision_check=True,
    mixed_precision_output_dtype="compute",
    mixed_precision_tolerance=(0.05, 0.05),
    run_gradient_check=True,
    run_jit_check=True,
    jit_tolerance=(1e-4, 1e-4),
):
    """Checks a layer class's contract (see the module docstring).

    Args:
        cls: the layer class.
        init_kwargs: dict of constructor arguments.
        input_data: array, list of arrays, or dict of arrays (keyword call arguments).
        call_kwargs: dict of further, non-tensor call arguments (e.g. `spatial_shapes`).
        expected_output_shape: shape tuple, or the outputs' structure of shape tuples
            (with the batch size of `input_data`); None to skip.
        expected_output_dtype: a dtype for every output, or the outputs' structure of
            dtypes, under the float32 policy; None to skip.
        output_check: callable taking the float32 outputs (numpy, the structure of the
            layer's outputs) of a freshly built layer, and `input_data`; it asserts.
        expected_num_trainable_weights: int or None.
        expected_num_non_trainable_weights: int or None.
        run_config_check: check the `get_config` round trip.
        run_saving_check: check the `.keras` save and `safe_mode` reload.
        run_mixed_precision_check: check `mixed_float16` and `mixed_bfloat16`.
        mixed_precision_output_dtype: the documented output dtype under a mixed policy,
            checked with float32 inputs and with inputs in the policy's compute dtype:
            `"compute"`: float outputs in the compute dtype; `"input"`: float outputs in
            the dtype of the float inputs (the multi-level attention modules); or a
            dtype name. One rule for every output, or the outputs' structure of rules.
            Under `"compute"` and `"input"` non-float outputs keep their float32-policy
            dtype.
        mixed_precision_tolerance: `(rtol, atol)` of the mixed precision outputs against
            the float32 ones, or None to compare nothing.
        run_gradient_check: under mixed precision, a `training=True` pass gives every
            trainable weight a finite gradient (skipped without trainable weights).
        run_jit_check: compare `predict_on_batch` of a functional model compiled with
            `jit_compile=True` with its eager outputs.
        jit_tolerance: `(rtol, atol)` of the jit outputs against the eager ones.
    """
    call_kwargs = dict(call_kwargs or {})

    # Weights come from build, and only from build.
    layer = cls(**init_kwargs)
    assert not layer.weights, (
        f"{cls.__name__} created weights in __init__: {[w.path for w in layer.weights]}"
    )
    build_layer(layer, input_data)
    assert layer.built, f"{cls.__name__} is not built after build()"
    _check_weight_counts(layer, expected_num_trainable_weights, expected_num_non_trainable_weights)
    num_weights = len(layer.weights)
    outputs = to_numpy(call_layer(layer, input_data, call_kwargs))
    assert len(layer.weights) == num_weights, f"{cls.__name__} created weights in call()"
    _check_structure(outputs, expected_output_shape, expected_output_dtype, cls)
    if output_check is not None:
        output_check(outputs, input_data)

    # A symbolic call on a fresh layer: output specs equal the computed outputs.
    symbolic_layer = cls(**init_kwargs)
    specs = call_layer(symbolic_layer, _symbolic(input_data), call_kwargs)
    _check_weight_counts(
        symbolic_layer, expected_num_trainable_weights, expected_num_non_trainable_weights
    )
    tree.assert_same_structure(specs, outputs)
    for spec, value in zip(tree.flatten(specs), tree.flatten(outputs)):
        assert tuple(spec.shape) == value.shape, (spec.shape, value.shape)
        assert _dtype(spec) == _dtype(value), (spec.dtype, value.dtype)

    reference = cls(**init_kwargs)
    build_layer(reference, input_data)
    perturb_weights(reference)

    if run_config_check:
        check_config(cls, layer, init_kwargs)
    if run_saving_check:
        check_saving(reference, input_data, call_kwargs)
    if run_mixed_precision_check:
        check_mixed_precision(
            cls,
            init_kwargs,
            reference,
            input_data,
            call_kwargs,
            output_dtype=mixed_precision_output_dtype,
            tolerance=mixed_precision_tolerance,
            gradients=run_gradient_check,
        )
    if run_jit_check:
        check_jit(cls, init_kwargs, reference, input_data, call_kwargs, jit_tolerance)


def call_layer(layer, inputs, call_kwargs=None, **kwargs):
    """Calls `layer` on inputs of any of the three forms `run_layer_test` takes."""
    call_kwargs = {**(call_kwargs or {}), **kwargs}
    if isinstance(inputs, dict):
        return layer(**inputs, **call_kwargs)
    return layer(inputs, **call_kwargs)


def build_layer(layer, input_data):
    """Builds `layer` for `input_data`: `build(shapes)`, or a symbolic call for dict inputs.

    A layer taking several tensors is built the way Keras builds it on its first call.
    """
    if isinstance(input_data, dict):
        call_layer(layer, _symbolic(input_data))
    else:
        layer.build(tree.map_structure(lambda x: tuple(x.shape), input_data))


def perturb_weights(layer, scale=0.1, seed=0):
    """Adds normal noise of std `scale` to every float weight, so no weight keeps its
    initial value (a zero-initialised fusion scale, a unit BatchNorm variance)."""
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        if _is_float(weight):
            noise = rng.normal(0.0, scale, weight.shape).astype(_dtype(weight))
            weight.assign(keras.ops.convert_to_numpy(weight) + noise)


def to_numpy(structure):
    return tree.map_structure(lambda x: np.asarray(keras.ops.convert_to_numpy(x)), structure)


def check_config(cls, layer, init_kwargs):
    """`get_config` is JSON, round-trips, and holds every `__init__` argument."""
    config = layer.get_config()
    text = json.dumps(config, sort_keys=True)
    clone = cls.from_config(config)
    assert json.dumps(clone.get_config(), sort_keys=True) == text, (
        f"{cls.__name__}.from_config(config).get_config() differs from config"
    )
    arguments = init_arguments(cls)
    missing = [name for name in arguments if name not in config]
    assert not missing, f"{cls.__name__}.get_config() lacks the __init__ arguments {missing}"
    for name, value in init_kwargs.items():
        if name in arguments:
            assert _plain(config[name]) == _plain(value), (
                f"{cls.__name__}.get_config()[{name!r}] is {config[name]!r}; "
                f"the layer was made with {value!r}"
            )
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is cls, type(revived)
    assert json.dumps(revived.get_config(), sort_keys=True) == text


def init_arguments(cls):
    """Names of the arguments the class's own `__init__` methods (below Layer) take."""
    names = []
    for klass in cls.__mro__:
        if klass is keras.layers.Layer:
            break
        if "__init__" not in vars(klass):
            continue
        for name, parameter in inspect.signature(klass.__init__).parameters.items():
            plain = parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
            if name != "self" and plain and name not in names:
                names.append(name)
    return names


def functional_model(layer, input_data, call_kwargs=None):
    """A functional model around `layer`, with inputs of `input_data`'s shapes (batch None)."""
    if isinstance(input_data, dict):
        inputs = {
            k: keras.Input(x.shape[1:], dtype=_dtype(x), name=k) for k, x in input_data.items()
        }
    else:
        inputs = tree.map_structure(lambda x: keras.Input(x.shape[1:], dtype=_dtype(x)), input_data)
    return keras.Model(inputs, call_layer(layer, inputs, call_kwargs))


def check_saving(layer, input_data, call_kwargs=None):
    """A `.keras` save and a `safe_mode=True` reload of a model holding `layer`."""
    model = functional_model(layer, input_data, call_kwargs)
    expected = to_numpy(model(input_data, training=False))
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "layer.keras")
        model.save(path)
        restored = keras.saving.load_model(path, safe_mode=True)
    kinds = [type(x) for x in restored.layers]
    assert type(layer) in kinds, f"no {type(layer).__name__} in the reloaded model: {kinds}"
    assert keras.layers.Lambda not in kinds
    revived = next(x for x in restored.layers if type(x) is type(layer))
    assert _plain(revived.get_config()) == _plain(layer.get_config())
    actual = to_numpy(restored(input_data, training=False))
    for a, b in zip(tree.flatten(expected), tree.flatten(actual)):
        np.testing.assert_array_equal(b, a)


def check_mixed_precision(
    cls,
    init_kwargs,
    reference,
    input_data,
    call_kwargs=None,
    output_dtype="compute",
    tolerance=(0.05, 0.05),
    gradients=True,
):
    """The layer under each mixed policy, with `reference`'s (float32) weights.

    Arguments as `run_layer_test`'s `mixed_precision_*` and `run_gradient_check`.
    """
    expected = to_numpy(call_layer(reference, input_data, call_kwargs, training=False))
    if isinstance(output_dtype, str):
        rules = [output_dtype] * len(tree.flatten(expected))
    else:
        rules = tree.flatten(output_dtype)
    for name in MIXED_POLICIES:
        policy = keras.DTypePolicy(name)
        layer = cls(**{**init_kwargs, "dtype": policy})
        build_layer(layer, input_data)
        for weight in layer.weights:
            if _is_float(weight):
                assert _dtype(weight) == "float32", (name, weight.path, weight.dtype)
        for sublayer in layer._flatten_layers(include_self=False):
            assert sublayer.compute_dtype == policy.compute_dtype, (name, sublayer.name)
            assert sublayer.variable_dtype == "float32", (name, sublayer.name)
        for input_dtype in ("float32", policy.compute_dtype):
            # Reset every time: the training pass below moves BatchNorm statistics.
            layer.set_weights(reference.get_weights())
            inputs = tree.map_structure(lambda x, d=input_dtype: _cast_float(x, d), input_data)
            outputs = call_layer(layer, inputs, call_kwargs, training=False)
            for y, e, rule in zip(tree.flatten(outputs), tree.flatten(expected), rules):
                want = {"compute": policy.compute_dtype, "input": input_dtype}.get(rule, rule)
                if rule in ("compute", "input") and not _is_float(e):
                    want = _dtype(e)
                assert _dtype(y) == want, f"{name}, {input_dtype} inputs: {_dtype(y)} != {want}"
            specs = call_layer(layer, _symbolic(inputs), call_kwargs)
            for spec, y in zip(tree.flatten(specs), tree.flatten(outputs)):
                assert _dtype(spec) == _dtype(y), (name, "output spec", spec.dtype, y.dtype)
            values = to_numpy(outputs)
            for y, e in zip(tree.flatten(values), tree.flatten(expected)):
                y = y.astype(e.dtype)
                if _is_float(e):
                    assert np.all(np.isfinite(y)), (name, "non-finite output")
                if tolerance is not None:
                    rtol, atol = tolerance
                    np.testing.assert_allclose(y, e, rtol=rtol, atol=atol, err_msg=name)
            if gradients and layer.trainable_weights:
                _check_gradients(layer, inputs, call_kwargs, name)


def _check_gradients(layer, inputs, call_kwargs, name):
    """A training-mode forward pass gives every trainable weight a finite gradient."""
    with tf.GradientTape() as tape:
        outputs = call_layer(layer, inputs, call_kwargs, training=True)
        loss = sum(
            tf.reduce_mean(tf.square(tf.cast(y, "float32")))
            for y in tree.flatten(outputs)
            if _is_float(y)
        )
    grads = tape.gradient(loss, layer.trainable_variables)
    for variable, grad in zip(layer.trainable_variables, grads):
        assert grad is not None, (name, variable.path, "no gradient")
        assert np.all(np.isfinite(np.asarray(grad))), (name, variable.path)


def check_jit(cls, init_kwargs, reference, input_data, call_kwargs=None, tolerance=(1e-4, 1e-4)):
    """`predict_on_batch` under `jit_compile=True` gives the eager outputs."""
    layer = cls(**init_kwargs)
    model = functional_model(layer, input_data, call_kwargs)
    layer.set_weights(reference.get_weights())
    eager = to_numpy(model(input_data, training=False))
    model.compile(jit_compile=True)
    compiled = to_numpy(model.predict_on_batch(input_data))
    rtol, atol = tolerance
    for a, b in zip(tree.flatten(eager), tree.flatten(compiled)):
        np.testing.assert_allclose(b, a, rtol=rtol, atol=atol, err_msg="jit_compile=True")


def jax_case(layer, input_data, call_kwargs=None, tolerance=(1e-4, 1e-4)):
    """One layer for `run_jax_cases`: its class, config, weights, inputs and outputs here.

    Args:
        layer: a built layer (weights as they are: perturb them first if the fresh
            layer's outputs would not show a difference).
        input_data: its inputs (any of the forms `run_layer_test` takes).
        call_kwargs: JSON-serialisable further call arguments.
        tolerance: `(rtol, atol)` of the JAX outputs against these; `(0, 0)` for exact.
    """
    call_kwargs = dict(call_kwargs or {})
    outputs = to_numpy(call_layer(layer, input_data, call_kwargs, training=False))
    return {
        "module": type(layer).__module__,
        "class_name": type(layer).__qualname__,
        "config": layer.get_config(),
        "trainable": [np.asarray(v) for v in layer.trainable_variables],
        "non_trainable": [np.asarray(v) for v in layer.non_trainable_variables],
        "inputs": input_data,
        "call_kwargs": call_kwargs,
        "outputs": outputs,
        "tolerance": list(tolerance),
    }


def run_jax_cases(cases, directory):
    """Runs every case under `KERAS_BACKEND=jax` in one subprocess; asserts it passed.

    The subprocess rebuilds each layer from its config, runs it in one
    `jax.jit`-compiled `stateless_call` on the variable values recorded here and
    compares with the outputs recorded here.
    """
    directory = pathlib.Path(directory)
    arrays, manifest = {}, []
    for i, case in enumerate(cases):
        entry = {k: case[k] for k in ("module", "class_name", "config", "call_kwargs")}
        entry["tolerance"] = case["tolerance"]
        entry["trainable"] = _store(case["trainable"], f"case{i}_trainable", arrays)
        entry["non_trainable"] = _store(case["non_trainable"], f"case{i}_non_trainable", arrays)
        entry["inputs"] = _store(case["inputs"], f"case{i}_input", arrays)
        entry["outputs"] = _store(case["outputs"], f"case{i}_output", arrays)
        manifest.append(entry)
    np.savez(directory / "arrays.npz", **arrays)
    (directory / "cases.json").write_text(json.dumps(manifest))
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, str(JAX_RUNNER), str(directory)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert f"jax ok: {len(cases)} cases" in result.stdout, result.stdout[-2000:]


def _store(structure, prefix, arrays):
    """Puts a structure's arrays into `arrays`; returns the structure of their keys."""
    leaves = tree.flatten(structure)
    keys = [f"{prefix}{k}" for k in range(len(leaves))]
    arrays.update(zip(keys, (np.asarray(x) for x in leaves)))
    return tree.pack_sequence_as(structure, keys)


def _check_weight_counts(layer, trainable, non_trainable):
    name = type(layer).__name__
    if trainable is not None:
        assert len(layer.trainable_weights) == trainable, (
            f"{name}: {len(layer.trainable_weights)} trainable weights, expected {trainable}"
        )
    if non_trainable is not None:
        assert len(layer.non_trainable_weights) == non_trainable, (
            f"{name}: {len(layer.non_trainable_weights)} non-trainable weights, "
            f"expected {non_trainable}"
        )


def _check_structure(outputs, expected_shape, expected_dtype, cls):
    if expected_shape is not None:
        shapes = [x.shape for x in tree.flatten(outputs)]
        expected = [tuple(s) for s in _flatten_shapes(expected_shape)]
        assert shapes == expected, f"{cls.__name__} output shapes {shapes}, expected {expected}"
    if expected_dtype is not None:
        dtypes = [_dtype(x) for x in tree.flatten(outputs)]
        if isinstance(expected_dtype, str):
            expected = [expected_dtype] * len(dtypes)
        else:
            expected = tree.flatten(expected_dtype)
        assert dtypes == expected, f"{cls.__name__} output dtypes {dtypes}, expected {expected}"


def _is_shape(value):
    return isinstance(value, tuple) and all(isinstance(d, (int, type(None))) for d in value)


def _flatten_shapes(structure):
    """Shape tuples of a structure of them, in `keras.tree.flatten`'s order."""
    if _is_shape(structure):
        return [structure]
    if isinstance(structure, dict):
        return [x for k in sorted(structure) for x in _flatten_shapes(structure[k])]
    if isinstance(structure, (list, tuple)):
        return [x for item in structure for x in _flatten_shapes(item)]
    raise AssertionError(f"not a shape or a structure of shapes: {structure!r}")


def _symbolic(input_data):
    return tree.map_structure(lambda x: keras.KerasTensor(x.shape, dtype=_dtype(x)), input_data)


def _cast_float(x, dtype):
    return tf.cast(x, dtype) if _is_float(x) else tf.convert_to_tensor(x)


def _dtype(x):
    return keras.backend.standardize_dtype(x.dtype)


def _is_float(x):
    return "float" in _dtype(x)


def _plain(value):
    try:
        return json.loads(json.dumps(value))
    except TypeError:
        return repr(value)
