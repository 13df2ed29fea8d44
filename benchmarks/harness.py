"""What every benchmark here shares: the timing loop, the matmul peak, the machine record.

- ``interleaved_rounds``: several calls timed taking turns, round by round.
- ``matmul_peak``: a float32 matrix product whose rate is the machine's peak.
- ``machine``: CPU, cores, load average and library versions, for the JSON.
- ``recipe_configs``: ``recipes/configs.py``, the settings of the models measured.
- ``load_text``, ``fill_counts``, ``write_results``: what the scripts' output shares.

The benchmark scripts import it from their own folder (``python benchmarks/cost.py``
puts ``benchmarks/`` first on ``sys.path``).
"""

import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import sys
import time

#: The name of the matmul peak's entry among the timed calls.
PEAK = "float32 matmul"
#: Side of the square float32 matrices of the peak product.
PEAK_SIZE = 2048
#: Libraries whose versions `machine` records, where they are installed.
LIBRARIES = ("keras", "tensorflow", "jax", "torch")
#: The repository's recipes folder.
RECIPES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "recipes")


def interleaved_rounds(calls, runs, warmup=1, prepare=None):
    """Times several calls taking turns: every round calls each one once, in order.

    A change in the machine's load during the run then slows every call of the
    rounds it lasts, not whichever call happened to be running, so the ratios
    between the calls stay comparable on a shared machine. The warm-up rounds
    come first and are not timed (tracing, caches, thread pools).

    Args:
        calls: dict name -> zero-argument callable (one-argument where
            ``prepare`` has an entry of that name).
        runs: timed rounds (>= 1).
        warmup: untimed rounds first (>= 0).
        prepare: optional dict name -> zero-argument callable, run untimed right
            before every call of that name; the call receives its result, which
            is released right after the call (a fresh data iterator per round).

    Returns:
        dict name -> dict with ``median_s``, ``min_s``, ``times_s`` (the
        wall-clock seconds of each timed round) and ``cpu_times_s`` (this
        process's CPU seconds over all its threads, each round).

    Example:
    >>> order = []
    >>> result = interleaved_rounds({"a": lambda: order.append("a"),
    ...                              "b": lambda: order.append("b")}, runs=2, warmup=1)
    >>> order
    ['a', 'b', 'a', 'b', 'a', 'b']
    >>> len(result["a"]["times_s"])
    2
    """
    prepare = prepare or {}
    if not isinstance(calls, dict) or not calls:
        raise ValueError(f"calls must be a non-empty dict of name -> callable; received {calls!r}")
    not_callable = [name for name, call in calls.items() if not callable(call)]
    if not_callable:
        raise ValueError(f"calls: entries {not_callable} are not callable")
    unknown = sorted(set(prepare) - set(calls))
    if unknown:
        raise ValueError(f"prepare: {unknown} are not among the calls {list(calls)}")
    if not isinstance(runs, int) or runs < 1 or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(
            f"runs must be an int >= 1 and warmup an int >= 0; received {runs!r} and {warmup!r}"
        )
    wall = {name: [] for name in calls}
    cpu = {name: [] for name in calls}
    for round_index in range(warmup + runs):
        for name, call in calls.items():
            args = (prepare[name](),) if name in prepare else ()
            start_cpu, start = time.process_time(), time.perf_counter()
            call(*args)
            elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
            del args
            if round_index >= warmup:
                wall[name].append(elapsed)
                cpu[name].append(elapsed_cpu)
    return {
        name: {
            "median_s": statistics.median(wall[name]),
            "min_s": min(wall[name]),
            "times_s": wall[name],
            "cpu_times_s": cpu[name],
        }
        for name in calls
    }


def matmul_peak(size=PEAK_SIZE):
    """A float32 ``size x size`` matrix product to time: the machine's peak.

    Dense matrix products are what kernel libraries tune hardest, so the rate
    of this one bounds what a model's convolutions can reach on the same cores.
    It runs in the Keras backend's own kernels (``keras.ops.matmul``), the
    library the models run on.

    Args:
        size: side of the two square matrices (>= 1).

    Returns:
        ``(fn, flops)``: a zero-argument callable computing the product (to
        NumPy, so the time includes finishing it) and its FLOPs, ``2 * size**3``.
    """
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be an int >= 1; received {size!r}")
    # Keras loads its backend on import; the scripts parse their flags first.
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = (
        keras.ops.convert_to_tensor(rng.random((size, size), dtype=np.float32)) for _ in range(2)
    )

    def product():
        keras.ops.convert_to_numpy(keras.ops.matmul(a, b))

    return product, 2 * size**3


def load_average():
    """The 1-minute load average now (None where the system has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module, distributions):
    """The installed version of ``module``, found without importing it; None if absent."""
    if module in sys.modules:
        return getattr(sys.modules[module], "__version__", None)
    if importlib.util.find_spec(module) is None:
        return None
    for distribution in distributions.get(module, [module]):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def machine(load_before=None):
    """This machine, for a benchmark's JSON. Imports none of the libraries it names.

    Args:
        load_before: the 1-minute load average at the start of the run
            (`load_average()`), recorded beside the one at the end.

    Returns:
        dict: ``cpu`` (the model in /proc/cpuinfo), ``cores``, ``platform``,
        ``python``, ``load_average_1min_before`` and ``load_average_1min_after``,
        and the version of each of `LIBRARIES` installed here.
    """
    record = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_1min_before": load_before,
        "load_average_1min_after": load_average(),
    }
    distributions = importlib.metadata.packages_distributions()
    for module in LIBRARIES:
        version = _version(module, distributions)
        if version is not None:
            record[module] = version
    return record


def recipe_configs():
    """``recipes/configs.py`` (every recipe setting): module ``configs`` of the recipes folder."""
    if RECIPES not in sys.path:
        sys.path.insert(0, RECIPES)
    return importlib.import_module("configs")


def load_text(machine_record):
    """``"before/after"`` 1-minute load averages of a `machine` record (``n/a`` if unknown)."""
    return "/".join(
        "n/a" if v is None else f"{v:.1f}"
        for v in (
            machine_record.get("load_average_1min_before"),
            machine_record.get("load_average_1min_after"),
        )
    )


def fill_counts(parser, args, counts):
    """Sets each of ``counts`` (flag destination -> default) left unset on ``args``.

    A count given must be >= 1 (``warmup`` >= 0); otherwise ``parser.error``
    names the flag in one line.
    """
    for key, value in counts.items():
        low = 0 if key == "warmup" else 1
        if getattr(args, key) is None:
            setattr(args, key, value)
        elif getattr(args, key) < low:
            parser.error(f"--{key.replace('_', '-')} must be >= {low}")


def write_results(out_dir, stem, record, table):
    """Writes ``OUT/STEM.json`` (``record``) and ``OUT/STEM.md`` (``table``), prints the table."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, stem + ".json"), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
    with open(os.path.join(out_dir, stem + ".md"), "w", encoding="utf-8") as f:
        f.write(table)
    print(table)
