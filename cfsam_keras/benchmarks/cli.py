"""``cfsam-keras benchmark --cost``: the cost table of every attention variant."""

import sys


def run_cost(args):
    """Runs the cost benchmark for the ``benchmark`` sub-command.

    Uses ``args.quick`` (the tiny two-model subset), ``args.out`` (writes
    ``cost.json`` and ``cost.md`` there). Prints the table; progress goes
    to stderr. ``benchmarks/cost.py`` takes the run counts and the subset of
    timings as flags.
    """
    from cfsam_keras.benchmarks.cost import cost_benchmark
    from cfsam_keras.benchmarks.cost import write_cost_results
    from cfsam_keras.benchmarks.cost import cost_variants

    runs = 3 if args.quick else 5
    train_runs = 2
    results = cost_benchmark(
        cost_variants(quick=args.quick), runs=runs, train_runs=train_runs, warmup=1,
        peak_size=512 if args.quick else 2048,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    results["command"] = "cfsam-keras benchmark --cost" + (" --quick" if args.quick else "") + f" --out {args.out}"
    table = write_cost_results(results, args.out)
    print(table)
    print(f"Peak float32 matmul: {results['peak_gflops']:.1f} GFLOP/s; "
          f"{results['machine']['cores']} cores ({results['machine']['cpu']}); "
          f"ratios are to the 'none' row of the same backbone.")
    return 0
