"""``cfsam-keras benchmark``: speed measurements.

``--latency``: single-image latency of Keras, SavedModel and TFLite (float32,
float16, int8) for SSD300-VGG16 with and without CFSAM and SSD300-MobileNetV2.
``--cost``: parameters, FLOPs and CPU times of every attention variant
(``cfsam_keras.benchmarks``). Each kind of measurement is one flag, so others can be added beside it.
"""

import json
import os
import platform
import sys

from cfsam_keras.cli import CLIError

TABLE_START = "<!-- latency-table:start -->"
TABLE_END = "<!-- latency-table:end -->"


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "benchmark",
        help="measure speed (latency of the exported runtimes)",
        description=(
            "Measure speed. --latency exports each benchmark model (random weights; "
            "speed does not depend on them) to SavedModel and TFLite and prints the "
            "median single-image latency of every runtime on this machine's CPU."
        ),
    )
    parser.add_argument(
        "--latency", action="store_true",
        help="single-image latency: Keras, SavedModel, TFLite fp32/fp16/int8",
    )
    parser.add_argument(
        "--cost", action="store_true",
        help="parameters, FLOPs, CPU latency/throughput/training step of every attention "
             "variant, as ratios to the baseline (writes cost.json/cost.md to --out)",
    )
    parser.add_argument(
        "--quick", action="store_true",
        help="a fast subset: one tiny MobileNetV2 model, Keras and TFLite fp32, few runs",
    )
    parser.add_argument("--runs", type=int, default=30, help="timed runs per runtime (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    parser.add_argument(
        "--threads", type=int, default=None,
        help="TFLite interpreter threads (default: every CPU core, as Keras and the SavedModel use)",
    )
    parser.add_argument(
        "--out", default=os.path.join("runs", "benchmark"),
        help="folder for the exported files and latency.json/latency.md (default runs/benchmark)",
    )
    parser.add_argument(
        "--readme", default=None,
        help=(
            f"also write the table into this Markdown file, between the lines {TABLE_START} "
            f"and {TABLE_END}"
        ),
    )
    parser.set_defaults(run=run)
    return parser


def _latency_models(quick):
    """(name, builder) pairs; builders so that only one model is alive at a time."""
    from cfsam_keras.models import SSD300

    if quick:
        return [(
            "ssd128_mobilenet_v2_a035",
            lambda: SSD300(5, backbone="mobilenet_v2", attention="none", input_size=128,
                           backbone_kwargs={"alpha": 0.35}),
        )]
    return [
        ("ssd300_vgg16", lambda: SSD300(20, backbone="vgg16", attention="none")),
        ("ssd300_vgg16_cfsam", lambda: SSD300(20, backbone="vgg16", attention="cfsam")),
        ("ssd300_mobilenet_v2", lambda: SSD300(20, backbone="mobilenet_v2", attention="none")),
    ]


def _write_readme_table(path, table):
    if not os.path.isfile(path):
        raise CLIError(f"--readme: no such file: {path}")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if TABLE_START not in text or TABLE_END not in text:
        raise CLIError(f"--readme: {path} has no {TABLE_START} ... {TABLE_END} block")
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{head}{TABLE_START}\n{table}\n{TABLE_END}{tail}")


def run_latency(args):
    import keras

    from cfsam_keras.export.common import model_input_size
    from cfsam_keras.export.latency import PEAK_SIZE
    from cfsam_keras.export.latency import RUNTIMES
    from cfsam_keras.export.latency import benchmark_model
    from cfsam_keras.export.latency import latency_roofline
    from cfsam_keras.export.latency import latency_table
    from cfsam_keras.export.latency import latency_targets
    from cfsam_keras.flops import count_flops

    if args.runs < 1 or args.warmup < 0:
        raise CLIError("--runs must be >= 1 and --warmup >= 0")
    runtimes = [r for r in RUNTIMES if r[0] in ("Keras", "TFLite fp32")] if args.quick else RUNTIMES
    runs = min(args.runs, 5) if args.quick else args.runs
    os.makedirs(args.out, exist_ok=True)
    results, gflops = {}, {}
    load_before = os.getloadavg()[0]
    for name, build in _latency_models(args.quick):
        keras.utils.set_random_seed(0)
        model = build()
        size = model_input_size(model)
        gflops[name] = count_flops(model, [(1, size, size, 3)]) / 1e9
        results[name] = benchmark_model(
            name, model, args.out, runtimes=runtimes, runs=runs, warmup=args.warmup,
            num_threads=args.threads, log=lambda line: print(line, file=sys.stderr, flush=True),
        )
        del model
        keras.backend.clear_session()
    table = latency_table(results)
    threads = sorted(
        {r["threads"] for row in results.values() for r in row.values() if "threads" in r}
    )
    note = (
        f"Median of {runs} single-image runs after {args.warmup} warm-up runs, a model's "
        f"runtimes and a {PEAK_SIZE} x {PEAK_SIZE} float32 matmul taking turns (one run each "
        "per round); "
        f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
        f"TFLite on {'/'.join(map(str, threads))} thread(s); random weights, score threshold 0.01, "
        f"top 200; 1-minute load average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after. "
        + latency_targets(results) + "\n\n" + latency_roofline(results, gflops)
    )
    print(table)
    print(note)
    with open(os.path.join(args.out, "latency.json"), "w", encoding="utf-8") as f:
        json.dump({"results": results, "gflops": gflops, "note": note}, f, indent=2)
    with open(os.path.join(args.out, "latency.md"), "w", encoding="utf-8") as f:
        f.write(table + "\n\n" + note + "\n")
    if args.readme:
        _write_readme_table(args.readme, table + "\n\n" + note)
    return 0


def run(args):
    if not (args.latency or args.cost):
        raise CLIError("choose a measurement: --latency and/or --cost")
    if args.cost:
        from cfsam_keras.benchmarks.cli import run_cost

        run_cost(args)
    return run_latency(args) if args.latency else 0
