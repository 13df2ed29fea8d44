"""The demo's training step under process-wide settings, as ``model.fit`` runs it.

    python benchmarks/process_settings.py [--out docs/results] [--steps 20]
        [--warmup-steps 5] [--rounds 2] [--images 256] [--quick]

Some settings are chosen once per process: TensorFlow's CPU allocator
(``TF_CPU_ALLOCATOR_USE_BFC``, read at its first tensor), its inter-op threads (fixed
when its runtime starts) and, here, the strategy. So each measurement is a child process
of this script: it builds the demo's model and training pipeline under a strategy
(``demo_step.build_variant("demo", ...)``), runs ``--warmup-steps`` untimed steps of
``model.fit`` and then ``--steps`` timed ones, and reports wall, user and system CPU
seconds per step, and a fingerprint of the weights it ended with. In every round one
child runs with each setting, in turn:

- malloc: ``TF_CPU_ALLOCATOR_USE_BFC=false``, TensorFlow's default allocator, under the
  demo's strategy (its ``--strategy`` default, ``auto``: TensorFlow's default strategy
  on a CPU);
- pooled: ``TF_CPU_ALLOCATOR_USE_BFC=true``, what ``cfsam_keras.runtime.pool_cpu_memory``
  sets for the recipes and the command line;
- pooled, OneDeviceStrategy: that under ``--strategy one_device`` (what ``auto`` was);
- pooled, deterministic: pooled and ``cfsam_keras.training.make_deterministic`` (the
  recipes' ``--deterministic``).

Every child starts from the same seed and data, so a setting whose children all end
with the same weights trained reproducibly in this run. Each child also reports whether
the allocator it ran is the pooled one (only that one keeps statistics:
``tf.config.experimental.get_memory_info``). Writes OUT/process_settings.json and .md.
"""

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

import harness

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: Name -> (value of TF_CPU_ALLOCATOR_USE_BFC, strategy or None for the demo's, whether
#: to `make_deterministic`) of a child; the first is the one compared to.
SETTINGS = {
    "malloc (TensorFlow's default)": ("false", None, False),
    "pooled (BFC)": ("true", None, False),
    "pooled, OneDeviceStrategy": ("true", "one_device", False),
    "pooled, deterministic": ("true", None, True),
}
#: The counts of a full run and of ``--quick`` (tiny inputs: a smoke run).
FULL = dict(steps=20, warmup_steps=5, rounds=2, images=256, flags=[])
QUICK = dict(
    steps=2, warmup_steps=1, rounds=1, images=8, flags=["--input-size", "64", "--batch-size", "2"]
)
#: The table's words for a row's ``same_weights``.
SAME_WEIGHTS = {True: "yes", False: "no", None: "one round only"}
#: The line before the child's JSON result on its stdout.
RESULT_MARK = "process_settings result:"


class _StepClock:
    """Wall and CPU clocks read when the first timed step begins and the last one ends."""

    def __init__(self, warmup_steps):
        import keras

        self.warmup_steps = warmup_steps
        self.start = self.end = None
        self.callback = keras.callbacks.LambdaCallback(
            on_train_batch_begin=lambda batch, logs: self._begin(batch),
            on_train_batch_end=lambda batch, logs: self._end(),
        )

    @staticmethod
    def _now():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return time.perf_counter(), usage.ru_utime, usage.ru_stime

    def _begin(self, batch):
        if batch == self.warmup_steps:
            self.start = self._now()

    def _end(self):
        self.end = self._now()


def child(args):
    """Times the demo's ``model.fit`` steps in this process; the result as a dict."""
    import hashlib

    import demo_step
    import keras
    import tensorflow as tf
    from tensorflow.python.framework.config import is_op_determinism_enabled

    from cfsam_keras import training

    if args.deterministic:
        training.make_deterministic()

    from cfsam_keras.data import coco
    from cfsam_keras.data import write_builtin_dataset
    from cfsam_keras.training import get_strategy

    configs = harness.recipe_configs()  # puts the recipes folder on the path
    import demo

    image_size = 64 if args.quick else configs.DEMO_DATASET["image_size"]
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_builtin_dataset(tmp, train=args.images, val=0, seed=0, image_size=image_size)
        source = coco(*paths["train"])
        strategy = get_strategy(
            args.strategy or demo.parser().parse_args(["--out", "unused"]).strategy
        )
        keras.utils.set_random_seed(0)  # as the demo seeds: children start alike
        model, dataset, _ = demo_step.build_variant("demo", args.flags, source, strategy)
        clock = _StepClock(args.warmup_steps)
        model.fit(
            dataset,
            epochs=1,
            steps_per_epoch=args.warmup_steps + args.steps,
            callbacks=[clock.callback],
            verbose=0,
        )
    try:
        tf.config.experimental.get_memory_info("CPU:0")
        pooled = True
    except ValueError:  # "Allocator stats not available": the malloc allocator
        pooled = False
    fingerprint = hashlib.sha256()
    for weight in model.weights:
        fingerprint.update(weight.numpy().tobytes())
    (wall0, user0, sys0), (wall1, user1, sys1) = clock.start, clock.end
    return {
        "pooled": pooled,
        "strategy": type(strategy).__name__,
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "op_determinism": is_op_determinism_enabled(),  # not in the public API
        "weights_sha256": fingerprint.hexdigest(),
        "wall_s_per_step": (wall1 - wall0) / args.steps,
        "user_cpu_s_per_step": (user1 - user0) / args.steps,
        "system_cpu_s_per_step": (sys1 - sys0) / args.steps,
    }


def run_child(setting, argv, timeout=1800):
    """Runs this script as a child under one of `SETTINGS`; its result."""
    from cfsam_keras.runtime import POOLED_CPU_ALLOCATOR

    allocator, strategy, deterministic = SETTINGS[setting]
    env = dict(os.environ, **{POOLED_CPU_ALLOCATOR[0]: allocator})
    extra = ["--deterministic"] if deterministic else []
    extra += ["--strategy", strategy] if strategy else []
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", *argv, *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    lines = result.stdout.splitlines()
    if result.returncode or RESULT_MARK not in lines:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the {setting} child failed ({result.returncode}): {tail}")
    return json.loads(lines[lines.index(RESULT_MARK) + 1])


def summarize(runs):
    """Rows: medians over the rounds, each setting's wall time against the first's, and
    whether its children all ended with the same weights."""
    rows = {}
    for name, results in runs.items():
        rows[name] = {
            key: statistics.median(r[key] for r in results)
            for key in ("wall_s_per_step", "user_cpu_s_per_step", "system_cpu_s_per_step")
        }
        rows[name]["pooled"] = all(r["pooled"] for r in results)
        # None: one child, nothing to compare with.
        rows[name]["same_weights"] = (
            len({r["weights_sha256"] for r in results}) == 1 if len(results) > 1 else None
        )
    base = rows[next(iter(SETTINGS))]["wall_s_per_step"]
    for row in rows.values():
        row["vs_default"] = row["wall_s_per_step"] / base
        row["system_share"] = row["system_cpu_s_per_step"] / (
            row["user_cpu_s_per_step"] + row["system_cpu_s_per_step"]
        )
    return rows


def table(record):
    s, m = record["settings"], record["machine"]
    lines = [
        "| setting | pooled | s / step | user CPU s / step | system CPU s / step "
        "| system share of CPU | vs default | same weights in every round |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in record["rows"].items():
        lines.append(
            f"| {name} | {'yes' if r['pooled'] else 'no'} | {r['wall_s_per_step']:.3f} "
            f"| {r['user_cpu_s_per_step']:.2f} | {r['system_cpu_s_per_step']:.2f} "
            f"| {r['system_share']:.0%} | {r['vs_default']:.2f} "
            f"| {SAME_WEIGHTS[r['same_weights']]} |"
        )
    lines += [
        "",
        f"The demo's training step (`model.fit`, batch and input of the demo unless the "
        f"flags say otherwise: {s['flags'] or 'none'}) fed by its pipeline over a built-in "
        f"dataset of {s['images']} images; medians of {s['rounds']} rounds, each a child "
        f"process per setting timing {s['steps']} steps after {s['warmup_steps']} untimed "
        f"ones. {m['cores']} CPU cores ({m['cpu']}), 1-minute load average "
        f"{harness.load_text(m)} (before/after); tensorflow {m.get('tensorflow')}.",
        "",
        f"Command: `{record['command']}`",
        "",
    ]
    return "\n".join(lines)


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join("docs", "results"), help="results folder")
    p.add_argument("--quick", action="store_true", help="tiny inputs, one round")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--deterministic", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--strategy", help=argparse.SUPPRESS)
    for key in ("steps", "warmup_steps", "rounds", "images"):
        p.add_argument("--" + key.replace("_", "-"), type=int, help=f"default {FULL[key]}")
    args = p.parse_args(argv)
    counts = QUICK if args.quick else FULL
    harness.fill_counts(
        p, args, {k: counts[k] for k in ("steps", "warmup_steps", "rounds", "images")}
    )
    args.flags = counts["flags"]
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    if args.child:
        result = child(args)
        print(RESULT_MARK, json.dumps(result), sep="\n", flush=True)
        return result
    load_before = harness.load_average()
    child_argv = [a for a in argv if a not in ("--child", "--deterministic")]
    runs = {name: [] for name in SETTINGS}
    for _ in range(args.rounds):
        for name in SETTINGS:
            runs[name].append(run_child(name, child_argv))
    settings = {
        k: v
        for k, v in vars(args).items()
        if k not in ("out", "child", "deterministic", "strategy")
    }
    record = dict(
        settings=settings,
        machine=harness.machine(load_before),
        rows=summarize(runs),
        runs=runs,
        command=shlex.join(["python", "benchmarks/process_settings.py"] + argv),
    )
    harness.write_results(args.out, "process_settings", record, table(record))
    return record


if __name__ == "__main__":
    main()
