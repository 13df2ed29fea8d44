"""Compare attention modules: same seed, data, schedule and budget for every variant.

Trains SSD with each attention variant (none, cfsam, cfsam with pooled keys /
values, se, cbam, eca) for every seed, evaluates COCO AP and VOC mAP after
every epoch, and writes OUT/compare.json (every run, every epoch),
OUT/compare.md (the table) and OUT/convergence.png (AP50 per epoch).
Finished runs are kept in OUT/runs/ and skipped when the command is started
again, so an interrupted comparison resumes.

    python recipes/compare_attention.py --out docs/results/compare_builtin          # CPU, built-in data
    python recipes/compare_attention.py --dataset voc --data-dir ~/data/VOCdevkit   # GPU, the paper's setting
    python recipes/compare_attention.py --dataset coco --tfds
    python recipes/compare_attention.py --out docs/results/compare_builtin --render-only

``--dataset builtin`` uses the model of recipes/demo.py (the small VGG-style
backbone, 64-wide CFSAM, AdamW + cosine) on the demo's built-in shapes dataset
(``--input-size``, ``--epochs`` and ``--steps-per-epoch`` set the budget);
``voc`` and ``coco`` use SSD300-VGG16 with SSD's published SGD schedule
(VOC07+12 trainval -> VOC07 test; COCO train2017 -> val2017).
"""

import argparse
import importlib.util
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _demo():
    spec = importlib.util.spec_from_file_location("cfsam_demo_recipe", os.path.join(HERE, "demo.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dataset_settings(name):
    """(flag defaults, anchor preset, backbone_kwargs by backbone, cfsam kwargs) of a dataset."""
    if name == "builtin":
        demo = _demo()
        defaults = dict(demo.DEFAULTS, eval_every=1, out="runs/compare_builtin")
        # "cfsam" is the faithful full attention; "cfsam_kv" adds --kv-pool-size.
        cfsam = {k: v for k, v in demo.ATTENTION_KWARGS["cfsam"].items() if k != "kv_pool_size"}
        return defaults, demo.ANCHOR_PRESET, dict(demo.BACKBONE_KWARGS), cfsam
    common = dict(
        backbone="vgg16", alpha=1.0, input_size=300, backbone_weights="imagenet",
        batch_size=32, optimizer="sgd", lr=1e-3, reference_batch=32, schedule="step",
        warmup_epochs=0.0, weight_decay=5e-4, clipnorm=0.0, strategy="auto",
        eval_every=1, eval_images=0, seed=0, steps_per_epoch=None,
    )
    if name == "voc":
        # SSD300 on VOC07+12 (16551 images): 120k iterations at batch 32 (~232 epochs),
        # x0.1 at 80k and 100k.
        return dict(common, data_dir="data/VOCdevkit", epochs=232, decay_epochs=[155.0, 193.0],
                    out="runs/compare_voc"), "voc", {}, {}
    if name == "coco":
        # SSD300 on COCO (~118k images): 400k iterations at batch 32 (~108 epochs),
        # x0.1 at 280k and 360k.
        return dict(common, data_dir="data/coco", epochs=108, decay_epochs=[76.0, 97.0],
                    out="runs/compare_coco"), "coco", {}, {}
    raise ValueError(f"Unknown dataset {name!r}; expected builtin, voc or coco")


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


def parser(argv):
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--dataset", choices=("builtin", "voc", "coco"), default="builtin")
    known, _ = pre.parse_known_args(argv)
    defaults = dataset_settings(known.dataset)[0]
    from cfsam_keras.training.recipe import recipe_parser

    p = recipe_parser(__doc__.split("\n\n")[0], defaults, prog="compare_attention")
    g = p.add_argument_group("comparison")
    g.add_argument("--dataset", choices=("builtin", "voc", "coco"), default="builtin",
                   help="builtin: CPU-sized; voc / coco: the paper's setting (GPU)")
    g.add_argument("--variants", default="none,cfsam,cfsam_kv,se,cbam,eca",
                   help="comma-separated variants (cfsam_kv = CFSAM with --kv-pool-size)")
    g.add_argument("--seeds", default="0,1,2", help="comma-separated seeds, one run each per variant")
    g.add_argument("--kv-pool-size", type=int, default=4,
                   help="kv_pool_size of the cfsam_kv variant")
    g.add_argument("--train-images", type=int, default=2000,
                   help="builtin: generated train images (the demo's 2000 reuse its dataset)")
    g.add_argument("--val-images", type=int, default=300, help="builtin: generated val images")
    g.add_argument("--image-size", type=int, default=192, help="builtin: side of the generated images")
    g.add_argument("--latency-runs", type=int, default=20, help="timed batch-1 runs per variant")
    g.add_argument("--quick", action="store_true",
                   help="a smoke run: tiny data and model, 2 epochs of 2 steps, seed 0, none + cfsam")
    g.add_argument("--render-only", action="store_true",
                   help="only rewrite compare.md and convergence.png from OUT/compare.json")
    return p


def apply_quick(args):
    args.train_images, args.val_images, args.image_size = 16, 8, 64
    args.input_size, args.batch_size, args.reference_batch = 64, 4, 4
    args.epochs, args.steps_per_epoch, args.eval_images = 2, 2, 0
    args.seeds, args.latency_runs = "0", 3
    if args.variants == parser([]).get_default("variants"):
        args.variants = "none,cfsam"
    args.data_dir = os.path.join(args.out, "data")
    return args


def load_sources(args):
    """(train source, val source) for ``--dataset``."""
    from cfsam_keras import data

    if args.dataset == "builtin":
        paths = _demo().builtin_dataset(args.data_dir, args.train_images, args.val_images,
                                        args.image_size, 0)
        return data.coco(*paths["train"]), data.coco(*paths["val"])
    if args.dataset == "voc":
        if args.tfds:
            train = data.tfds_source("voc/2007", "train+validation", args.tfds_dir) + data.tfds_source(
                "voc/2012", "train+validation", args.tfds_dir)
            return train, data.tfds_source("voc/2007", "test", args.tfds_dir)
        train = data.voc(args.data_dir, "2007", "trainval") + data.voc(args.data_dir, "2012", "trainval")
        return train, data.voc(args.data_dir, "2007", "test")
    if args.tfds:
        return (data.tfds_source("coco/2017", "train", args.tfds_dir),
                data.tfds_source("coco/2017", "validation", args.tfds_dir))
    root = args.data_dir
    return (data.coco(os.path.join(root, "annotations", "instances_train2017.json"), os.path.join(root, "train2017")),
            data.coco(os.path.join(root, "annotations", "instances_val2017.json"), os.path.join(root, "val2017")))


def epoch_timer():
    """A callback recording the wall time of every epoch's training steps
    (the evaluation after the last step is not included)."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = self._last = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self._last = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(self._last - self._start)

    return EpochTimer()


def train_one(args, name, attention, attention_kwargs, seed, sources, settings, strategy):
    """Trains and evaluates one (variant, seed) under ``strategy``; returns its record."""
    import keras

    from cfsam_keras import data
    from cfsam_keras.evaluation import EvaluationCallback
    from cfsam_keras.training import recipe

    train_source, val_source = sources
    _, anchor_preset, backbone_kwargs, _ = settings
    run_args = argparse.Namespace(**vars(args))
    run_args.attention, run_args.seed = attention, seed
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    steps = args.steps_per_epoch or data.steps_per_epoch(train_source, args.batch_size)
    with strategy.scope():
        model = recipe.build_model(run_args, train_source.num_classes, anchor_preset,
                                   attention_kwargs=attention_kwargs,
                                   backbone_kwargs=backbone_kwargs.get(args.backbone))
        recipe.compile_model(model, run_args, steps, train_source.num_classes)
    train_data = recipe.train_data(strategy, run_args, train_source, model)
    evaluation = EvaluationCallback(val_data=val_source, every_n_epochs=1,
                                    batch_size=max(1, min(args.batch_size, 16)),
                                    **({"max_images": args.eval_images} if args.eval_images else {}))
    timer = epoch_timer()
    start = time.perf_counter()
    with recipe.fit_scope(model, strategy, train_data):
        history = model.fit(train_data, epochs=args.epochs, steps_per_epoch=steps,
                            callbacks=[timer, evaluation], verbose=0, shuffle=False)
    logs = history.history
    epochs = []
    for i in range(args.epochs):
        entry = {"epoch": i + 1, "loss": float(logs["loss"][i]), "train_seconds": timer.seconds[i]}
        for key in ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "voc_map"):
            entry[key] = float(logs[f"val_{key}"][i])
        epochs.append(entry)
    return {
        "variant": name, "attention": attention, "attention_kwargs": attention_kwargs,
        "seed": seed, "params": int(model.count_params()), "steps_per_epoch": steps,
        "epochs": epochs, "final": {k: v for k, v in epochs[-1].items() if k != "epoch"},
        "wall_seconds": time.perf_counter() - start,
    }


def measure_latency(args, chosen, settings, num_classes):
    """Batch-1 CPU latency of every variant, timed in interleaved rounds."""
    from cfsam_keras.benchmarks.cost import Variant, interleaved_latency

    _, anchor_preset, backbone_kwargs, _ = settings
    model_kwargs = dict(num_classes=num_classes, backbone=args.backbone, input_size=args.input_size,
                        anchor_preset=anchor_preset,
                        backbone_kwargs=dict(backbone_kwargs.get(args.backbone) or {}))
    if args.backbone == "mobilenet_v2":
        model_kwargs["backbone_kwargs"]["alpha"] = args.alpha
    rows = [Variant(name, "compare", attention, kwargs, model_kwargs)
            for name, (attention, kwargs) in chosen.items()]
    return interleaved_latency(rows, runs=args.latency_runs)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parser(argv).parse_args(argv)
    from cfsam_keras.benchmarks import report

    result_file = os.path.join(args.out, "compare.json")
    if args.render_only:
        if not os.path.isfile(result_file):
            raise SystemExit(f"error: --render-only: no results in {result_file}")
        report.write_comparison(args.out)
        print(f"rewrote {os.path.join(args.out, 'compare.md')} and convergence.png")
        return 0
    if args.quick:
        apply_quick(args)
    if args.eval_every != 1:
        raise SystemExit("error: --eval-every: the comparison evaluates after every epoch (1)")
    settings = dataset_settings(args.dataset)
    all_variants = variants(settings[3], args.kv_pool_size)
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    names = [f"cfsam_kv{args.kv_pool_size}" if n == "cfsam_kv" else n for n in names]
    unknown = [n for n in names if n not in all_variants]
    if unknown:
        raise SystemExit(f"error: --variants: unknown {unknown}; known: {sorted(all_variants)}")
    if "none" not in names:
        raise SystemExit("error: --variants must include the baseline 'none'")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    chosen = {n: all_variants[n] for n in names}

    from cfsam_keras.training import get_strategy, set_mixed_precision

    try:
        strategy = get_strategy(args.strategy)
    except ValueError as e:
        raise SystemExit(f"error: --strategy: {e}")
    set_mixed_precision(args.mixed_precision, strategy)
    sources = load_sources(args)
    runs_dir = os.path.join(args.out, "runs")
    os.makedirs(runs_dir, exist_ok=True)
    records = []
    for seed in seeds:
        for name, (attention, kwargs) in chosen.items():
            path = os.path.join(runs_dir, f"{name}_seed{seed}.json")
            if os.path.isfile(path):
                with open(path) as f:
                    records.append(json.load(f))
                print(f"{name} seed {seed}: done earlier, kept", flush=True)
                continue
            record = train_one(args, name, attention, kwargs, seed, sources, settings, strategy)
            with open(path + ".tmp", "w") as f:
                json.dump(record, f, indent=1)
            os.replace(path + ".tmp", path)
            records.append(record)
            final = record["final"]
            print(f"{name} seed {seed}: AP50 {final['AP50']:.3f} AP {final['AP']:.3f} "
                  f"({record['wall_seconds']:.0f} s)", flush=True)
    latency = measure_latency(args, chosen, settings, sources[0].num_classes)
    config = {k: v for k, v in vars(args).items() if k not in ("run", "render_only")}
    config.update(anchor_preset=settings[1], backbone_kwargs=settings[2], variants=names, seeds=seeds)
    result = {"dataset": args.dataset, "settings": config, "runs": records, "latency": latency,
              "machine": report.machine()}
    with open(result_file, "w") as f:
        json.dump(result, f, indent=1)
    report.write_comparison(args.out)
    print(open(os.path.join(args.out, "compare.md")).read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
