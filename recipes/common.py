"""What the recipes share: their flags, and the model, optimizer, data and callbacks
built from them.

A recipe states its settings in ``configs.py``, parses its flags with
``recipe_parser`` and then runs, in order: ``setup`` (strategy, precision, run
folder), its data, ``build_model``, ``compile_model``, ``train_data``,
``cfsam_keras.training.build_callbacks`` and ``model.fit``. See ``demo.py``.
"""

import argparse
import json
import os
import sys

import backend_flag  # first: sets KERAS_BACKEND from --backend before Keras loads
import keras

from cfsam_keras import data
from cfsam_keras.data.builtin import LEGACY_DEMO_STAMP
from cfsam_keras.defaults import LOC_WEIGHT
from cfsam_keras.evaluation import EvaluationCallback
from cfsam_keras.losses import MultiBoxLoss
from cfsam_keras.models import ATTENTIONS
from cfsam_keras.models import BACKBONES
from cfsam_keras.models import SSD300
from cfsam_keras.models import model_config
from cfsam_keras.models import model_default_boxes
from cfsam_keras.optimizers import OPTIMIZERS
from cfsam_keras.optimizers import SCHEDULES
from cfsam_keras.optimizers import build_optimizer
from cfsam_keras.optimizers import build_schedule
from cfsam_keras.optimizers import scale_learning_rate
from cfsam_keras.runtime import start_up_lines_held_back
from cfsam_keras.training import STRATEGIES
from cfsam_keras.training import RunDir
from cfsam_keras.training import TrainingDivergedError
from cfsam_keras.training import distribute
from cfsam_keras.training import get_strategy
from cfsam_keras.training import make_deterministic
from cfsam_keras.training import set_batch_norm_momentum
from cfsam_keras.training import set_mixed_precision
from cfsam_keras.validation import ArgumentParser
from cfsam_keras.validation import flag
from cfsam_keras.validation import non_negative_int
from cfsam_keras.validation import number
from cfsam_keras.validation import positive_int


def recipe_parser(description, defaults, prog, epochs=True):
    """The flags every recipe takes, with the recipe's values as defaults.

    Args:
        description: the recipe's one-paragraph description (``--help``).
        defaults: dict flag destination -> default value; every key must be one
            of the flags below (a typo raises ``KeyError``).
        prog: the program name shown in usage lines.
        epochs: offer ``--epochs`` (recipes whose schedule is in iterations do not).

    Returns:
        An ``argparse.ArgumentParser``. ``--config FILE.json`` reads more defaults
        from a JSON object of flag names (``-`` written as ``_``); flags given on the
        command line win.
    """
    p = ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--config", help='JSON file of flag values, e.g. {"epochs": 3}')
    g = p.add_argument_group("model")
    g.add_argument(
        "--attention", choices=ATTENTIONS, help="module between the source maps and the heads"
    )
    g.add_argument("--backbone", choices=tuple(BACKBONES), help="feature extractor")
    g.add_argument(
        "--alpha", type=flag(number, low=0.0, low_open=True), help="MobileNetV2 width multiplier"
    )
    g.add_argument("--input-size", type=flag(positive_int), help="square input side in pixels")
    g.add_argument("--backbone-weights", help="none, 'imagenet' or a .weights.h5 file")
    g.add_argument(
        "--bn-momentum",
        type=flag(number, low=0.0, high=1.0, high_open=True),
        help="momentum of every BatchNormalization's moving statistics "
        "(default: as built: 0.999 in MobileNetV2, 0.99 elsewhere)",
    )
    g = p.add_argument_group("data")
    g.add_argument("--data-dir", help="dataset folder (layout: see the recipe's description)")
    g.add_argument(
        "--tfds", action="store_true", help="read the dataset through TensorFlow Datasets"
    )
    g.add_argument("--tfds-dir", help="TFDS data_dir (TFDS's default when not given)")
    g.add_argument(
        "--max-expand",
        type=flag(number, low=1.0),
        default=4.0,
        help="largest zoom-out of SSD's expand augmentation (1: no expand)",
    )
    g = p.add_argument_group("schedule")
    if epochs:
        g.add_argument("--epochs", type=flag(positive_int), help="epochs to train")
    g.add_argument(
        "--steps-per-epoch",
        type=flag(positive_int),
        help="optimizer steps per epoch (default: one pass over the data)",
    )
    g.add_argument(
        "--batch-size", type=flag(positive_int), help="GLOBAL batch size, summed over all replicas"
    )
    g.add_argument(
        "--optimizer", choices=OPTIMIZERS, help="sgd: SSD's SGD + momentum + L2; adamw: AdamW"
    )
    g.add_argument(
        "--lr",
        type=flag(number, low=0.0, low_open=True),
        help="learning rate at --reference-batch (scaled linearly to --batch-size)",
    )
    g.add_argument(
        "--reference-batch", type=flag(positive_int), help="the batch size --lr is given for"
    )
    g.add_argument(
        "--schedule", choices=SCHEDULES, help="step: x0.1 at the decay steps; cosine; constant"
    )
    g.add_argument(
        "--warmup-epochs",
        type=flag(number, low=0.0),
        default=0.0,
        help="linear warm-up length in epochs",
    )
    g.add_argument(
        "--weight-decay",
        type=flag(number, low=0.0),
        help="L2 (sgd) or decoupled (adamw) weight decay",
    )
    g.add_argument(
        "--clipnorm",
        type=flag(number, low=0.0),
        default=0.0,
        help="clip the global gradient norm (0: off)",
    )
    g.add_argument(
        "--loc-weight",
        type=flag(number, low=0.0),
        default=LOC_WEIGHT,
        help="weight of the localisation loss against the confidence loss (SSD's alpha)",
    )
    g = p.add_argument_group("run")
    g.add_argument("--out", help="run folder; started again with the same folder, training resumes")
    g.add_argument(
        "--backend",
        choices=backend_flag.BACKENDS,
        help="Keras backend (sets KERAS_BACKEND; default: KERAS_BACKEND or Keras' own); "
        "the data pipeline is tf.data under both",
    )
    g.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="auto",
        help="tf.distribute strategy; under JAX, auto and mirrored are "
        "keras.distribution.DataParallel over the local devices",
    )
    g.add_argument(
        "--mixed-precision",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="mixed_float16 on GPU, mixed_bfloat16 on TPU/CPU; null in a --config file: "
        "where the devices compute in 16 bits natively (GPU, TPU, a CPU with bfloat16 "
        "instructions)",
    )
    g.add_argument(
        "--jit-compile",
        action="store_true",
        help="compile the train step with XLA (the JAX backend always does)",
    )
    g.add_argument(
        "--eval-every",
        type=flag(non_negative_int),
        default=0,
        help="evaluate on the validation set every N epochs (0: never)",
    )
    g.add_argument(
        "--eval-images",
        type=flag(non_negative_int),
        default=0,
        help="evaluate on the first N validation images only (0: all)",
    )
    g.add_argument("--seed", type=int, default=0, help="random seed")
    g.add_argument(
        "--deterministic",
        action="store_true",
        help="the same weights from every run of the same --seed on this machine, at a "
        "cost in speed (TensorFlow backend; cfsam_keras.training.make_deterministic)",
    )
    known = {a.dest for a in p._actions}
    unknown = set(defaults) - known
    if unknown:
        raise KeyError(f"recipe defaults for unknown flags: {sorted(unknown)}")
    p.set_defaults(**defaults)
    return p


def parse_args(parser, argv=None):
    """``parser.parse_args`` with the values of ``--config`` as defaults."""
    argv = sys.argv[1:] if argv is None else list(argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    if known.config:
        try:
            with open(known.config, encoding="utf-8") as f:
                config = json.load(f)
        except (OSError, ValueError) as e:
            parser.error(f"--config {known.config}: {e}")
        if not isinstance(config, dict):
            parser.error(f"--config {known.config}: expected a JSON object of flag values")
        actions = {a.dest: a for a in parser._actions}
        unknown = set(config) - set(actions)
        if unknown:
            parser.error(f"--config {known.config}: unknown flags {sorted(unknown)}")
        # argparse checks a default with the flag's type only when it is a string, so a
        # JSON number is passed on as its text: --config is checked as the flags are.
        parser.set_defaults(
            **{
                k: str(v) if actions[k].type is not None and v is not None else v
                for k, v in config.items()
            }
        )
    args = parser.parse_args(argv)
    running = keras.backend.backend()
    if getattr(args, "backend", None) not in (None, running):
        parser.error(
            f"--backend {args.backend}: Keras already runs on {running}; give --backend "
            "on the recipe's own command line (or set KERAS_BACKEND)"
        )
    if running != "tensorflow" and getattr(args, "eval_every", 0):
        parser.error(
            f"--eval-every {args.eval_every}: evaluation runs per-class NMS, which needs the "
            f"TensorFlow backend, not {running}; train with --eval-every 0 and evaluate the "
            "checkpoint with cfsam-keras evaluate"
        )
    return args


def require_tensorflow_backend(what):
    """Raises a one-line ``ValueError`` unless Keras runs on TensorFlow (``what`` needs it)."""
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            f"--backend {keras.backend.backend()}: {what} needs the TensorFlow backend; "
            "train on JAX with recipes/ssd300.py --eval-every 0"
        )


def start_runtime(args):
    """``--deterministic``, ``--strategy`` and ``--mixed-precision``, in that order
    (determinism must be set before TensorFlow's first op).

    ``args.mixed_precision`` is recorded as resolved (``None``: whether this machine's
    devices compute in 16 bits).

    Returns:
        The strategy.
    """
    if args.deterministic:
        try:
            make_deterministic()
        except ValueError as e:
            raise ValueError(f"--deterministic: {e}") from None
    with start_up_lines_held_back():  # CUDA probing as the devices are set up
        strategy = get_strategy(args.strategy)
    args.mixed_precision = set_mixed_precision(args.mixed_precision, strategy) != "float32"
    return strategy


def setup(args):
    """Strategy, precision policy, seed and run folder for a recipe (`start_runtime`).

    Writes ``config.json`` (all flag values) into the run folder.

    Returns:
        ``(strategy, run_dir)``.
    """
    strategy = start_runtime(args)
    keras.utils.set_random_seed(args.seed)
    run_dir = RunDir(args.out)
    config = dict(vars(args))  # the flags only, so that --config can read it back
    _check_resumable(run_dir, config)
    os.makedirs(run_dir.root, exist_ok=True)
    run_dir.write_config(config)
    return strategy, run_dir


#: Flags that may change when a run is started again with the same --out.
RESUMABLE_CHANGES = (
    "backend",
    "config",
    "deterministic",
    "strategy",
    "eval_every",
    "eval_images",
    "jit_compile",
    "out",
    "epochs",
    "predict_images",
    "skip_export",
)


def _check_resumable(run_dir, config):
    """Refuses, before anything is written, to resume a run with other settings."""
    if not os.path.isfile(run_dir.config):
        return
    try:
        before = run_dir.read_config()
    except (OSError, ValueError):
        return  # unreadable: the backup's own check decides
    changed = sorted(
        k
        for k in set(before) | set(config)
        if k not in RESUMABLE_CHANGES and before.get(k) != config.get(k)
    )
    if changed:
        shown = ", ".join(f"{k} {before.get(k)!r} -> {config.get(k)!r}" for k in changed[:4])
        raise ValueError(
            f"--out {run_dir.root} holds a run with other settings ({shown}); start it again "
            "with the same flags to resume it, or pick another --out"
        )


def build_model(args, class_names, anchor_preset, attention_kwargs=None, backbone_kwargs=None):
    """``SSD300`` from the recipe flags (call inside ``strategy.scope()``)."""
    backbone_kwargs = dict(backbone_kwargs or {})
    if args.backbone == "mobilenet_v2" and args.alpha is not None:
        backbone_kwargs.setdefault("alpha", args.alpha)
    weights = args.backbone_weights
    if str(weights).lower() in ("", "none"):
        weights = None
    model = SSD300(
        class_names=list(class_names),
        backbone=args.backbone,
        attention=args.attention,
        input_size=args.input_size,
        anchor_preset=anchor_preset,
        backbone_weights=weights,
        attention_kwargs=attention_kwargs if args.attention != "none" else None,
        backbone_kwargs=backbone_kwargs,
    )
    if args.bn_momentum is not None:
        set_batch_norm_momentum(model, args.bn_momentum)
    return model


def compile_model(model, args, total_steps, decay_steps=None, warmup_steps=0):
    """Compiles ``model`` with the recipe's optimizer, schedule and MultiBoxLoss.

    The learning rate is ``--lr`` scaled linearly from ``--reference-batch`` to the
    global ``--batch-size``. Call inside ``strategy.scope()``.

    Args:
        model: the SSD model.
        args: the parsed recipe flags.
        total_steps: optimizer steps of the whole run.
        decay_steps: the steps at which the ``step`` schedule decays.
        warmup_steps: steps of linear warm-up.
    """
    lr = scale_learning_rate(args.lr, args.batch_size, args.reference_batch)
    schedule = build_schedule(
        args.schedule,
        lr,
        total_steps=total_steps,
        warmup_steps=warmup_steps,
        boundaries=decay_steps,
    )
    optimizer = build_optimizer(
        args.optimizer,
        schedule,
        weight_decay=args.weight_decay,
        global_clipnorm=args.clipnorm or None,
    )
    model.compile(
        optimizer=optimizer,
        loss=MultiBoxLoss(model_config(model)["num_classes"], alpha=args.loc_weight),
        # Without jit_compile the JAX backend would run the step op by op.
        jit_compile=bool(args.jit_compile) or keras.backend.backend() == "jax",
    )
    return optimizer


def train_data(strategy, args, source, model, **pipeline_kwargs):
    """A recipe's training dataset: ``cfsam_keras.data.train_pipeline`` over
    ``source`` with the model's default boxes and the recipe's ``--input-size``,
    ``--batch-size``, ``--seed`` and ``--max-expand``, prepared for ``strategy``.
    """
    anchors = model_default_boxes(model)
    pipeline_kwargs.setdefault("max_expand", args.max_expand)
    return distribute(
        strategy,
        lambda batch, context: data.train_pipeline(
            source,
            anchors,
            args.input_size,
            batch,
            seed=args.seed,
            input_context=context,
            **pipeline_kwargs,
        ),
        args.batch_size,
    )


def evaluation_callback(args, val_source, run_dir):
    """``EvaluationCallback`` every ``--eval-every`` epochs, or ``None`` for 0."""
    if not args.eval_every:
        return None
    kwargs = {"max_images": args.eval_images} if args.eval_images else {}
    return EvaluationCallback(
        val_data=val_source,
        every_n_epochs=args.eval_every,
        batch_size=max(1, min(args.batch_size, 16)),
        log_dir=run_dir.tensorboard,
        verbose=1,
        **kwargs,
    )


def run(main, argv=None):
    """Runs a recipe's ``main`` as a script: a diverged run or a bad setting ends
    with one line on stderr and exit status 2, not a traceback."""
    try:
        return int(main(argv) or 0)
    except (TrainingDivergedError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


#: The owner recorded in the built-in datasets the recipes write (and may rewrite).
DEMO_OWNER = "recipes/demo.py"


def _legacy_stamp(data_dir):
    """The settings an earlier demo recorded in its stamp file, or ``None``."""
    try:
        with open(os.path.join(data_dir, LEGACY_DEMO_STAMP), encoding="utf-8") as f:
            return dict(json.load(f), owner=DEMO_OWNER)
    except (OSError, ValueError, TypeError):
        return None


def builtin_dataset(data_dir, train, val, image_size, seed):
    """The built-in dataset in ``data_dir``: reused when it was written with these
    settings, else written into a new or empty folder or over one the demo wrote; any
    other folder (other data, or a ``make-dataset`` dataset of other settings) is
    refused, never overwritten.

    Returns:
        ``(train source, val source)``.
    """
    wanted = {"train": train, "val": val, "image_size": image_size, "seed": seed}
    found = data.builtin_manifest(data_dir) or _legacy_stamp(data_dir)
    if found is not None and {k: found.get(k) for k in wanted} == wanted:
        paths = {
            s: (os.path.join(data_dir, f"instances_{s}.json"), os.path.join(data_dir, s))
            for s in ("train", "val")
        }
    else:
        if found is not None and found.get("owner") != DEMO_OWNER:
            raise ValueError(
                f"--data-dir: {data_dir} holds a built-in dataset of other settings "
                f"({found}, not {wanted}); pass those, or another --data-dir"
            )
        try:
            paths = data.write_builtin_dataset(
                data_dir, train=train, val=val, seed=seed, image_size=image_size, owner=DEMO_OWNER
            )
        except FileExistsError as e:
            raise ValueError(f"--data-dir: {e}") from None
    return data.coco(*paths["train"]), data.coco(*paths["val"])


def load_sources(dataset, args):
    """``(train source, val source)`` of SSD300's VOC07+12 / VOC07 test or COCO
    train2017 / val2017, from ``--data-dir`` or, with ``--tfds``, TFDS."""
    if dataset == "voc":
        if args.tfds:
            train = data.tfds_source(
                "voc/2007", "train+validation", args.tfds_dir
            ) + data.tfds_source("voc/2012", "train+validation", args.tfds_dir)
            return train, data.tfds_source("voc/2007", "test", args.tfds_dir)
        train = data.voc(args.data_dir, "2007", "trainval") + data.voc(
            args.data_dir, "2012", "trainval"
        )
        return train, data.voc(args.data_dir, "2007", "test")
    if dataset != "coco":
        raise ValueError(f"unknown dataset {dataset!r}; expected voc or coco")
    if args.tfds:
        return (
            data.tfds_source("coco/2017", "train", args.tfds_dir),
            data.tfds_source("coco/2017", "validation", args.tfds_dir),
        )
    annotations = os.path.join(args.data_dir, "annotations")
    return (
        data.coco(
            os.path.join(annotations, "instances_train2017.json"),
            os.path.join(args.data_dir, "train2017"),
        ),
        data.coco(
            os.path.join(annotations, "instances_val2017.json"),
            os.path.join(args.data_dir, "val2017"),
        ),
    )
