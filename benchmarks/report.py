"""docs/results.md from the JSON under docs/results/: cost, comparison, latency.

    python benchmarks/report.py [--results docs/results] [--out docs/results.md]

Reads RESULTS/cost.json (``benchmarks/cost.py``),
RESULTS/compare_builtin/compare.json (``recipes/compare_attention.py``) and
RESULTS/latency.json (``benchmarks/latency.py``), each where present, and
writes the page; a missing one gets a line naming the command that makes it.
The comparison's latency column comes from the demo-model rows of cost.json.
"""

import argparse
import json
import math
import os
import statistics
import sys

import cost
import harness
import latency

configs = harness.recipe_configs()

#: Metrics of the comparison table, in column order.
METRICS = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "voc_map")
#: Assumptions of the GPU training-time estimate (stated in its text, not measured).
TRAIN_FLOPS_PER_FORWARD_FLOP = 3
GPU_EFFECTIVE_TFLOPS = 40.0
GPU_NAME = "an NVIDIA A100 at about a quarter of its 156 TFLOP/s TF32 tensor-core peak"
#: The training set each of SSD300's published schedules is for.
SCHEDULES = (("VOC07+12 trainval", "SSD300_VOC"), ("COCO train2017", "SSD300_COCO"))


def _finite(values):
    return [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def _stats(values):
    values = _finite(values)
    if not values:
        return {
            "mean": float("nan"),
            "std": float("nan"),
            "min": float("nan"),
            "max": float("nan"),
            "n": 0,
        }
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else float("nan"),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def t_quantile_975(df):
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (two-sided 95%).

    The density is integrated by Simpson's rule and the quantile found by bisection:
    accurate to about 1e-6, with no dependency beyond ``math``.
    """
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)

    def cdf_above_half(t, steps=2000):
        h = t / steps
        f = [c * (1 + (i * h) ** 2 / df) ** (-(df + 1) / 2) for i in range(steps + 1)]
        return h / 3 * (f[0] + f[-1] + 4 * sum(f[1:-1:2]) + 2 * sum(f[2:-1:2]))

    low, high = 0.0, 100.0
    while high - low > 1e-7:
        mid = (low + high) / 2
        low, high = (mid, high) if cdf_above_half(mid) < 0.475 else (low, mid)
    return (low + high) / 2


def paired_difference(a, b):
    """``a - b`` over the seeds both have, seed by seed.

    With the same seed every variant sees the same data in the same order, so
    the difference of two runs of one seed carries far less seed noise than the
    difference of the two means.

    Args:
        a, b: dicts seed -> value (NaN / None values are left out).

    Returns:
        ``{"n", "mean", "low", "high", "above"}``: the number of seeds paired,
        the mean difference, its 95% Student-t interval (NaN with fewer than 2
        pairs) and on how many seeds ``a`` is higher.
    """
    seeds = [k for k in sorted(set(a) & set(b)) if len(_finite([a[k], b[k]])) == 2]
    diffs = [a[k] - b[k] for k in seeds]
    n = len(diffs)
    mean = statistics.fmean(diffs) if diffs else float("nan")
    half = t_quantile_975(n - 1) * statistics.stdev(diffs) / math.sqrt(n) if n > 1 else float("nan")
    return {
        "n": n,
        "mean": mean,
        "low": mean - half,
        "high": mean + half,
        "above": sum(d > 0 for d in diffs),
    }


def _compare(diff):
    """1 / -1 when a `paired_difference`'s 95% interval is above / below 0, 0 when it
    holds 0, None when fewer than 2 seeds pair up."""
    if diff["n"] < 2:
        return None
    return 1 if diff["low"] > 0 else (-1 if diff["high"] < 0 else 0)


def comparison_summary(result):
    """Per-variant statistics over seeds of a ``compare.json`` result.

    Returns:
        dict variant -> ``{"final": {metric: stats}, "curve": [mean AP50 per
        epoch], "ap50_by_seed": {seed: [AP50 per epoch]}, "final_ap50_by_seed",
        "params", "attention", "attention_kwargs", "seeds",
        "paired_seeds", "vs_baseline", "reaches_baseline_epoch", "verdict"}``.
        ``paired_seeds`` are the seeds the variant and the baseline both have,
        ``reaches_baseline_epoch`` is `reach_epoch` on them, ``vs_baseline`` is
        the `paired_difference` of final AP50 from the baseline's; ``verdict`` is
        "baseline", "better" / "worse" when its 95% interval is above / below 0,
        "no difference" when it holds 0, and "single seed" when fewer than 2
        seeds pair up (no spread to compare to).
    """
    order = result["settings"]["variants"]
    by_variant = {name: [r for r in result["runs"] if r["variant"] == name] for name in order}
    summary = {}
    for name, runs in by_variant.items():
        if not runs:
            continue
        epochs = min(len(r["epochs"]) for r in runs)
        summary[name] = {
            "final": {m: _stats([r["final"][m] for r in runs]) for m in METRICS},
            "curve": [
                _stats([r["epochs"][i]["AP50"] for r in runs])["mean"] for i in range(epochs)
            ],
            "ap50_by_seed": {r["seed"]: [e["AP50"] for e in r["epochs"][:epochs]] for r in runs},
            "final_ap50_by_seed": {r["seed"]: r["final"]["AP50"] for r in runs},
            "params": runs[0]["params"],
            "attention": runs[0]["attention"],
            "attention_kwargs": runs[0]["attention_kwargs"],
            "seeds": sorted(r["seed"] for r in runs),
        }
    base = summary.get("none")
    for name, s in summary.items():
        if base is None:
            s["vs_baseline"], s["reaches_baseline_epoch"], s["paired_seeds"] = None, None, []
            s["verdict"] = "no baseline"
            continue
        # On the seeds both have: a mean over other seeds would mix seed noise in.
        s["paired_seeds"] = sorted(set(s["seeds"]) & set(base["seeds"]))
        s["reaches_baseline_epoch"] = reach_epoch(s, base, s["paired_seeds"])
        if name == "none":
            s["vs_baseline"], s["verdict"] = None, "baseline"
            continue
        s["vs_baseline"] = paired_difference(s["final_ap50_by_seed"], base["final_ap50_by_seed"])
        s["verdict"] = {
            None: "single seed: no spread to compare to",
            0: "no difference (paired 95% interval holds 0)",
            1: "better",
            -1: "worse",
        }[_compare(s["vs_baseline"])]
    return summary


def reach_epoch(a, b, seeds):
    """The first epoch (1-based) at which summary ``a``'s AP50, averaged over ``seeds``,
    is at least summary ``b``'s final AP50 averaged over the same seeds; None if never."""
    if not seeds:
        return None
    target = statistics.fmean(b["final_ap50_by_seed"][k] for k in seeds)
    curves = [a["ap50_by_seed"][k] for k in seeds]
    for i in range(min(len(c) for c in curves)):
        values = _finite([c[i] for c in curves])
        if len(values) == len(curves) and statistics.fmean(values) >= target:
            return i + 1
    return None


def epoch_difference(a, b, epoch):
    """`paired_difference` of two summaries' AP50 at ``epoch`` (1-based)."""
    return paired_difference(
        {k: v[epoch - 1] for k, v in a["ap50_by_seed"].items()},
        {k: v[epoch - 1] for k, v in b["ap50_by_seed"].items()},
    )


def _module_key(attention, attention_kwargs):
    return attention, json.dumps(attention_kwargs or {}, sort_keys=True)


def demo_latency_ratios(cost_results):
    """(attention, attention_kwargs as sorted JSON) -> batch-1 latency ratio to ``none``,
    from the demo-model rows of a cost result."""
    return {
        _module_key(r["attention"], r["attention_kwargs"]): r.get("latency_ms_ratio")
        for r in cost_results["rows"]
        if r["group"] == cost.DEMO_GROUP
    }


def _signed(x):
    return f"{round(x, 3) or 0.0:+.3f}"  # no "-0.000"


def difference_cell(diff):
    """A `paired_difference` as a table cell: mean, 95% interval, seeds higher."""
    if diff is None:
        return ""
    if diff["n"] == 0:
        return "n/a"
    if diff["n"] == 1:
        return f"{_signed(diff['mean'])} (1 seed)"
    return (
        f"{_signed(diff['mean'])} ({_signed(diff['low'])} to {_signed(diff['high'])}); "
        f"higher on {diff['above']} of {diff['n']}"
    )


#: How the table's paired column and verdict are made (the comparison and fine-tuning
#: sections share the table).
PAIRED_NOTE = (
    "'AP50 - none' pairs each run with the baseline's run of the same seed (same data "
    "order and augmentation draws): the mean of those differences, its 95% Student-t "
    "interval, and on how many seeds the variant is higher; 'AP50 vs none' says better or "
    "worse only when that interval is above or below 0."
)


def _cell(stats):
    if stats["n"] == 0:
        return "n/a"
    if stats["n"] == 1:
        return f"{stats['mean']:.3f}"
    return f"{stats['mean']:.3f} ± {stats['std']:.3f}"


def comparison_table(result, cost_results=None):
    """The comparison as a Markdown table (mean ± standard deviation over seeds).

    Args:
        result: a ``compare.json`` result (a ``latency`` entry in it is ignored).
        cost_results: optional cost result; with it, a column of each module's
            batch-1 latency ratio on the demo model (`demo_latency_ratios`).
    """
    summary = comparison_summary(result)
    ratios = demo_latency_ratios(cost_results) if cost_results else None
    head = (
        ["variant", "seeds"]
        + list(METRICS)
        + ["params (M)"]
        + (["latency vs none (demo model)"] if ratios is not None else [])
        + [
            "first epoch >= none's final AP50 (same seeds)",
            "AP50 - none (paired by seed)",
            "AP50 vs none",
        ]
    )
    lines = ["| " + " | ".join(head) + " |", "|---|---:|" + "---:|" * (len(head) - 4) + "---|---|"]
    for name, s in summary.items():
        cells = [name, str(len(s["seeds"]))] + [_cell(s["final"][m]) for m in METRICS]
        cells.append(f"{s['params'] / 1e6:.2f}")
        if ratios is not None:
            ratio = ratios.get(_module_key(s["attention"], s["attention_kwargs"]))
            cells.append("n/a" if ratio is None else f"x{ratio:.2f}")
        cells += [
            "never" if s["reaches_baseline_epoch"] is None else str(s["reaches_baseline_epoch"]),
            difference_cell(s["vs_baseline"]),
            s["verdict"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_convergence(result, path):
    """AP50 per epoch of every variant (mean over seeds, band = min..max) on one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in result["settings"]["variants"]:
        runs = [r for r in result["runs"] if r["variant"] == name]
        if not runs:
            continue
        epochs = min(len(r["epochs"]) for r in runs)
        x = list(range(1, epochs + 1))
        values = [[r["epochs"][i]["AP50"] for r in runs] for i in range(epochs)]
        ax.plot(
            x,
            [statistics.fmean(v) for v in values],
            marker="o",
            label=f"{name} ({len(runs)} seeds)",
        )
        if len(runs) > 1:
            ax.fill_between(x, [min(v) for v in values], [max(v) for v in values], alpha=0.15)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("COCO AP50 (val)")
    ax.set_title(f"Convergence on {result['dataset']}: AP50 after every epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_comparison(out_dir, cost_results=None):
    """Writes ``compare.md`` (`comparison_table`) and ``convergence.png`` by ``compare.json``."""
    with open(os.path.join(out_dir, "compare.json")) as f:
        result = json.load(f)
    with open(os.path.join(out_dir, "compare.md"), "w") as f:
        f.write(comparison_table(result, cost_results) + "\n")
    plot_convergence(result, os.path.join(out_dir, "convergence.png"))


def _pct(ratio):
    return "not measured" if ratio is None else f"{100 * (ratio - 1):+.1f}%"


def _load_sentence(m):
    """The recorded 1-minute load average against the core count."""
    before = m.get("load_average_1min_before")
    after = m.get("load_average_1min_after", m.get("load_average_1min"))
    cores = m.get("cores")
    if after is None or not cores:
        return "load not recorded."
    text = (
        "1-minute load average "
        + ("" if before is None else f"{before:.1f} at the start and ")
        + f"{after:.1f} at the end of the run"
    )
    if max(_finite([before, after])) > cores + 0.5:
        return text + (
            ", above the core count: other jobs competed for the CPU, so absolute "
            "times are slower than on an idle machine."
        )
    return text + ", within the core count."


def _settings_sentence(results):
    st = results["settings"]
    taken = st.get("measurements", list(cost.MEASUREMENTS))
    parts = []
    if "latency" in taken:
        parts.append(f"batch-1 latency: median of {st['runs']} rounds")
    if "throughput" in taken:
        parts.append(
            f"batch-{st['batch_size']} throughput: median of "
            f"{st.get('batch_runs', st['runs'])} rounds"
        )
    if "train_step" in taken:
        parts.append(
            f"training step (forward + backward + SGD update, MultiBoxLoss, batch "
            f"{st['batch_size']}): median of {st['train_runs']} rounds"
        )
    text = "Timings: " + "; ".join(parts) + f", each after {st['warmup']} warm-up round(s)."
    missing = [m for m in cost.MEASUREMENTS if m not in taken]
    if missing:
        text += f" **Not measured in this run: {', '.join(missing)}** (marked 'not run')."
    return text


def _peak_sentence(results):
    size, peaks = results["settings"]["peak_matmul_size"], results["peak_gflops"]
    if not isinstance(peaks, dict):  # one peak, timed on its own after the models
        return (
            f"The machine's measured peak: {peaks:.1f} GFLOP/s (median {size}² float32 "
            "matmul in the same run); the last columns are each model's achieved GFLOP/s "
            "at batch 1 and batch 8 and their fraction of that peak."
        )
    rounds = {
        "latency": "batch-1 latency",
        "throughput": "batch-8 throughput",
        "train_step": "training-step",
    }
    return (
        f"The float32 matmul peak ({size}² matrices, one product in every round): "
        + ", ".join(f"{peaks[m]:.1f} GFLOP/s in the {rounds[m]} rounds" for m in peaks)
        + "; the last columns are each model's achieved GFLOP/s at batch 1 and batch 8 "
        "and their fraction of the peak of the same rounds."
    )


def _cost_section(results, results_dir):
    m = results["machine"]
    lines = [
        "## Cost",
        "",
        f"Regenerate: `{cost.command_for(results, results_dir)}`, then "
        "`python benchmarks/report.py`.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, TensorFlow {m.get('tensorflow', 'n/a')}; "
        + _load_sentence(m)
        + " All variants were timed in the same run in interleaved "
        "rounds, so the ratios to the baseline are the numbers to read.",
        _settings_sentence(results) + " Random weights. FLOPs: one forward pass at batch 1, "
        "counted by TensorFlow's profiler (`cfsam_keras.flops.count_flops`, multiply-add = 2 "
        "FLOPs). "
        + _peak_sentence(results)
        + f" The whole run took {results['seconds'] / 60:.1f} min.",
        "",
        cost.cost_table(results),
        "",
    ]
    fractions = [r.get(k) for r in results["rows"] for k in ("peak_fraction", "peak_fraction_b1")]
    if any(f is not None and f > 1 for f in fractions):
        lines += [
            "Fractions above 100% mean the matmul peak was sampled at a more loaded moment "
            "than the model timings: under changing load the measured peak is not a "
            "stable reference, only the ratios between variants timed in the same rounds "
            "are.",
            "",
        ]
    spread = [
        f"{r['name']} {min(r['latency_rounds_ms']):.0f}–{max(r['latency_rounds_ms']):.0f}"
        for r in results["rows"]
        if r.get("latency_rounds_ms")
    ]
    if spread:
        lines += [
            "Spread of the batch-1 latency rounds (min–max, ms): "
            + "; ".join(spread)
            + ". Where the spread is wider than a difference between two rows, that "
            "difference is load noise, not the module.",
            "",
        ]
    lines += _cross_check_lines(results["cross_check"])
    lines += _vgg_overhead_lines(results)
    return lines


def _cross_check_lines(checks):
    lines = [
        "**Cross-check of the FLOP counter.**",
        "",
        "| what | counted (profiler) | analytic | counted / analytic |",
        "|---|---:|---:|---:|",
    ]
    for c in checks:
        lines.append(
            f"| {c['what']} | {c['counted']:,} | {c['analytic']:,} "
            f"| {c['counted'] / c['analytic']:.3f} |"
        )
    lines += [
        "",
        "The analytic CFSAM count has matrix products and convolutions only (no bias, "
        "normalisation, softmax, GELU); the difference is that element-wise work. Its parts "
        "(GFLOPs):",
        "",
        "| module | local 3x3 + 1x1 | q/k/v/out projections | attention | MLP | fusion 1x1 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for c in checks:
        p = c.get("analytic_parts")
        if p:
            lines.append(
                f"| {_check_name(c)} | {p['local'] / 1e9:.2f} | {p['qkv_out'] / 1e9:.2f} "
                f"| {p['attention'] / 1e9:.2f} | {p['mlp'] / 1e9:.2f} "
                f"| {p['fusion'] / 1e9:.2f} |"
            )
    return lines + [""]


def _check_name(check):
    """The row name a CFSAM cross-check names in quotes."""
    return check["what"].split("'")[1]


def _vgg_rows(results):
    return [r for r in results["rows"] if r["group"] == "SSD300-VGG16"]


def _noise_band(results):
    """(modules, min, max): the latency ratios of the SSD300-VGG16 rows that add under 1%
    FLOPs to their baseline, the baseline's 1.0 included; None without such rows."""
    rows = [
        r
        for r in _vgg_rows(results)
        if r["attention"] != "none"
        and r["flops_ratio"] is not None
        and r["flops_ratio"] < 1.01
        and r.get("latency_ms_ratio") is not None
    ]
    if not rows:
        return None
    ratios = [r["latency_ms_ratio"] for r in rows] + [1.0]
    return sorted({r["attention"] for r in rows}), min(ratios), max(ratios)


def _vgg_overhead_lines(results):
    rows = [r for r in _vgg_rows(results) if r["attention"] == "cfsam"]
    base = next((r for r in _vgg_rows(results) if r["attention"] == "none"), None)
    if not rows or base is None:
        return []
    band = _noise_band(results)
    out = ["**What CFSAM adds to SSD300-VGG16** (ratios to `" + base["name"] + "`).", ""]
    for row in rows:
        line = (
            f"- `{row['name']}` ({row['attention_kwargs'] or 'defaults'}): FLOPs "
            f"{_pct(row['flops_ratio'])}, parameters {_pct(row['params_ratio'])}, batch-1 "
            f"latency {_pct(row['latency_ms_ratio'])}, training step "
            f"{_pct(row['train_step_ms_ratio'])}"
        )
        ratio = row["latency_ms_ratio"]
        if band and ratio is not None and band[1] <= ratio <= band[2]:
            line += "; its latency ratio lies inside this run's noise band (below)"
        out.append(line + ".")
    if band:
        modules, low, high = band
        out += [
            "",
            f"Noise band: {', '.join(modules)} add under 1% FLOPs, yet their latency "
            f"ratios in this run span x{low:.2f} to x{high:.2f}: that is how much "
            "run-to-run noise moved single timings, so latency differences inside it are "
            "not evidence either way.",
        ]
    default = next(
        (
            c
            for c in results["cross_check"]
            if c.get("analytic_parts")
            and any(r["name"] == _check_name(c) and not r["attention_kwargs"] for r in rows)
        ),
        None,
    )
    if default:
        out += ["", _analytic_sentence(default, base["flops"])]
    return out


def _analytic_sentence(check, base_flops):
    """Where the default CFSAM's FLOPs go, and what pooling and a narrow local conv leave."""
    parts, shapes = check["analytic_parts"], [tuple(s) for s in check["feature_shapes"]]
    pool = cost.EFFICIENT_CFSAM_KWARGS["kv_pool_size"]
    tokens = sum(h * w for h, w, _ in shapes)
    pooled = cost.cfsam_matmul_flops(shapes, kv_pool_size=pool)
    pooled1 = cost.cfsam_matmul_flops(shapes, kv_pool_size=1)
    efficient = cost.cfsam_matmul_flops(shapes, **cost.EFFICIENT_CFSAM_KWARGS)
    key_tokens = sum(min(h, pool) * min(w, pool) for h, w, _ in shapes)

    def share(flops):
        return f"{flops / 1e9:.2f} GFLOPs ({100 * flops / base_flops:.1f}% of the baseline)"

    return (
        f"Where the default module's FLOPs go (analytic counts of its matrix products, next to "
        f"the baseline's counted {base_flops / 1e9:.2f} GFLOPs): the per-level 3x3 local "
        f"convolutions {share(parts['local'])}, full attention over the {tokens} tokens "
        f"{share(parts['attention'])}, the MLP {share(parts['mlp'])}. Pooling keys and values "
        f"to {pool}x{pool} ({key_tokens} key tokens instead of {tokens}) cuts attention to "
        f"{pooled['attention'] / 1e9:.2f} GFLOPs and leaves the module at "
        f"{share(pooled['total'])}; "
        f"pooling to 1x1 leaves {share(pooled1['total'])}, since the local convolutions, "
        f"projections and MLP remain. With the local 3x3 convolution also narrowed "
        f"(`{cost.EFFICIENT_CFSAM_KWARGS}`; the 1x1 still lifts it to the embedding width) the "
        f"module is {share(efficient['total'])}, its local part "
        f"{efficient['local'] / 1e9:.2f} GFLOPs."
    )


def _gpu_lines(results):
    rows = [r for r in _vgg_rows(results) if r["attention"] in ("none", "cfsam")]
    if not rows:
        return []
    schedules = [(dataset, name, getattr(configs, name)) for dataset, name in SCHEDULES]
    epochs = {
        name: s.iterations * s.batch_size / configs.DATASET_IMAGES[dataset]
        for dataset, name, s in schedules
    }
    head = []
    for dataset, name, _ in schedules:
        head += [f"{dataset}: one epoch", f"{name}: {epochs[name]:.0f} epochs"]
    out = [
        "",
        "**Expected training time on one GPU**, from the counted FLOPs. Assumptions, none "
        f"of them measured here: a training step costs {TRAIN_FLOPS_PER_FORWARD_FLOP}x the "
        "forward FLOPs (forward, plus backward for activations and weights); the GPU sustains "
        f"{GPU_EFFECTIVE_TFLOPS:.0f} TFLOP/s ({GPU_NAME}); the input pipeline keeps up; an "
        "epoch is one pass over `DATASET_IMAGES`: "
        + " or ".join(f"{d} ({configs.DATASET_IMAGES[d]:,} images)" for d, _, _ in schedules)
        + "; SSD300's schedules are "
        + " and ".join(
            f"`{n}` ({s.iterations:,} iterations at batch {s.batch_size})" for _, n, s in schedules
        )
        + ", all in recipes/configs.py.",
        "",
        "| model | " + " | ".join(head) + " |",
        "|---|" + "---:|" * len(head),
    ]
    for r in rows:
        cells = []
        for dataset, name, _ in schedules:
            seconds = (
                TRAIN_FLOPS_PER_FORWARD_FLOP
                * r["flops"]
                * configs.DATASET_IMAGES[dataset]
                / (GPU_EFFECTIVE_TFLOPS * 1e12)
            )
            cells += [f"{seconds / 60:.1f} min", f"{seconds * epochs[name] / 3600:.1f} h"]
        out.append(f"| {r['name']} | " + " | ".join(cells) + " |")
    return out


def _comparison_section(result, cost_results, rel_dir):
    s, m, runs = result["settings"], result["machine"], result["runs"]
    seeds = s["seeds"]
    train_minutes = sum(r["wall_seconds"] for r in runs) / 60
    demo = next(
        (r for r in (cost_results or {}).get("rows", []) if r["group"] == cost.DEMO_GROUP), None
    )
    latency_text = (
        "'latency vs none' is each module's batch-1 CPU latency ratio on the demo model of the "
        f"cost table ({demo['model'].get('input_size', 300)} px; n/a where it has no such row)."
        if demo
        else ""
    )
    return [
        "## Comparison of attention modules",
        "",
        f"Regenerate: `{_compare_command(s)}`, then `python benchmarks/report.py` (tables, plot "
        "and this page).",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; " + _load_sentence(m) + " Dataset: "
        f"{s['dataset']} ({s['train_images']} train / {s['val_images']} val images of "
        f"{s['image_size']} px), {s['backbone']}"
        + (f" (alpha {s['alpha']})" if s["backbone"] == "mobilenet_v2" else "")
        + f" at {s['input_size']} px, from scratch, {s['optimizer']} lr {s['lr']} "
        f"({s['schedule']}), batch {s['batch_size']}, {s['epochs']} epochs of "
        f"{runs[0]['steps_per_epoch']} steps, seeds {seeds}; evaluated on the val split after "
        f"every epoch. {len(runs)} runs, {train_minutes:.0f} min in all. "
        + _unfinished_sentence(result)
        + _convergence_sentence(result)
        + "Per-epoch training times are in the JSON (epoch 1 includes graph tracing). "
        "Cells are mean ± standard deviation over seeds (one number when one seed). "
        + PAIRED_NOTE
        + (" " + latency_text if latency_text else ""),
        "",
        comparison_table(result, cost_results),
        "",
        f"![AP50 per epoch]({rel_dir}/convergence.png)",
    ]


def _unfinished_sentence(result):
    """Which runs of the requested grid are not in the table, and which variants have
    fewer than 3 seeds."""
    missing = result.get("missing") or []
    text = ""
    if missing:
        names = ", ".join(f"{m['variant']} seed {m['seed']}" for m in missing)
        total = len(result["runs"]) + len(missing)
        text += (
            f"**Not finished yet: {names}** ({len(result['runs'])} of {total} runs); the "
            "table has the finished runs only. "
        )
    few = {n: len(v["seeds"]) for n, v in comparison_summary(result).items() if len(v["seeds"]) < 3}
    if few:
        text += (
            "**Fewer than 3 seeds for "
            + ", ".join(f"{n} ({k})" for n, k in few.items())
            + "**: with one seed no difference can be told apart from seed noise, and two "
            "give only a rough spread. "
        )
    return text


def _finetune_section(result, rel_dir):
    s, m, runs, start = result["settings"], result["machine"], result["runs"], result["start"]
    flags = [
        f"--from {s['weights']}",
        f"--out {s['out']}",
        f"--data-dir {s['data_dir']}",
        f"--epochs {s['epochs']}",
        f"--seeds {','.join(map(str, s['seeds']))}",
    ]
    if s.get("steps_per_epoch"):
        flags.append(f"--steps-per-epoch {s['steps_per_epoch']}")
    minutes = sum(r["wall_seconds"] for r in runs) / 60
    made = result.get("start_run")
    made = (
        f", trained by a recipe run: {made['backbone']}, attention {made['attention']}, "
        f"{made['epochs']} epochs of batch {made['batch_size']}, {made['optimizer']} lr "
        f"{made['lr']:g}, seed {made['seed']}"
        if made
        else ""
    )
    return [
        "## Fine-tuning CFSAM on a trained detector",
        "",
        f"Regenerate: `python recipes/finetune_attention.py {' '.join(flags)}`, then "
        "`python benchmarks/report.py`.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; " + _load_sentence(m) + " Both arms start "
        f"from the same trained detector without attention (`{s['weights']}`{made}; AP50 "
        f"{start['AP50']:.3f}, AP {start['AP']:.3f} on the val split) and train for the same "
        f"{s['epochs']} epochs of {runs[0]['steps_per_epoch']} steps with the same data and "
        f"seed: 'none' as it is, '{s['variants'][1]}' with the module inserted as the identity "
        f"(`add_attention`, {s['attention_kwargs'] or 'default arguments'}). {s['optimizer']} "
        f"lr {s['lr']:g} ({s['schedule']}), batch {s['batch_size']}, seeds {s['seeds']}; "
        f"{len(runs)} runs, {minutes:.0f} min in all. Cells are mean ± standard deviation over "
        "seeds. " + PAIRED_NOTE,
        "",
        comparison_table(result),
        "",
        f"![AP50 per epoch]({rel_dir}/convergence.png)",
    ]


def baseline_convergence(summary):
    """Whether the baseline had stopped improving at the comparison's budget.

    Args:
        summary: a `comparison_summary`.

    Returns:
        None without a baseline of at least 2 epochs, else ``{"from_epoch",
        "to_epoch", "moved", "spread", "converged"}``: ``moved`` is the range
        (max - min) of the baseline's mean AP50 over the last quarter of training
        (from the epoch that starts it to the last), ``spread`` the standard
        deviation over seeds of its final AP50, and ``converged`` is ``moved <
        spread`` (None with one seed: no spread to judge by).
    """
    base = summary.get("none")
    if not base or len(base["curve"]) < 2:
        return None
    curve = base["curve"]
    start = max(0, len(curve) - 1 - math.ceil(len(curve) / 4))
    window = _finite(curve[start:]) or [float("nan")]
    moved, spread = max(window) - min(window), base["final"]["AP50"]["std"]
    return {
        "from_epoch": start + 1,
        "to_epoch": len(curve),
        "moved": moved,
        "spread": spread,
        "converged": None if math.isnan(spread) else moved < spread,
    }


def _convergence_sentence(result):
    """The baseline's `baseline_convergence`, in words."""
    c = baseline_convergence(comparison_summary(result))
    if c is None:
        return ""
    span = (
        f"its mean AP50 moved by {c['moved']:.3f} over the last quarter of training (epochs "
        f"{c['from_epoch']}-{c['to_epoch']})"
    )
    if c["converged"] is None:
        return f"The baseline: {span}; with one seed there is no spread to judge that by. "
    against = f"the seed spread of its final AP50 (standard deviation {c['spread']:.3f})"
    if c["converged"]:
        return f"The baseline had stopped improving: {span}, less than {against}. "
    return (
        f"The baseline had not stopped improving: {span}, more than {against}, so the models "
        "are not converged at this budget. "
    )


def _compare_command(s):
    """The comparison recipe's command with the settings that made the training numbers."""
    flags = [
        f"--out {s['out']}",
        f"--data-dir {s['data_dir']}",
        f"--input-size {s['input_size']}",
        f"--image-size {s['image_size']}",
        f"--train-images {s['train_images']}",
        f"--val-images {s['val_images']}",
        f"--epochs {s['epochs']}",
        f"--batch-size {s['batch_size']}",
        f"--seeds {','.join(map(str, s['seeds']))}",
        f"--variants {','.join(s['variants'])}",
    ]
    if s.get("steps_per_epoch"):
        flags.insert(7, f"--steps-per-epoch {s['steps_per_epoch']}")
    if s.get("kv_pool_size") is not None:
        flags.append(f"--kv-pool-size {s['kv_pool_size']}")
    return "python recipes/compare_attention.py " + " ".join(flags)


def _latency_section(record, results_dir):
    return [
        "## Latency of the exported runtimes",
        "",
        f"Regenerate: `{latency.command_for(record, results_dir)}`, then "
        "`python benchmarks/report.py`. Single-image latency in ms, ratio to Keras in brackets.",
        "",
        latency.latency_table(record),
        "",
        latency.latency_note(record),
    ]


def _claims(cost_results, result):
    out = ["## Which paper claims these results support", ""]
    if cost_results:
        default = next(
            (
                r
                for r in _vgg_rows(cost_results)
                if r["attention"] == "cfsam" and not r["attention_kwargs"]
            ),
            None,
        )
        if default:
            out.append(
                '- **"No substantial computational overhead."** Our reading of the module, '
                f"at its defaults, adds {_pct(default['flops_ratio'])} FLOPs, "
                f"{_pct(default['params_ratio'])} parameters and "
                f"{_pct(default['latency_ms_ratio'])} CPU latency to SSD300-VGG16. The paper's "
                "own FLOP figures were not available to compare with."
            )
        baselines = {r["group"] for r in cost_results["rows"] if r["attention"] == "none"}
        for row in cost_results["rows"]:
            if (
                row["attention"] == "cfsam"
                and row["group"] != "SSD300-VGG16"
                and row["group"] in baselines
            ):
                out.append(
                    f"- On the CPU-sized `{row['name']}` model CFSAM ({row['attention_kwargs']}) "
                    f"adds {_pct(row['flops_ratio'])} FLOPs, {_pct(row['latency_ms_ratio'])} "
                    f"batch-1 latency and {_pct(row['train_step_ms_ratio'])} training-step time."
                )
    if result:
        out += _comparison_claims(comparison_summary(result), result["settings"])
    out.append(
        "- **VOC mAP 75.5 -> 78.6 and COCO AP50 43.1 -> 52.1** (the paper's numbers, quoted "
        "from arXiv 2510.14726). Cannot be tested on this "
        "machine (no GPU, no ImageNet weights, no VOC/COCO download). The same recipe runs them: "
        "`python recipes/compare_attention.py --dataset voc --data-dir VOCdevkit` and "
        "`--dataset coco --tfds`, writing the same table."
    )
    return out


def _comparison_claims(summary, settings):
    """The beats-the-baseline and converges-faster claims, judged from the comparison."""
    base = summary.get("none")
    cfsams = [n for n in summary if n.startswith("cfsam")]
    if not base or not cfsams:
        return []
    out = []
    others = {n: s for n, s in summary.items() if n in ("se", "cbam", "eca")}
    for name in cfsams:
        s = summary[name]
        seeds = s["paired_seeds"]
        budget = (
            f"on the CPU-sized built-in comparison ({settings['epochs']} epochs, seeds "
            f"{', '.join(map(str, seeds)) or 'none in common with the baseline'})"
        )
        word = {"better": "Supported", "worse": "Contradicted"}.get(s["verdict"], "Not shown")
        line = f"- **CFSAM beats the baseline** (`{name}`): {word} {budget}: AP50 "
        if seeds:
            line += (
                f"{statistics.fmean(s['final_ap50_by_seed'][k] for k in seeds):.3f} against "
                f"{statistics.fmean(base['final_ap50_by_seed'][k] for k in seeds):.3f}; "
            )
        line += f"difference paired by seed {difference_cell(s['vs_baseline'])}."
        if others:
            parts = []
            for other, o in others.items():
                vs = paired_difference(s["final_ap50_by_seed"], o["final_ap50_by_seed"])
                rel = {1: "above", -1: "below", 0: "no difference"}.get(_compare(vs), "")
                parts.append(f"{other} {difference_cell(vs)}" + (f" ({rel})" if rel else ""))
            line += " Against the other modules, paired by seed: " + "; ".join(parts) + "."
        out.append(line)
        epochs, reach = len(s["curve"]), s["reaches_baseline_epoch"]
        if reach is None or reach == epochs:
            conv = f"Not shown {budget}: `{name}` " + (
                "never reaches the baseline's final AP50."
                if reach is None
                else "reaches the baseline's final AP50 only at the last epoch."
            )
        else:
            at = epoch_difference(s, base, reach)
            conv = (
                f"`{name}` reaches the baseline's final AP50 at epoch {reach} of {epochs}; its "
                f"AP50 there minus the baseline's, paired by seed: {difference_cell(at)}"
            )
            conv = {
                1: f"Supported {budget}: {conv}, above 0.",
                None: f"Not shown {budget}: {conv}; with one seed there is no spread to tell "
                "that from seed noise.",
            }.get(_compare(at), f"Not shown {budget}: {conv}, an interval that holds 0.")
        out.append(f"- **Faster convergence** (`{name}`): {conv}")
    if (baseline_convergence(summary) or {}).get("converged"):
        out.append(
            "- The baseline had stopped improving at this budget (see the comparison), so "
            "these verdicts are about converged detectors, but small ones on the built-in "
            "dataset; the paper's claims are about SSD300-VGG16 on VOC / COCO."
        )
    else:
        out.append(
            "- The baseline is not shown to have stopped improving at this budget, so these "
            "verdicts test early training only; the paper's claims are about converged VOC / "
            "COCO detectors."
        )
    return out


def _load(path):
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def render_results(results_dir="docs/results", doc_path=None):
    """The text of ``docs/results.md`` from the JSON under ``results_dir``.

    Args:
        results_dir: the folder of cost.json, compare_builtin/compare.json and
            latency.json; each may be missing.
        doc_path: where the page will be written (for the relative link to the
            convergence plot); default beside ``results_dir``.
    """
    doc_dir = os.path.dirname(os.path.abspath(doc_path or results_dir))
    cost_results = _load(os.path.join(results_dir, "cost.json"))
    result = _load(os.path.join(results_dir, "compare_builtin", "compare.json"))
    record = _load(os.path.join(results_dir, "latency.json"))
    lines = [
        "# Results: what CFSAM costs and what it buys",
        "",
        f"Generated by `python benchmarks/report.py` from the JSON under `{results_dir}/`; do "
        "not edit by hand. Every number below was produced by the command named in its section.",
        "",
    ]
    if cost_results:
        lines += _cost_section(cost_results, results_dir) + _gpu_lines(cost_results)
    else:
        lines += ["## Cost", "", f"Not run yet: `python benchmarks/cost.py --out {results_dir}`."]
    lines.append("")
    if result:
        rel = os.path.relpath(os.path.join(results_dir, "compare_builtin"), doc_dir)
        lines += _comparison_section(result, cost_results, rel)
    else:
        lines += [
            "## Comparison of attention modules",
            "",
            "Not run yet: `python recipes/compare_attention.py`.",
        ]
    lines.append("")
    finetune = _load(os.path.join(results_dir, "finetune_builtin", "compare.json"))
    if finetune:
        rel = os.path.relpath(os.path.join(results_dir, "finetune_builtin"), doc_dir)
        lines += _finetune_section(finetune, rel) + [""]
    if record:
        lines += _latency_section(record, results_dir)
    else:
        lines += [
            "## Latency of the exported runtimes",
            "",
            f"Not run yet: `python benchmarks/latency.py --out {results_dir}`.",
        ]
    lines.append("")
    lines += _claims(cost_results, result)
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--results",
        default=os.path.join("docs", "results"),
        help="folder of the JSON (default docs/results)",
    )
    p.add_argument(
        "--out",
        default=os.path.join("docs", "results.md"),
        help="the page to write (default docs/results.md)",
    )
    args = p.parse_args(argv)
    if not os.path.isdir(args.results):
        raise SystemExit(f"error: --results: no such folder: {args.results}")
    comparison = os.path.join(args.results, "compare_builtin")
    if os.path.isfile(os.path.join(comparison, "compare.json")):
        write_comparison(comparison, _load(os.path.join(args.results, "cost.json")))
    finetune = os.path.join(args.results, "finetune_builtin")
    if os.path.isfile(os.path.join(finetune, "compare.json")):
        write_comparison(finetune)
    text = render_results(args.results, args.out)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
