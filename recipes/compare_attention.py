"""Compare attention modules: same seed, data, schedule and budget for every variant.

Trains SSD with each attention variant (none, cfsam, cfsam with pooled keys /
values, se, cbam, eca) for every seed, evaluates COCO AP and VOC mAP after every
epoch, and writes OUT/compare.json (every run, every epoch). Finished runs are
kept in OUT/runs/ and skipped when the command is started again, so an
interrupted comparison resumes. ``python benchmarks/report.py`` turns the JSON
into tables, the convergence plot and docs/results.md.

    python recipes/compare_attention.py --out docs/results/compare_builtin     # CPU, built-in
    python recipes/compare_attention.py --dataset voc --data-dir ~/data/VOCdevkit   # GPU
    python recipes/compare_attention.py --dataset coco --tfds                       # GPU

``--dataset builtin`` trains the demo's model (configs.DEMO_MODEL) with the demo's
flags (configs.DEMO) on the demo's dataset; ``--epochs`` and ``--steps-per-epoch``
set the budget. ``voc`` and ``coco`` train SSD300-VGG16 with SSD's published
schedule (configs.SSD300, configs.SSD300_DATASETS), as ``ssd300.py`` does.
"""

import argparse
import functools
import json
import math
import os
import sys
import time

import common
import configs
import keras

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))
import harness  # noqa: E402 (benchmarks/harness.py: the machine a comparison ran on)

from cfsam_keras import data
from cfsam_keras import training
from cfsam_keras.evaluation import EvaluationCallback
from cfsam_keras.evaluation.evaluation_callback import LOGGED_KEYS
from cfsam_keras.training.callbacks import atomic_write_json
from cfsam_keras.validation import flag
from cfsam_keras.validation import positive_int

DATASETS = ("builtin",) + tuple(configs.SSD300_DATASETS)


def dataset_settings(name):
    """(flag defaults, anchor preset, backbone_kwargs, CFSAM kwargs) of a dataset."""
    if name == "builtin":
        model = configs.DEMO_MODEL
        defaults = dict(configs.DEMO, eval_every=1, out="runs/compare_builtin")
        # "cfsam" is the faithful full attention; "cfsam_kv" adds --kv-pool-size.
        cfsam = {k: v for k, v in model["attention_kwargs"].items() if k != "kv_pool_size"}
        return defaults, model["anchor_preset"], dict(model["backbone_kwargs"]), cfsam
    if name not in configs.SSD300_DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {DATASETS}")
    settings = configs.SSD300_DATASETS[name]
    defaults = dict(
        configs.SSD300, data_dir=settings["data_dir"], eval_every=1, out=f"runs/compare_{name}"
    )
    return defaults, settings["anchor_preset"], {}, {}


def variants(cfsam_kwargs, kv_pool_size):
    """Variant name -> (attention, attention_kwargs)."""
    return {
        "none": ("none", {}),
        "cfsam": ("cfsam", dict(cfsam_kwargs)),
        f"cfsam_kv{kv_pool_size}": ("cfsam", dict(cfsam_kwargs, kv_pool_size=kv_pool_size)),
        "se": ("se", {}),
        "cbam": ("cbam", {}),
        "eca": ("eca", {}),
    }


def add_builtin_flags(group):
    """--train-images, --val-images and --image-size of the built-in dataset."""
    sizes = configs.DEMO_DATASET
    for name, key, text in (
        ("--train-images", "train", "generated train images"),
        ("--val-images", "val", "generated val images"),
        ("--image-size", "image_size", "side of the generated images"),
    ):
        group.add_argument(
            name, type=flag(positive_int), default=sizes[key], help=f"builtin: {text}"
        )


def parser(argv):
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--dataset", choices=DATASETS, default="builtin")
    known, _ = pre.parse_known_args(argv)
    p = common.recipe_parser(
        __doc__.split("\n\n")[0], dataset_settings(known.dataset)[0], prog="compare_attention"
    )
    g = p.add_argument_group("comparison")
    g.add_argument(
        "--dataset",
        choices=DATASETS,
        default="builtin",
        help="builtin: CPU-sized; voc / coco: the paper's setting (GPU)",
    )
    g.add_argument(
        "--variants",
        default="none,cfsam,cfsam_kv,se,cbam,eca",
        help="comma-separated variants (cfsam_kv = CFSAM with --kv-pool-size)",
    )
    g.add_argument(
        "--seeds", default="0,1,2", help="comma-separated seeds, one run each per variant"
    )
    g.add_argument(
        "--kv-pool-size",
        type=flag(positive_int),
        default=4,
        help="kv_pool_size of the cfsam_kv variant",
    )
    add_builtin_flags(g)
    g.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: tiny data and model, 2 epochs of 2 steps, seed 0, none + cfsam",
    )
    g.add_argument(
        "--collect",
        action="store_true",
        help="write OUT/compare.json from the runs kept in OUT/runs and train nothing "
        "(the rest are listed as missing)",
    )
    return p


def apply_quick(args):
    args.train_images, args.val_images, args.image_size = 16, 8, 64
    args.input_size, args.batch_size, args.reference_batch = 64, 4, 4
    args.epochs, args.steps_per_epoch, args.eval_images = 2, 2, 0
    args.seeds = "0"
    if args.variants == parser([]).get_default("variants"):
        args.variants = "none,cfsam"
    args.data_dir = os.path.join(args.out, "data")
    return args


def load_sources(args):
    if args.dataset == "builtin":
        return common.builtin_dataset(
            args.data_dir,
            args.train_images,
            args.val_images,
            args.image_size,
            configs.DEMO_DATASET["seed"],
        )
    return common.load_sources(args.dataset, args)


class EpochTimer(keras.callbacks.Callback):
    """Records the wall time of every epoch's training steps (not its evaluation)."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self._last = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._last = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(self._last - self._start)


def schedule_steps(args, source):
    """(steps per epoch, epochs, total steps, decay steps) of one run: ``--epochs``
    when given (the builtin dataset's default), else SSD's published schedule."""
    steps = args.steps_per_epoch or data.steps_per_epoch(source, args.batch_size)
    if args.epochs:
        return steps, args.epochs, args.epochs * steps, None
    total, decay = configs.SSD300_DATASETS[args.dataset]["schedule"].at_batch(args.batch_size)
    return steps, math.ceil(total / steps), total, decay


def train_one(
    args, name, attention, attention_kwargs, seed, sources, settings, strategy, make_model=None
):
    """Trains and evaluates one (variant, seed) under ``strategy``; returns its record.

    ``make_model(run_args)`` builds the model to train (inside the strategy's scope);
    by default ``common.build_model`` from the flags and ``settings``.
    """
    train_source, val_source = sources
    _, anchor_preset, backbone_kwargs, _ = settings
    run_args = argparse.Namespace(**vars(args))
    run_args.attention, run_args.seed = attention, seed
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    steps, epochs, total, decay = schedule_steps(args, train_source)
    with strategy.scope():
        if make_model is None:
            model = common.build_model(
                run_args,
                train_source.class_names,
                anchor_preset,
                attention_kwargs=attention_kwargs,
                backbone_kwargs=backbone_kwargs,
            )
        else:
            model = make_model(run_args)
        common.compile_model(model, run_args, total, decay, round(args.warmup_epochs * steps))
    train_data = common.train_data(strategy, run_args, train_source, model)
    evaluation = EvaluationCallback(
        val_data=val_source,
        every_n_epochs=1,
        batch_size=max(1, min(args.batch_size, 16)),
        **({"max_images": args.eval_images} if args.eval_images else {}),
    )
    timer = EpochTimer()
    start = time.perf_counter()
    with training.fit_scope(model, strategy, train_data):
        history = model.fit(
            train_data,
            epochs=epochs,
            steps_per_epoch=steps,
            callbacks=[
                training.RequireFullEpochs(train_source),
                timer,
                evaluation,
                training.StopAtStep(total),
            ],
            verbose=0,
            shuffle=False,
        )
    logs = history.history
    records = []
    for i in range(len(logs["loss"])):
        entry = {"epoch": i + 1, "loss": float(logs["loss"][i]), "train_seconds": timer.seconds[i]}
        entry.update({key: float(logs[f"val_{key}"][i]) for key in LOGGED_KEYS})
        records.append(entry)
    return {
        "variant": name,
        "attention": attention,
        "attention_kwargs": attention_kwargs,
        "seed": seed,
        "params": int(model.count_params()),
        "steps_per_epoch": steps,
        "epochs": records,
        "final": {k: v for k, v in records[-1].items() if k != "epoch"},
        "wall_seconds": time.perf_counter() - start,
    }


#: Flags that name where a run is kept, which runs to make, or how the work is
#: spread, not what a run trains: a kept run is reused whatever they are.
BOOKKEEPING = (
    "attention",
    "collect",
    "config",
    "data_dir",
    "kv_pool_size",
    "out",
    "quick",
    "seed",
    "seeds",
    "strategy",
    "tfds_dir",
    "variants",
)


def run_settings(args):
    """The flags that decide what a run trains, as JSON stores them (kept in each run's
    record, so that a later start reuses only runs made with the same ones)."""
    kept = {k: v for k, v in sorted(vars(args).items()) if k not in BOOKKEEPING}
    return json.loads(json.dumps(kept))


def run_path(runs_dir, name, seed):
    """Where one (variant, seed)'s record is kept."""
    return os.path.join(runs_dir, f"{name}_seed{seed}.json")


def kept_run(runs_dir, name, seed, settings):
    """The record of one (variant, seed) that an earlier start kept in ``runs_dir``, or
    None when there is none.

    Raises:
        ValueError: the kept run was made with other ``settings`` (`run_settings`),
            naming the file and the flags that differ.
    """
    path = run_path(runs_dir, name, seed)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        record = json.load(f)
    kept = record.get("settings", {})
    differ = sorted(k for k in set(kept) | set(settings) if kept.get(k) != settings.get(k))
    if differ:
        raise ValueError(
            f"{path}: a run made with other settings ({', '.join(differ)}); "
            "delete it or choose another --out"
        )
    return record


def run_grid(runs_dir, grid, settings, train, write=None):
    """Every (variant, seed) pair of ``grid``, in its order: kept or trained.

    The runs an earlier start kept in ``runs_dir`` with the same ``settings`` are
    read first (one made with other settings is refused before anything trains);
    the others are made by ``train(name, seed)`` and kept there, atomically, with
    ``settings``. ``write(runs, missing)``, when given, is called with the finished
    runs (grid order) and the pairs still missing once the kept runs are read and
    again after every new run, so an interrupted comparison leaves all it finished.
    ``train=None`` trains nothing.

    Returns:
        The records of the finished pairs, in grid order.
    """
    records = {}
    for name, seed in grid:
        record = kept_run(runs_dir, name, seed, settings)
        if record is not None:
            print(f"{name} seed {seed}: done earlier, kept", flush=True)
            records[name, seed] = record

    def progress():
        if write is not None:
            write(
                [records[p] for p in grid if p in records],
                [{"variant": n, "seed": s} for n, s in grid if (n, s) not in records],
            )

    progress()
    for name, seed in grid:
        if (name, seed) in records or train is None:
            continue
        record = dict(train(name, seed), settings=settings)
        atomic_write_json(record, run_path(runs_dir, name, seed))
        final = record["final"]
        print(
            f"{name} seed {seed}: AP50 {final['AP50']:.3f} AP {final['AP']:.3f} "
            f"({record['wall_seconds']:.0f} s)",
            flush=True,
        )
        records[name, seed] = record
        progress()
    return [records[p] for p in grid if p in records]


def write_result(out, dataset, config, records, missing, load_before, keep_machine=False):
    """Writes OUT/compare.json: the settings, the finished runs and the (variant, seed)
    pairs not finished yet. ``keep_machine`` keeps the machine entry (load averages) of
    the compare.json it replaces, if any: `--collect` trains nothing, so its own load
    would say nothing of the runs."""
    path = os.path.join(out, "compare.json")
    machine = None
    if keep_machine and os.path.isfile(path):
        with open(path) as f:
            machine = json.load(f).get("machine")
    result = {
        "dataset": dataset,
        "settings": config,
        "runs": records,
        "missing": missing,
        "machine": machine or harness.machine(load_before),
    }
    atomic_write_json(result, path)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = common.parse_args(parser(argv), argv)
    if args.quick:
        apply_quick(args)
    common.require_tensorflow_backend("the comparison's evaluation after every epoch")
    if args.eval_every != 1:
        raise ValueError("--eval-every: the comparison evaluates after every epoch (1)")
    settings = dataset_settings(args.dataset)
    all_variants = variants(settings[3], args.kv_pool_size)
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    names = [f"cfsam_kv{args.kv_pool_size}" if n == "cfsam_kv" else n for n in names]
    unknown = [n for n in names if n not in all_variants]
    if unknown:
        raise ValueError(f"--variants: unknown {unknown}; known: {sorted(all_variants)}")
    if "none" not in names:
        raise ValueError("--variants must include the baseline 'none'")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]

    load_before = harness.load_average()
    strategy = common.start_runtime(args)
    sources = None if args.collect else load_sources(args)
    runs_dir = os.path.join(args.out, "runs")
    os.makedirs(runs_dir, exist_ok=True)
    config = {k: v for k, v in vars(args).items() if k != "config"}
    config.update(
        anchor_preset=settings[1], backbone_kwargs=settings[2], variants=names, seeds=seeds
    )
    grid = [(name, seed) for seed in seeds for name in names]

    def train(name, seed):
        attention, kwargs = all_variants[name]
        return train_one(args, name, attention, kwargs, seed, sources, settings, strategy)

    run_grid(
        runs_dir,
        grid,
        run_settings(args),
        None if args.collect else train,
        functools.partial(
            write_result,
            args.out,
            args.dataset,
            config,
            load_before=load_before,
            keep_machine=args.collect,
        ),
    )
    print(
        f"wrote {os.path.join(args.out, 'compare.json')}; render it with "
        "python benchmarks/report.py"
    )
    return 0


if __name__ == "__main__":
    sys.exit(common.run(main))
