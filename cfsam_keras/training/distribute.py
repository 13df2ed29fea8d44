"""Training under ``tf.distribute``: the dataset for ``fit``, and ``fit_scope``.

``fit_scope`` works around two Keras 3.15 bugs under ``MultiWorkerMirroredStrategy``
(tensorflow/tensorflow#72388 and the symbolic build of ``fit``); for the other
strategies it does nothing.
"""

import contextlib

import keras
import tensorflow as tf

# Keras' TensorFlow trainer: fit_scope replaces its reduce_per_replica while open.
from keras.src.backend.tensorflow import trainer as tf_trainer


def distribute(strategy, make_dataset, global_batch_size):
    """The training dataset for ``fit`` under ``strategy``.

    ``fit`` distributes a ``tf.data.Dataset`` itself
    (``strategy.experimental_distribute_dataset``): each global batch is split
    across the replicas. Across workers the data is sharded element-wise
    (``AutoShardPolicy.DATA``), which works for every source whatever its
    number of files.

    Args:
        strategy: the ``tf.distribute.Strategy``.
        make_dataset: ``f(batch_size, input_context) -> tf.data.Dataset``, e.g.
            a wrapper of ``cfsam_keras.data.train_pipeline``; called with the
            global batch size and ``None``.
        global_batch_size: the batch summed over all replicas.

    Returns:
        A ``tf.data.Dataset`` of global batches.
    """
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(
            f"--batch-size {global_batch_size} is not divisible by the "
            f"{replicas} replicas of the strategy."
        )
    dataset = make_dataset(global_batch_size, None)
    if replicas > 1:
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        dataset = dataset.with_options(options)
    return dataset


def _symbolic_batch(element_spec):
    """KerasTensors shaped like one element of a dataset (``element_spec``)."""
    return tf.nest.map_structure(
        lambda spec: keras.KerasTensor(tuple(spec.shape), spec.dtype.name), element_spec
    )


def _multi_worker_reduce_per_replica(original):
    """Keras 3's ``reduce_per_replica`` with scalars reduced over ``axis=None``.

    Under ``MultiWorkerMirroredStrategy`` Keras (3.15) reduces every train-step
    output with ``strategy.reduce("MEAN", value, axis=0)``; the outputs are the
    metric results, all scalars, so the reduction fails ("Invalid reduction
    dimension 0 for input with 0 dimensions", tensorflow/tensorflow#72388).
    A scalar is averaged over the replicas instead; everything else goes to
    Keras' function unchanged.
    """

    def reduce_per_replica(values, strategy, reduction):
        multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and (
            strategy.extended._in_multi_worker_mode()
        )
        if not multi_worker or reduction not in ("auto", "mean"):
            return original(values, strategy, reduction)

        def reduce(value):
            scalar = getattr(value, "shape", None) is not None and value.shape.rank == 0
            return strategy.reduce("MEAN", value, axis=None if scalar else 0)

        return tf.nest.map_structure(reduce, values)

    return reduce_per_replica


def _skip_symbolic_build(iterator=None, data_batch=None):
    """Stands in for ``Trainer._maybe_symbolic_build`` (see `fit_scope`)."""


@contextlib.contextmanager
def fit_scope(model, strategy, dataset=None):
    """Context for ``model.fit`` that works around two Keras 3.15 bugs under
    ``MultiWorkerMirroredStrategy``; for the other strategies it does nothing.

    1. ``fit`` starts with a "symbolic build" that pulls a distributed batch
       and reduces it with ``strategy.reduce``, which fails under that strategy
       ("Attempt to convert a value (PerReplica...)"). Here the model's loss,
       metrics and optimizer are built from ``dataset.element_spec`` instead
       (inside ``strategy.scope()``, so their variables are mirrored), and
       Keras' own symbolic build is skipped while the context is open.
    2. Keras reduces the scalar step outputs (loss, metrics) over ``axis=0``,
       which fails (tensorflow/tensorflow#72388); while the context is open,
       scalars are averaged over the replicas instead.

    ``fit`` itself runs as usual, outside ``strategy.scope()``: a callback
    that creates a variable on the chief only (inside the scope it would be
    a mirrored variable whose creation waits for every worker) cannot hang.

    Args:
        model: the compiled model, built under ``strategy``.
        strategy: the strategy the model was built under.
        dataset: the ``tf.data.Dataset`` passed to ``fit`` (its element spec
            builds the loss and metrics); without it only the optimizer is
            built here and Keras builds the rest while tracing the train step.

    Example:

    >>> with fit_scope(model, strategy, train_data):
    ...     model.fit(train_data, epochs=2, steps_per_epoch=10)
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        yield
        return
    with strategy.scope():
        if dataset is not None:
            model._symbolic_build(data_batch=_symbolic_batch(dataset.element_spec))
        elif model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
    original = tf_trainer.reduce_per_replica
    tf_trainer.reduce_per_replica = _multi_worker_reduce_per_replica(original)
    object.__setattr__(model, "_maybe_symbolic_build", _skip_symbolic_build)
    try:
        yield
    finally:
        object.__delattr__(model, "_maybe_symbolic_build")
        tf_trainer.reduce_per_replica = original
