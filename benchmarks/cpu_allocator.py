"""The demo's training step under TensorFlow's two CPU allocators, as ``model.fit`` runs it.

    python benchmarks/cpu_allocator.py [--out docs/results] [--steps 20] [--warmup-steps 5]
        [--rounds 2] [--images 256] [--quick]

TensorFlow picks its CPU allocator once per process (``TF_CPU_ALLOCATOR_USE_BFC``, read at
its first tensor), so each measurement is a child process of this script: it builds the
demo's model and training pipeline under the demo's strategy
(``demo_step.build_variant("demo", ...)`` under ``get_strategy("auto")``, a
``OneDeviceStrategy`` on a CPU: under TensorFlow's default strategy the two allocators
were equally fast in one run, and why the strategy matters was not traced), runs
``--warmup-steps`` untimed steps of ``model.fit`` and then ``--steps`` timed ones, and
reports wall, user and system CPU seconds per step. In every round one child runs with
each allocator, in turn:

- pooled: ``TF_CPU_ALLOCATOR_USE_BFC=true``, what ``cfsam_keras.runtime.pool_cpu_memory``
  sets for the recipes and the command line;
- malloc: ``TF_CPU_ALLOCATOR_USE_BFC=false``, TensorFlow's default.

Each child also reports whether the allocator it ran is the pooled one (only that one keeps
statistics: ``tf.config.experimental.get_memory_info``). Writes OUT/cpu_allocator.json
and .md.
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

#: Name -> value of TF_CPU_ALLOCATOR_USE_BFC in the child; the first is the one compared to.
ALLOCATORS = {"malloc (TensorFlow's default)": "false", "pooled (BFC)": "true"}
#: The counts of a full run and of ``--quick`` (tiny inputs: a smoke run).
FULL = dict(steps=20, warmup_steps=5, rounds=2, images=256, flags=[])
QUICK = dict(
    steps=2, warmup_steps=1, rounds=1, images=8, flags=["--input-size", "64", "--batch-size", "2"]
)
#: The line before the child's JSON result on its stdout.
RESULT_MARK = "cpu_allocator result:"


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
    import demo_step
    import tensorflow as tf

    from cfsam_keras.data import coco
    from cfsam_keras.data import write_builtin_dataset
    from cfsam_keras.training import get_strategy

    configs = harness.recipe_configs()  # puts the recipes folder on the path
    import demo

    image_size = 64 if args.quick else configs.DEMO_DATASET["image_size"]
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_builtin_dataset(tmp, train=args.images, val=0, seed=0, image_size=image_size)
        source = coco(*paths["train"])
        # The demo's strategy (its --strategy default; OneDeviceStrategy on a CPU), not
        # TensorFlow's default one.
        strategy = get_strategy(demo.parser().parse_args(["--out", "unused"]).strategy)
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
    (wall0, user0, sys0), (wall1, user1, sys1) = clock.start, clock.end
    return {
        "pooled": pooled,
        "wall_s_per_step": (wall1 - wall0) / args.steps,
        "user_cpu_s_per_step": (user1 - user0) / args.steps,
        "system_cpu_s_per_step": (sys1 - sys0) / args.steps,
    }


def run_child(allocator, argv, timeout=1800):
    """Runs this script as a child with ``TF_CPU_ALLOCATOR_USE_BFC`` set; its result."""
    from cfsam_keras.runtime import POOLED_CPU_ALLOCATOR

    env = dict(os.environ, **{POOLED_CPU_ALLOCATOR[0]: ALLOCATORS[allocator]})
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    lines = result.stdout.splitlines()
    if result.returncode or RESULT_MARK not in lines:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the {allocator} child failed ({result.returncode}): {tail}")
    return json.loads(lines[lines.index(RESULT_MARK) + 1])


def summarize(runs):
    """Rows: medians over the rounds, and each allocator's wall time against the first's."""
    rows = {}
    for name, results in runs.items():
        rows[name] = {
            key: statistics.median(r[key] for r in results)
            for key in ("wall_s_per_step", "user_cpu_s_per_step", "system_cpu_s_per_step")
        }
        rows[name]["pooled"] = all(r["pooled"] for r in results)
    base = rows[next(iter(ALLOCATORS))]["wall_s_per_step"]
    for row in rows.values():
        row["vs_default"] = row["wall_s_per_step"] / base
        row["system_share"] = row["system_cpu_s_per_step"] / (
            row["user_cpu_s_per_step"] + row["system_cpu_s_per_step"]
        )
    return rows


def table(record):
    s, m = record["settings"], record["machine"]
    lines = [
        "| allocator | pooled | s / step | user CPU s / step | system CPU s / step "
        "| system share of CPU | vs default |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in record["rows"].items():
        lines.append(
            f"| {name} | {'yes' if r['pooled'] else 'no'} | {r['wall_s_per_step']:.3f} "
            f"| {r['user_cpu_s_per_step']:.2f} | {r['system_cpu_s_per_step']:.2f} "
            f"| {r['system_share']:.0%} | {r['vs_default']:.2f} |"
        )
    lines += [
        "",
        f"The demo's training step (`model.fit`, batch and input of the demo unless the "
        f"flags say otherwise: {s['flags'] or 'none'}) fed by its pipeline over a built-in "
        f"dataset of {s['images']} images; medians of {s['rounds']} rounds, each a child "
        f"process per allocator timing {s['steps']} steps after {s['warmup_steps']} untimed "
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
    child_argv = [a for a in argv if a != "--child"]
    runs = {name: [] for name in ALLOCATORS}
    for _ in range(args.rounds):
        for name in ALLOCATORS:
            runs[name].append(run_child(name, child_argv))
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "child")}
    record = dict(
        settings=settings,
        machine=harness.machine(load_before),
        rows=summarize(runs),
        runs=runs,
        command=shlex.join(["python", "benchmarks/cpu_allocator.py"] + argv),
    )
    harness.write_results(args.out, "cpu_allocator", record, table(record))
    return record


if __name__ == "__main__":
    main()
