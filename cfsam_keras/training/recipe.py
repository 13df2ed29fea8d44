"""What the recipes in ``recipes/`` share: flags, data, model, optimizer, callbacks.

A recipe states its hyper-parameters as the defaults of ``recipe_parser`` and
then runs, in order: ``setup`` (strategy, precision, run folder), its data,
``build_model``, ``compile_model``, ``train_data``, ``build_callbacks`` and
``model.fit``. See ``recipes/demo.py``.
"""

import argparse
import contextlib
import json
import os

from cfsam_keras.training.optimizers import OPTIMIZERS, SCHEDULES, build_optimizer, build_schedule, scale_learning_rate
from cfsam_keras.training.run_dir import RunDir
from cfsam_keras.training.strategy import STRATEGIES, get_strategy, set_mixed_precision

ATTENTIONS = ("cfsam", "none", "se", "cbam", "eca")
BACKBONES = ("vgg16", "mobilenet_v2", "small_vgg")


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _non_negative_float(text):
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _at_least_one(text):
    value = float(text)
    if not value >= 1.0:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _unit_interval(text):
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


class _RecipeArgumentParser(argparse.ArgumentParser):
    """Reports a bad flag as one line (``prog: error: ...``), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def recipe_parser(description, defaults, prog=None):
    """The flags every recipe takes, with the recipe's values as defaults.

    Args:
        description: the recipe's one-paragraph description (``--help``).
        defaults: dict flag destination -> default value; every key must be
            one of the flags below (a typo raises ``KeyError``).
        prog: the program name shown in usage lines.

    Returns:
        An ``argparse.ArgumentParser``.
    """
    p = _RecipeArgumentParser(
        prog=prog,
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("model")
    g.add_argument("--attention", choices=ATTENTIONS, help="module between the source maps and the heads")
    g.add_argument("--backbone", choices=BACKBONES, help="feature extractor")
    g.add_argument("--alpha", type=_positive_float, help="MobileNetV2 width multiplier")
    g.add_argument("--input-size", type=_positive_int, help="square input side in pixels")
    g.add_argument("--backbone-weights", help="None, 'imagenet' or a .weights.h5 file")
    g.add_argument("--bn-momentum", type=_unit_interval,
                   help="momentum of every BatchNormalization's moving statistics "
                        "(default: as built: 0.999 in MobileNetV2, 0.99 elsewhere)")
    g = p.add_argument_group("data")
    g.add_argument("--data-dir", help="dataset folder (layout: see the recipe's description)")
    g.add_argument("--tfds", action="store_true", help="read the dataset through TensorFlow Datasets instead")
    g.add_argument("--tfds-dir", help="TFDS data_dir (TFDS's default when not given)")
    g.add_argument("--max-expand", type=_at_least_one, default=4.0,
                   help="largest zoom-out of SSD's expand augmentation (1: no expand)")
    g = p.add_argument_group("schedule")
    g.add_argument("--epochs", type=_positive_int, help="epochs to train")
    g.add_argument("--steps-per-epoch", type=_positive_int, help="optimizer steps per epoch (default: one pass over the data)")
    g.add_argument("--batch-size", type=_positive_int, help="GLOBAL batch size, summed over all replicas")
    g.add_argument("--optimizer", choices=OPTIMIZERS, help="sgd: SSD's SGD + momentum + L2; adamw: AdamW")
    g.add_argument("--lr", type=_positive_float, help="learning rate at --reference-batch (scaled linearly to --batch-size)")
    g.add_argument("--reference-batch", type=_positive_int, help="the batch size --lr is given for")
    g.add_argument("--schedule", choices=SCHEDULES, help="step: x0.1 at --decay-epochs; cosine; constant")
    g.add_argument("--decay-epochs", type=float, nargs="*", help="epochs at which 'step' multiplies the rate by 0.1")
    g.add_argument("--warmup-epochs", type=_non_negative_float, help="linear warm-up length in epochs")
    g.add_argument("--weight-decay", type=_non_negative_float, help="L2 (sgd) or decoupled (adamw) weight decay")
    g.add_argument("--clipnorm", type=_non_negative_float, help="clip the global gradient norm (0: off)")
    g = p.add_argument_group("run")
    g.add_argument("--out", help="run folder; started again with the same folder, training resumes")
    g.add_argument("--strategy", choices=STRATEGIES, help="tf.distribute strategy")
    g.add_argument("--mixed-precision", action="store_true", help="mixed_float16 on GPU, mixed_bfloat16 on TPU/CPU")
    g.add_argument("--jit-compile", action="store_true", help="compile the train step with XLA")
    g.add_argument("--eval-every", type=_non_negative_int, help="evaluate on the validation set every N epochs (0: never)")
    g.add_argument("--eval-images", type=int, help="evaluate on the first N validation images only (0: all)")
    g.add_argument("--seed", type=int, help="random seed")
    known = {a.dest for a in p._actions}
    unknown = set(defaults) - known
    if unknown:
        raise KeyError(f"recipe defaults for unknown flags: {sorted(unknown)}")
    p.set_defaults(**defaults)
    return p


def setup(args):
    """Strategy, precision policy, seed and run folder for a recipe.

    Writes ``config.json`` (all flag values) into the run folder.

    Returns:
        ``(strategy, run_dir)``.
    """
    import keras

    strategy = get_strategy(args.strategy)
    set_mixed_precision(args.mixed_precision, strategy)
    keras.utils.set_random_seed(args.seed)
    run_dir = RunDir(args.out)
    os.makedirs(run_dir.root, exist_ok=True)
    config = dict(vars(args))
    config.pop("run", None)
    config["replicas"] = strategy.num_replicas_in_sync
    run_dir.write_config(config)
    return strategy, run_dir


def build_model(args, num_classes, anchor_preset="voc", attention_kwargs=None, backbone_kwargs=None):
    """``cfsam_keras.models.SSD300`` from the recipe flags (call inside ``strategy.scope()``)."""
    from cfsam_keras.models import SSD300

    backbone_kwargs = dict(backbone_kwargs or {})
    if args.backbone == "mobilenet_v2" and args.alpha is not None:
        backbone_kwargs.setdefault("alpha", args.alpha)
    weights = args.backbone_weights
    if weights in (None, "", "none", "None"):
        weights = None
    model = SSD300(
        num_classes,
        backbone=args.backbone,
        attention=args.attention,
        input_size=args.input_size,
        anchor_preset=anchor_preset,
        backbone_weights=weights,
        attention_kwargs=attention_kwargs if args.attention != "none" else None,
        backbone_kwargs=backbone_kwargs,
    )
    if getattr(args, "bn_momentum", None) is not None:
        set_batch_norm_momentum(model, args.bn_momentum)
    return model


def set_batch_norm_momentum(model, momentum):
    """Sets the moving-statistics momentum of every BatchNormalization in ``model``.

    The moving statistics are what inference uses. With Keras' defaults (0.999 in
    ``keras.applications.MobileNetV2``, 0.99 elsewhere) they trail the weights by
    hundreds to thousands of steps, so a model trained from scratch for a few
    thousand steps is scored with statistics of much earlier weights, and its
    detections are far worse than its training loss suggests. A lower momentum
    (e.g. 0.9) follows the weights closely. The model's own BatchNorm layers keep
    it in a ``.keras`` file; those inside a composite layer (CFSAM, CBAM) are
    rebuilt from that layer's config with Keras' default, so set it again after
    loading a model to train it further (resuming a recipe does).

    Args:
        model: a Keras model.
        momentum: float in [0, 1).

    Returns:
        The number of layers changed.
    """
    import keras

    layers = [l for l in model._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)]
    for layer in layers:
        layer.momentum = float(momentum)
    return len(layers)


def compile_model(model, args, steps_per_epoch, num_classes):
    """Compiles ``model`` with the recipe's optimizer, schedule and MultiBoxLoss.

    The learning rate is ``--lr`` scaled linearly from ``--reference-batch`` to
    the global ``--batch-size``; schedule lengths are given in epochs and
    turned into optimizer steps. Call inside ``strategy.scope()``.

    Returns:
        The optimizer.
    """
    from cfsam_keras.losses import MultiBoxLoss

    total = args.epochs * steps_per_epoch
    lr = scale_learning_rate(args.lr, args.batch_size, args.reference_batch)
    boundaries = None
    if args.schedule == "step" and args.decay_epochs:
        boundaries = [round(e * steps_per_epoch) for e in args.decay_epochs]
    schedule = build_schedule(
        args.schedule,
        lr,
        total_steps=total,
        warmup_steps=round(args.warmup_epochs * steps_per_epoch),
        boundaries=boundaries,
    )
    optimizer = build_optimizer(
        args.optimizer,
        schedule,
        weight_decay=args.weight_decay,
        global_clipnorm=args.clipnorm or None,
    )
    model.compile(
        optimizer=optimizer,
        loss=MultiBoxLoss(num_classes),
        jit_compile=bool(args.jit_compile),
    )
    return optimizer


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
    import tensorflow as tf

    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(
            f"--batch-size {global_batch_size} is not divisible by the "
            f"{replicas} replicas of the strategy."
        )
    dataset = make_dataset(global_batch_size, None)
    if replicas > 1:
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        dataset = dataset.with_options(options)
    return dataset


def train_data(strategy, args, source, model, **pipeline_kwargs):
    """A recipe's training dataset: ``cfsam_keras.data.train_pipeline`` over
    ``source`` with the model's default boxes and the recipe's ``--input-size``,
    ``--batch-size``, ``--seed`` and ``--max-expand``, prepared for ``strategy``
    by `distribute`.

    Args:
        strategy: the ``tf.distribute.Strategy``.
        args: the parsed recipe flags.
        source: the training `cfsam_keras.data.Source`.
        model: the SSD model (its default boxes are the targets' anchors).
        **pipeline_kwargs: more ``train_pipeline`` arguments (e.g. ``augment``).

    Returns:
        A ``tf.data.Dataset`` of global batches.
    """
    from cfsam_keras import data
    from cfsam_keras.models import model_default_boxes

    anchors = model_default_boxes(model)
    pipeline_kwargs.setdefault("max_expand", args.max_expand)
    return distribute(
        strategy,
        lambda batch, context: data.train_pipeline(
            source, anchors, args.input_size, batch, seed=args.seed, input_context=context,
            **pipeline_kwargs,
        ),
        args.batch_size,
    )


def evaluation_callback(args, val_source, run_dir):
    """``cfsam_keras.evaluation.EvaluationCallback`` every ``--eval-every``
    epochs, or ``None`` when ``--eval-every`` is 0."""
    from cfsam_keras.evaluation import EvaluationCallback

    if not args.eval_every:
        return None
    kwargs = {}
    if args.eval_images:
        kwargs["max_images"] = args.eval_images
    return EvaluationCallback(
        val_data=val_source,
        every_n_epochs=args.eval_every,
        batch_size=max(1, min(args.batch_size, 16)),
        log_dir=run_dir.tensorboard,
        verbose=1,
        **kwargs,
    )


def save_args(args, path):
    """Writes the flag values as JSON (for a recipe's own records)."""
    with open(path, "w") as f:
        json.dump({k: v for k, v in vars(args).items() if k != "run"}, f, indent=2)


def run_recipe(main, argv=None):
    """Runs a recipe's ``main`` as a script: a diverged run or a bad setting
    ends with one line on stderr and exit status 1, not a traceback."""
    import sys

    from cfsam_keras.training.callbacks import TrainingDivergedError

    try:
        return int(main(argv) or 0)
    except (TrainingDivergedError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def _symbolic_batch(element_spec):
    """KerasTensors shaped like one element of a dataset (``element_spec``)."""
    import keras
    import tensorflow as tf

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
    import tensorflow as tf

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
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tf_trainer

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
