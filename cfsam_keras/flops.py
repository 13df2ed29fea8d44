"""Count the floating point operations of one forward pass.

Uses TensorFlow's graph profiler (`tf.compat.v1.profiler`, the
`float_operation` view) on the graph of a concrete function, and adds the
`Einsum` ops the profiler has no cost function for (Keras' `EinsumDense` and
`keras.ops.einsum` produce them). Conventions are the profiler's: a
multiply-add counts as 2 FLOPs (`MatMul` of `[M, K] x [K, N]` is `2 * M * N * K`,
`Conv2D` is `2 * output_elements * kh * kw * C_in`), element-wise ops count
one per output element, and ops without a registered cost (reshapes,
transposes, gathers) count zero. Ops inside nested functions (`tf.function`s
called from the traced function, loop bodies) are not counted; Keras layers
and `keras.ops` are traced inline, so Keras models are counted in full.
"""

import warnings

import keras
import numpy as np
import tensorflow as tf


def _as_specs(input_specs):
    def to_spec(spec):
        if isinstance(spec, tf.TensorSpec):
            shape, dtype = spec.shape.as_list(), spec.dtype
        elif isinstance(spec, (tuple, list)) and all(
            d is None or isinstance(d, (int, np.integer)) for d in spec
        ):
            shape, dtype = list(spec), tf.float32
        elif hasattr(spec, "shape") and hasattr(spec, "dtype"):
            shape, dtype = list(spec.shape), tf.as_dtype(str(spec.dtype))
        else:
            raise ValueError(
                "Each entry of `input_specs` must be a tf.TensorSpec, a shape "
                f"tuple or an object with .shape and .dtype; received {spec!r}."
            )
        if shape and shape[0] is None:
            shape[0] = 1  # an unknown batch counts as one example
        if any(d is None for d in shape):
            raise ValueError(
                "count_flops needs fully known shapes (only the batch may be "
                f"None, it is counted as 1); received shape {shape}."
            )
        return tf.TensorSpec(shape, dtype)

    if isinstance(input_specs, dict):
        return {k: to_spec(v) for k, v in input_specs.items()}, True
    if not isinstance(input_specs, (list, tuple)) or not input_specs:
        raise ValueError(
            "`input_specs` must be a non-empty list of specs (one per "
            f"positional input) or a dict; received {input_specs!r}."
        )
    return [to_spec(s) for s in input_specs], False


def _einsum_flops(op):
    """FLOPs of an `Einsum` op: 2 x the product of all index sizes."""
    equation = op.get_attr("equation").decode()
    operands = equation.split("->")[0].split(",")
    if len(operands) != 2:
        return 0
    sizes = {}
    for labels, tensor in zip(operands, op.inputs):
        shape = tensor.shape.as_list()
        if None in shape:
            raise ValueError(f"count_flops: Einsum op '{op.name}' has an unknown shape {shape}.")
        if "..." in labels:
            head, tail = labels.split("...")
            n_ellipsis = len(shape) - len(head) - len(tail)
            # Broadcast ellipsis dimensions are aligned from the right.
            names = list(head) + [f"...{n_ellipsis - i}" for i in range(n_ellipsis)] + list(tail)
        else:
            names = list(labels)
        for name, size in zip(names, shape):
            sizes[name] = max(sizes.get(name, 1), size)
    return 2 * int(np.prod(list(sizes.values()), dtype=np.int64))


def count_flops(fn_or_model, input_specs):
    """Counts the floating point operations of one forward pass.

    Args:
        fn_or_model: a `keras.Model` or `keras.layers.Layer` (called with
            `training=False`), a `tf.function`, or a plain Python callable
            written in TensorFlow / Keras ops. It is called with one
            positional argument per entry of `input_specs` (for a Keras model
            with several inputs, pass a dict keyed by input name or a list in
            input order).
        input_specs: list of `tf.TensorSpec`, shape tuples (float32) or
            arrays, one per positional input; or a dict of them, passed to the
            function as one dict argument. All dimensions must be known,
            except a `None` batch dimension, which is counted as 1.

    Returns:
        int, the number of floating point operations.

    Example:
    >>> import keras
    >>> layer = keras.layers.Dense(10)
    >>> count_flops(layer, [(1, 20)])  # 2 * 20 * 10 (matmul) + 10 (bias)
    410
    """
    specs, is_dict = _as_specs(input_specs)
    if isinstance(fn_or_model, keras.layers.Layer):
        layer = fn_or_model
        if is_dict:

            def fn(inputs):
                return layer(inputs, training=False)
        elif isinstance(layer, keras.Model) and len(specs) > 1:

            def fn(*inputs):
                return layer(list(inputs), training=False)
        else:

            def fn(*inputs):
                return layer(*inputs, training=False)
    elif callable(fn_or_model):
        fn = fn_or_model
    else:
        raise ValueError(
            "`fn_or_model` must be a keras Model or Layer or a callable; "
            f"received {type(fn_or_model).__name__}."
        )
    if not isinstance(fn, tf.types.experimental.PolymorphicFunction):
        fn = tf.function(fn, autograph=False)
    concrete = fn.get_concrete_function(specs) if is_dict else (fn.get_concrete_function(*specs))
    graph = concrete.graph
    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # the v1 profiler logs a deprecation notice
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            profile = tf.compat.v1.profiler.profile(graph=graph, options=options)
    finally:
        logger.setLevel(level)
    total = int(profile.total_float_ops)
    for op in graph.get_operations():
        if op.type == "Einsum":
            total += _einsum_flops(op)
    return total
