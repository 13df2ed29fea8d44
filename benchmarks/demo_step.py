"""Time per training step of the demo's model and of cheaper variants, fed and not fed.

    python benchmarks/demo_step.py [--out docs/results] [--variants "demo,attention none"]
        [--steps 15] [--warmup-steps 5] [--rounds 3] [--images 256] [--quick]

Each variant is the demo (``recipes/demo.py`` with its flag defaults, the model of
``configs.DEMO_MODEL``) with one or two things changed, compiled as the demo compiles it
(``common.compile_model``: AdamW, cosine schedule, clipping, ``MultiBoxLoss``). In every
round each variant runs, in turn, ``--steps`` training steps two ways:

- fed: each step takes the next batch of the demo's training pipeline (augmentation and
  matching) over a built-in dataset of ``--images`` images, which works on the same cores;
- cached: every step reuses one batch taken from that pipeline before timing.

Before each timed stretch ``--warmup-steps`` untimed steps run the same way, so the batches
the pipeline prefetched while the other variants ran are used up first. ``1 - cached / fed``
is the share of the fed step that input work costs. Writes OUT/demo_step.json and .md.
"""

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import time

import harness

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: Name -> (demo flags changed, backbone widths or None for the demo's, CFSAM arguments
#: changed). Names hold no comma (``--variants`` is comma-separated).
VARIANTS = {
    "demo": ([], None, {}),
    "attention none": (["--attention", "none"], None, {}),
    "cfsam embed 32": ([], None, {"embed_dim": 32}),
    "input 160": (["--input-size", "160"], None, {}),
    "widths 16-32-64-128": ([], (16, 32, 64, 128), {}),
    "input 160 + widths 16-32-64-128": (["--input-size", "160"], (16, 32, 64, 128), {}),
    "batch 8": (["--batch-size", "8"], None, {}),
    "batch 4": (["--batch-size", "4"], None, {}),
    "mixed bfloat16": (["--mixed-precision"], None, {}),
    "xla": (["--jit-compile"], None, {}),
    "keras batch norm": ([], None, {}),
}
#: The variant whose BatchNormalization layers train with Keras' own code, not the fused
#: kernel (``cfsam_keras.layers.BatchNormalization``): the same model and results.
KERAS_BATCH_NORM = "keras batch norm"
#: Variants, steps and dataset of ``--quick`` (a smoke run: tiny inputs, few steps).
QUICK = dict(
    variants="demo,attention none",
    steps=2,
    warmup_steps=1,
    rounds=1,
    images=8,
    flags=["--input-size", "64", "--batch-size", "2"],
)
FULL = dict(variants=",".join(VARIANTS), steps=15, warmup_steps=5, rounds=3, images=256, flags=[])


def build_variant(name, base_flags, source, strategy=None):
    """The variant's model compiled as the demo compiles it, and its training dataset.

    Args:
        name: a key of ``VARIANTS``.
        base_flags: demo flags every variant gets (before its own).
        source: the training source.
        strategy: the ``tf.distribute`` strategy to build under (default: TensorFlow's
            default strategy, which is also the demo's on a CPU).

    Returns:
        ``(model, dataset, batch_size)``.
    """
    import tensorflow as tf

    from cfsam_keras.training import set_mixed_precision

    configs = harness.recipe_configs()  # puts the recipes folder on the path
    import common
    import demo

    flags, widths, attention_kwargs = VARIANTS[name]
    args = demo.parser().parse_args(base_flags + flags + ["--out", "unused"])
    model_settings = configs.DEMO_MODEL
    strategy = strategy or tf.distribute.get_strategy()
    # The dtype policy is global: set for this variant's model only, as the recipe sets it.
    set_mixed_precision(args.mixed_precision, strategy)
    try:
        with strategy.scope():
            model = common.build_model(
                args,
                source.class_names,
                model_settings["anchor_preset"],
                attention_kwargs={**model_settings["attention_kwargs"], **attention_kwargs},
                backbone_kwargs={"widths": widths or model_settings["backbone_kwargs"]["widths"]},
            )
            # The schedule recipes/demo.py sets over its own dataset.
            steps = max(1, configs.DEMO_DATASET["train"] // args.batch_size)
            common.compile_model(
                model, args, args.epochs * steps, warmup_steps=round(args.warmup_epochs * steps)
            )
    finally:
        set_mixed_precision(False, strategy)
    if name == KERAS_BATCH_NORM:
        keras_batch_norm(model)
    dataset = common.train_data(strategy, args, source, model)
    return model, dataset, args.batch_size


def keras_batch_norm(model):
    """Makes every BatchNormalization of ``model`` run ``keras.layers.BatchNormalization.call``.

    Returns:
        the number of layers changed.
    """
    import keras

    from cfsam_keras.layers import BatchNormalization

    changed = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, BatchNormalization):
            layer.call = keras.layers.BatchNormalization.call.__get__(layer)
            changed += 1
    return changed


def _stretch(model, batches, steps):
    """Wall and process-CPU seconds of ``steps`` training steps on ``batches()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        images, targets = batches()
        model.train_on_batch(images, targets)
    return time.perf_counter() - wall, time.process_time() - cpu


def time_variants(built, steps, warmup_steps, rounds):
    """Per variant and way of feeding: per-round seconds per step (wall and CPU).

    Args:
        built: dict name -> ``(model, dataset, batch_size)`` (`build_variant`).

    Returns:
        dict name -> {"fed"|"cached" -> {"wall_s": [...], "cpu_s": [...]}}.
    """
    feeds = {}
    for name, (_, dataset, _) in built.items():
        iterator = iter(dataset)
        cached = next(iterator)
        feeds[name] = {"fed": lambda it=iterator: next(it), "cached": lambda b=cached: b}
    times = {n: {way: {"wall_s": [], "cpu_s": []} for way in ("fed", "cached")} for n in built}
    for _ in range(rounds):
        for name, (model, _, _) in built.items():
            for way, batches in feeds[name].items():
                _stretch(model, batches, warmup_steps)
                wall, cpu = _stretch(model, batches, steps)
                times[name][way]["wall_s"].append(wall / steps)
                times[name][way]["cpu_s"].append(cpu / steps)
    return times


def summarize(times, batch_sizes, params):
    """Rows of the table: medians, the input share and ms per image against the demo's."""
    rows = {}
    for name, ways in times.items():
        fed, cached = (statistics.median(ways[w]["wall_s"]) for w in ("fed", "cached"))
        rows[name] = dict(
            batch_size=batch_sizes[name],
            parameters=params[name],
            fed_s_per_step=fed,
            cached_s_per_step=cached,
            input_share=1 - cached / fed,
            fed_cpu_s_per_step=statistics.median(ways["fed"]["cpu_s"]),
            cached_cpu_s_per_step=statistics.median(ways["cached"]["cpu_s"]),
            fed_ms_per_image=1000 * fed / batch_sizes[name],
        )
    base = rows.get("demo")
    for row in rows.values():
        row["vs_demo"] = row["fed_ms_per_image"] / base["fed_ms_per_image"] if base else None
    return rows


def table(record):
    s = record["settings"]
    lines = [
        "| variant | batch | params | fed s / step | cached s / step | input share "
        "| fed CPU s / step | cached CPU s / step | fed ms / image | vs demo (ms / image) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in record["rows"].items():
        vs = "" if r["vs_demo"] is None else f"{r['vs_demo']:.2f}"
        lines.append(
            f"| {name} | {r['batch_size']} | {r['parameters'] / 1e6:.2f}M "
            f"| {r['fed_s_per_step']:.3f} | {r['cached_s_per_step']:.3f} | {r['input_share']:.0%} "
            f"| {r['fed_cpu_s_per_step']:.2f} | {r['cached_cpu_s_per_step']:.2f} "
            f"| {r['fed_ms_per_image']:.1f} | {vs} |"
        )
    m = record["machine"]
    lines += [
        "",
        f"Medians of {s['rounds']} rounds of {s['steps']} training steps per variant and way "
        f"of feeding, each after {s['warmup_steps']} untimed steps, the variants taking turns; "
        f"built-in dataset of {s['images']} images of {s['image_size']} px. {m['cores']} CPU "
        f"cores ({m['cpu']}), 1-minute load average {harness.load_text(m)} (before/after); "
        f"keras {m.get('keras')}, tensorflow {m.get('tensorflow')}. CPU seconds are this "
        "process's, over all its threads (the pipeline's included).",
        "",
        f"Command: `{record['command']}`",
        "",
    ]
    return "\n".join(lines)


def parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join("docs", "results"), help="results folder")
    p.add_argument("--quick", action="store_true", help="two tiny variants, one round")
    p.add_argument("--variants", help=f"comma-separated, of {list(VARIANTS)} (default all)")
    for key in ("steps", "warmup_steps", "rounds", "images"):
        p.add_argument("--" + key.replace("_", "-"), type=int, help=f"default {FULL[key]}")
    return p


def parse(argv=None):
    p = parser()
    args = p.parse_args(argv)
    counts = QUICK if args.quick else FULL
    harness.fill_counts(
        p, args, {k: counts[k] for k in ("steps", "rounds", "images", "warmup_steps")}
    )
    args.variants = [v.strip() for v in (args.variants or counts["variants"]).split(",")]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown or not args.variants:
        p.error(f"--variants: unknown {unknown}; known: {list(VARIANTS)}")
    args.flags = counts["flags"]
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    load_before = harness.load_average()
    import keras

    from cfsam_keras.data import coco
    from cfsam_keras.data import write_builtin_dataset
    from cfsam_keras.runtime import pool_cpu_memory

    pool_cpu_memory()  # the demo's allocator: set before the first TensorFlow op

    configs = harness.recipe_configs()
    image_size = 64 if args.quick else configs.DEMO_DATASET["image_size"]
    keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_builtin_dataset(tmp, train=args.images, val=0, seed=0, image_size=image_size)
        source = coco(*paths["train"])
        built = {name: build_variant(name, args.flags, source) for name in args.variants}
        times = time_variants(built, args.steps, args.warmup_steps, args.rounds)
    rows = summarize(
        times,
        {n: b[2] for n, b in built.items()},
        {n: b[0].count_params() for n, b in built.items()},
    )
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    settings["image_size"] = image_size
    record = dict(
        settings=settings,
        machine=harness.machine(load_before),
        rows=rows,
        times=times,
        command=shlex.join(["python", "benchmarks/demo_step.py"] + argv),
    )
    harness.write_results(args.out, "demo_step", record, table(record))
    return record


if __name__ == "__main__":
    main()
