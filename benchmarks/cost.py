"""The cost table of every attention variant (same as ``cfsam-keras benchmark --cost``).

    python benchmarks/cost.py [--quick] [--out docs/results] [--runs 5] [--batch-runs 5]
        [--train-runs 2] [--measure latency,throughput,train_step] [--variants "vgg16 none,vgg16 cfsam"]

Writes OUT/cost.json and OUT/cost.md and prints the table; then
``python -m cfsam_keras.benchmarks.report`` puts it into docs/results.md.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="two tiny MobileNetV2 models only")
    p.add_argument("--out", default=os.path.join("runs", "benchmark"))
    p.add_argument("--runs", type=int, default=5, help="timed rounds of the batch-1 latency")
    p.add_argument("--batch-runs", type=int, default=None, help="timed rounds of the batch-8 throughput (default --runs)")
    p.add_argument("--train-runs", type=int, default=2, help="timed rounds of the training step")
    p.add_argument("--measure", default="latency,throughput,train_step", help="timings to take")
    p.add_argument("--variants", default=None, help="comma-separated row names (default: all)")
    args = p.parse_args(argv)

    from cfsam_keras.benchmarks.cost import cost_benchmark, cost_variants, write_cost_results

    variants = cost_variants(args.quick, [n.strip() for n in args.variants.split(",")] if args.variants else None)
    results = cost_benchmark(
        variants, runs=args.runs, batch_runs=args.batch_runs, train_runs=args.train_runs,
        measurements=[m.strip() for m in args.measure.split(",") if m.strip()],
        peak_size=512 if args.quick else 2048, log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    results["command"] = "python benchmarks/cost.py " + " ".join(
        a if " " not in a else f'"{a}"' for a in (sys.argv[1:] if argv is None else argv))
    table = write_cost_results(results, args.out)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
