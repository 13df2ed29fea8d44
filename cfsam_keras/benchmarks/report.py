"""Tables, plot and ``docs/results.md`` from the cost and comparison JSON.

Every number in ``docs/results.md`` comes from ``docs/results/cost.json``
(``cfsam-keras benchmark --cost --out docs/results``) and
``docs/results/compare_builtin/compare.json``
(``python recipes/compare_attention.py``); regenerate the page with

    python -m cfsam_keras.benchmarks.report [--results docs/results] [--out docs/results.md]
"""

import argparse
import json
import math
import os
import statistics

from cfsam_keras.benchmarks.cost import cfsam_matmul_flops
from cfsam_keras.benchmarks.cost import cost_table
from cfsam_keras.benchmarks.cost import machine  # noqa: F401  (used by the recipe)

#: Metrics of the comparison table, in column order.
METRICS = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "voc_map")
#: Images per epoch of the paper's training sets (for the GPU time estimate).
EPOCH_IMAGES = {"VOC07+12 trainval": 16551, "COCO train2017": 117266}
#: The GPU throughput the estimate assumes: an effective 40 TFLOP/s, about a quarter
#: of an NVIDIA A100's 156 TFLOP/s TF32 tensor-core peak (a stated assumption, not
#: a measurement).
GPU_EFFECTIVE_TFLOPS = 40.0
GPU_NAME = "NVIDIA A100 (TF32), at an effective 40 TFLOP/s"


def _finite(values):
    return [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def _stats(values):
    values = _finite(values)
    if not values:
        return {"mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else float("nan"),
        "min": min(values), "max": max(values), "n": len(values),
    }


def comparison_summary(result):
    """Per-variant statistics over seeds of a ``compare.json`` result.

    Returns:
        dict variant -> ``{"final": {metric: stats}, "curve": [mean AP50 per
        epoch], "params", "latency_ratio", "seeds", "reaches_baseline_epoch",
        "verdict"}``. ``verdict`` compares final AP50 with the baseline's:
        "baseline", "better" / "worse" when the means differ by more than the
        larger of the two seed standard deviations, "no difference" when
        they do not, and "single seed" when there is no spread to compare to.
    """
    order = result["settings"]["variants"]
    by_variant = {name: [r for r in result["runs"] if r["variant"] == name] for name in order}
    summary = {}
    for name, runs in by_variant.items():
        if not runs:
            continue
        epochs = min(len(r["epochs"]) for r in runs)
        curve = [statistics.fmean(_finite([r["epochs"][i]["AP50"] for r in runs]) or [float("nan")])
                 for i in range(epochs)]
        latency = result.get("latency", {}).get(name, {})
        summary[name] = {
            "final": {m: _stats([r["final"][m] for r in runs]) for m in METRICS},
            "curve": curve,
            "params": runs[0]["params"],
            "latency_ratio": latency.get("latency_ratio"),
            "seeds": sorted(r["seed"] for r in runs),
        }
    base = summary.get("none")
    for name, s in summary.items():
        if base is None:
            s["reaches_baseline_epoch"], s["verdict"] = None, "no baseline"
            continue
        target = base["final"]["AP50"]["mean"]
        s["reaches_baseline_epoch"] = next(
            (i + 1 for i, v in enumerate(s["curve"]) if not math.isnan(v) and v >= target), None)
        if name == "none":
            s["verdict"] = "baseline"
            continue
        s["verdict"] = {
            None: "single seed: no spread to compare to",
            0: "no difference (within seed spread)",
            1: "better",
            -1: "worse",
        }[_compare(s["final"]["AP50"], base["final"]["AP50"])]
    return summary


def _compare(a, b):
    """1 / -1 when stats ``a``'s mean is above / below ``b``'s by more than the larger
    seed standard deviation, 0 when within it, None when neither has a spread."""
    spread = max(_finite([a["std"], b["std"]]) or [float("nan")])
    if math.isnan(spread):
        return None
    diff = a["mean"] - b["mean"]
    return 0 if abs(diff) <= spread else (1 if diff > 0 else -1)


def _cell(stats):
    if stats["n"] == 0:
        return "n/a"
    if stats["n"] == 1:
        return f"{stats['mean']:.3f}"
    return f"{stats['mean']:.3f} ± {stats['std']:.3f}"


def comparison_table(result):
    """The comparison as a Markdown table (mean ± standard deviation over seeds)."""
    summary = comparison_summary(result)
    head = ["variant", "seeds"] + list(METRICS) + ["params (M)", "latency vs none",
                                                   "first epoch >= none's final AP50", "AP50 vs none"]
    lines = ["| " + " | ".join(head) + " |", "|---|---:|" + "---:|" * (len(head) - 3) + "---|"]
    for name, s in summary.items():
        ratio = s["latency_ratio"]
        lines.append("| " + " | ".join(
            [name, str(len(s["seeds"]))] + [_cell(s["final"][m]) for m in METRICS]
            + [f"{s['params'] / 1e6:.2f}", "n/a" if ratio is None else f"x{ratio:.2f}",
               "never" if s["reaches_baseline_epoch"] is None else str(s["reaches_baseline_epoch"]),
               s["verdict"]]) + " |")
    return "\n".join(lines)


def plot_convergence(result, path):
    """AP50 per epoch of every variant (mean over seeds, band = min..max) on one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    order = result["settings"]["variants"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in order:
        runs = [r for r in result["runs"] if r["variant"] == name]
        if not runs:
            continue
        epochs = min(len(r["epochs"]) for r in runs)
        x = list(range(1, epochs + 1))
        values = [[r["epochs"][i]["AP50"] for r in runs] for i in range(epochs)]
        ax.plot(x, [statistics.fmean(v) for v in values], marker="o", label=f"{name} ({len(runs)} seeds)")
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


def write_comparison(out_dir):
    """Writes ``compare.md`` and ``convergence.png`` next to ``compare.json``."""
    with open(os.path.join(out_dir, "compare.json")) as f:
        result = json.load(f)
    with open(os.path.join(out_dir, "compare.md"), "w") as f:
        f.write(comparison_table(result) + "\n")
    plot_convergence(result, os.path.join(out_dir, "convergence.png"))


def _pct(ratio):
    return "not measured" if ratio is None else f"{100 * (ratio - 1):+.1f}%"


def _row(cost, name):
    return next((r for r in cost["rows"] if r["name"] == name), None)


def _cost_section(cost):
    m = cost["machine"]
    lines = [
        "## Cost",
        "",
        "Regenerate: `" + cost.get("command", "cfsam-keras benchmark --cost --out docs/results")
        + "` (then `python -m cfsam_keras.benchmarks.report`). `cfsam-keras benchmark --cost "
        "--out docs/results` takes every timing with the default run counts.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, TensorFlow {m['tensorflow']}; "
        + _load_sentence(m) + " All variants were timed in the same run in interleaved rounds, "
        "so the ratios to the baseline are the numbers to read.",
        _settings_sentence(cost) + " Random weights. "
        "FLOPs: one forward "
        "pass at batch 1, counted by TensorFlow's profiler (`cfsam_keras.flops.count_flops`, "
        "multiply-add = 2 FLOPs). The machine's measured peak: "
        f"{cost['peak_gflops']:.1f} GFLOP/s (median {cost['settings']['peak_matmul_size']}"
        f"² float32 matmul in the same run); the last columns are each model's achieved "
        "GFLOP/s at batch 1 and batch 8 and their fraction of that peak. The whole run took "
        f"{cost['seconds'] / 60:.1f} min.",
        "",
        cost_table(cost),
        "",
    ]
    fractions = [r.get(k) for r in cost["rows"] for k in ("peak_fraction", "peak_fraction_b1")]
    if any(f is not None and f > 1 for f in fractions):
        lines += ["Fractions above 100% mean the matmul peak was sampled at a more loaded moment "
                  "than the model timings: under changing load the measured peak is not a "
                  "stable reference, only the ratios between variants timed in the same rounds are.", ""]
    spread = [f"{r['name']} {min(r['latency_rounds_ms']):.0f}–{max(r['latency_rounds_ms']):.0f}"
              for r in cost["rows"] if r.get("latency_rounds_ms")]
    if spread:
        lines += ["Spread of the batch-1 latency rounds (min–max, ms): " + "; ".join(spread)
                  + ". Where the spread is wider than a difference between two rows, that "
                  "difference is load noise, not the module.", ""]
    lines += [
        "**Cross-check of the FLOP counter.**",
        "",
        "| what | counted (profiler) | analytic | counted / analytic |",
        "|---|---:|---:|---:|",
    ]
    for c in cost["cross_check"]:
        lines.append(f"| {c['what']} | {c['counted']:,} | {c['analytic']:,} | {c['counted'] / c['analytic']:.3f} |")
    lines += ["", "The analytic CFSAM count has matrix products and convolutions only (no bias, "
              "normalisation, softmax, GELU); the difference is that element-wise work. Its parts "
              "(GFLOPs):", "",
              "| module | local 3x3 + 1x1 | q/k/v/out projections | attention | MLP | fusion 1x1 |",
              "|---|---:|---:|---:|---:|---:|"]
    for c in cost["cross_check"]:
        p = c.get("analytic_parts")
        if p:
            lines.append(f"| {c['what'].split(chr(39))[1]} | {p['local'] / 1e9:.2f} | {p['qkv_out'] / 1e9:.2f} "
                         f"| {p['attention'] / 1e9:.2f} | {p['mlp'] / 1e9:.2f} | {p['fusion'] / 1e9:.2f} |")
    lines.append("")
    lines += _goal_lines(cost)
    return lines


def _load_sentence(m):
    """What the recorded load average says about contention on the machine."""
    load, cores = m.get("load_average_1min"), m.get("cores")
    if load is None or not cores:
        return "load not recorded."
    text = f"1-minute load average {load:.1f} at the end of the run"
    if load > cores + 0.5:
        return text + (", above the core count: other jobs competed for the CPU, so absolute "
                       "times are slower than on an idle machine.")
    return text + ", within the core count (no other heavy jobs)."


def _settings_sentence(cost):
    st = cost["settings"]
    taken = st.get("measurements", ["latency", "throughput", "train_step"])
    parts = []
    if "latency" in taken:
        parts.append(f"batch-1 latency: median of {st['runs']} rounds")
    if "throughput" in taken:
        parts.append(f"batch-{st['batch_size']} throughput: median of {st.get('batch_runs', st['runs'])} rounds")
    if "train_step" in taken:
        parts.append(f"training step (forward + backward + SGD update, MultiBoxLoss, batch "
                     f"{st['batch_size']}): median of {st['train_runs']} rounds")
    text = "Timings: " + "; ".join(parts) + f", each after {st['warmup']} warm-up call(s)."
    missing = [m for m in ("latency", "throughput", "train_step") if m not in taken]
    if missing:
        text += (f" **Not measured in this run: {', '.join(missing)}** (marked 'not run'; the "
                 "machine was too loaded for the batch-8 SSD300-VGG16 timings within the session).")
    return text


def _noise_band(cost):
    """(min, max) latency ratio of the rows whose FLOPs are within 1% of their baseline."""
    ratios = [r["latency_ms_ratio"] for r in cost["rows"]
              if r["attention"] != "none" and r["flops_ratio"] is not None
              and r["flops_ratio"] < 1.01 and r.get("latency_ms_ratio") is not None]
    return (min(ratios + [1.0]), max(ratios + [1.0])) if ratios else None


def _goal_lines(cost):
    default, efficient = _row(cost, "vgg16 cfsam"), _row(cost, "vgg16 cfsam kv5 local64")
    if default is None or efficient is None:
        return []
    out = ["**The overhead goal** (default CFSAM at most +20% FLOPs and latency over SSD300-VGG16; "
           "the efficient variant at most +10%).", ""]
    band = _noise_band(cost)
    for row, limit in ((default, 0.20), (efficient, 0.10)):
        f = row["flops_ratio"] - 1
        flops_verdict = "meets" if f <= limit else "misses"
        line = (f"- `{row['name']}` ({row['attention_kwargs'] or 'defaults'}): FLOPs "
                f"{_pct(row['flops_ratio'])}, {flops_verdict} the +{100 * limit:.0f}% FLOP limit; "
                f"batch-1 latency {_pct(row['latency_ms_ratio'])}, training step "
                f"{_pct(row['train_step_ms_ratio'])}")
        ratio = row["latency_ms_ratio"]
        if ratio is None:
            line += "."
        elif band and band[0] <= ratio <= band[1]:
            line += (f"; the latency ratio lies inside this run's noise band (x{band[0]:.2f} to "
                     f"x{band[1]:.2f}, see below), so it cannot be called over or under the limit.")
        else:
            line += f"; latency {'within' if ratio - 1 <= limit else 'over'} the limit."
        out.append(line)
    if band:
        out += ["", f"Noise band: SE, CBAM and ECA add under 1% FLOPs, yet their latency ratios "
                f"in this run span x{band[0]:.2f} to x{band[1]:.2f}: that is how much "
                "run-to-run noise moved single timings, so latency differences inside it "
                "are not evidence either way."]
    check = next((c for c in cost["cross_check"] if "'vgg16 cfsam'" in c["what"]), None)
    if check:
        parts = check["analytic_parts"]
        shapes = [tuple(s) for s in check["feature_shapes"]]
        base = _row(cost, "vgg16 none")["flops"]
        tokens = sum(h * w for h, w, _ in shapes)
        pooled5 = cfsam_matmul_flops(shapes, kv_pool_size=5)
        pooled1 = cfsam_matmul_flops(shapes, kv_pool_size=1)
        kv5 = sum(min(h, 5) * min(w, 5) for h, w, _ in shapes)
        out += ["", "Why (analytic counts of the module's matrix products, next to the baseline's "
                f"counted {base / 1e9:.2f} GFLOPs): in the faithful default the per-level 3x3 local "
                f"convolutions (C_i -> 256) cost {parts['local'] / 1e9:.2f} GFLOPs "
                f"({100 * parts['local'] / base:.1f}% of the baseline), full attention over the "
                f"{tokens} tokens {parts['attention'] / 1e9:.2f} GFLOPs "
                f"({100 * parts['attention'] / base:.1f}%), the MLP {parts['mlp'] / 1e9:.2f}. "
                "Pooling keys and values alone cannot reach +10%: kv_pool_size=5 "
                f"({kv5} key tokens instead of {tokens}) cuts attention to "
                f"{pooled5['attention'] / 1e9:.2f} GFLOPs but leaves the module at "
                f"{pooled5['total'] / 1e9:.2f} GFLOPs (+{100 * pooled5['total'] / base:.1f}%), and "
                f"even kv_pool_size=1 leaves {pooled1['total'] / 1e9:.2f} "
                f"(+{100 * pooled1['total'] / base:.1f}%), because the local convolutions, "
                "projections and MLP remain. The efficient variant therefore pools keys/values "
                "to 5x5 *and* narrows the local 3x3 convolution to 64 channels "
                "(`local_channels=64`; the 1x1 still lifts it to 256), which cuts the local part "
                "4x; tokens keep width 256 and queries keep full resolution."]
    return out


def _gpu_lines(cost):
    rows = [r for r in cost["rows"] if r["group"] == "SSD300-VGG16" and r["name"] in ("vgg16 none", "vgg16 cfsam")]
    if not rows:
        return []
    out = ["", f"Expected training time per epoch on one GPU, from the counted FLOPs: a training step "
           f"is about 3x the forward FLOPs (forward + backward for activations and weights); "
           f"assumed GPU: {GPU_NAME} (an assumption, not measured here).", "",
           "| model | " + " | ".join(EPOCH_IMAGES) + " |", "|---|" + "---:|" * len(EPOCH_IMAGES)]
    for r in rows:
        cells = []
        for images in EPOCH_IMAGES.values():
            minutes = 3 * r["flops"] * images / (GPU_EFFECTIVE_TFLOPS * 1e12) / 60
            cells.append(f"{minutes:.1f} min")
        out.append(f"| {r['name']} | " + " | ".join(cells) + " |")
    out += ["", "SSD's schedules are 120k iterations at batch 32 on VOC07+12 (~232 epochs) and "
            "400k on COCO (~108 epochs); multiply accordingly, and expect the input pipeline to "
            "be the limit unless it has enough CPU cores."]
    return out


def _comparison_section(result, rel_dir):
    s = result["settings"]
    m = result["machine"]
    seeds = s["seeds"]
    runs = result["runs"]
    train_minutes = sum(r["wall_seconds"] for r in runs) / 60
    lines = [
        "## Comparison of attention modules",
        "",
        "Regenerate: `" + _compare_command(s) + "`; re-render only: "
        f"`python recipes/compare_attention.py --out {s['out']} --render-only`.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; " + _load_sentence(m) + " Dataset: "
        f"{s['dataset']} ({s['train_images']} train / {s['val_images']} val images of "
        f"{s['image_size']} px), {s['backbone']}"
        + (f" (alpha {s['alpha']})" if s["backbone"] == "mobilenet_v2" else "")
        + f" at {s['input_size']} px, "
        f"from scratch, {s['optimizer']} lr {s['lr']} ({s['schedule']}), batch {s['batch_size']}, "
        f"{s['epochs']} epochs of {runs[0]['steps_per_epoch']} steps, seeds {seeds}; evaluated on "
        f"the val split after every epoch. {len(runs)} runs, {train_minutes:.0f} min in all. "
        + ("" if len(seeds) >= 3 else
           f"**Only {len(seeds)} seed(s) per variant were run** (the comparison asks for at least 3), "
           "so no difference in this table can be told apart from seed noise. ")
        + _not_run_sentence(s["variants"])
        + _convergence_sentence(result)
        + "Per-epoch training times are in the JSON (epoch 1 includes graph tracing). "
        "Cells are mean ± standard deviation over seeds (one number when one seed); "
        "latency is batch-1 CPU latency relative to `none`, timed in interleaved rounds.",
        "",
        comparison_table(result),
        "",
        f"![AP50 per epoch]({rel_dir}/convergence.png)",
    ]
    return lines


def _convergence_sentence(result):
    """Whether the baseline's mean AP50 was still rising over the last epoch."""
    base = comparison_summary(result).get("none")
    if not base or len(base["curve"]) < 2:
        return ""
    before, last = base["curve"][-2], base["curve"][-1]
    if last - before > 0.01:
        return (f"The baseline's mean AP50 was still rising at the last epoch ({before:.3f} -> "
                f"{last:.3f}): the models are not converged at this budget. ")
    return f"The baseline's mean AP50 changed by {last - before:+.3f} over the last epoch. "


#: The variants of recipes/compare_attention.py (cfsam_kv carries its pool size).
ALL_VARIANTS = ("none", "cfsam", "cfsam_kv", "se", "cbam", "eca")


def _not_run_sentence(variants):
    missing = [v for v in ALL_VARIANTS
               if not any(n == v or (v == "cfsam_kv" and n.startswith("cfsam_kv")) for n in variants)]
    if not missing:
        return ""
    return (f"**Not run here: {', '.join(missing)}** (the same command with "
            f"`--variants {','.join(ALL_VARIANTS)}` runs them). ")


def _compare_command(s):
    flags = [f"--out {s['out']}", f"--data-dir {s['data_dir']}", f"--input-size {s['input_size']}",
             f"--image-size {s['image_size']}", f"--train-images {s['train_images']}",
             f"--val-images {s['val_images']}", f"--epochs {s['epochs']}",
             f"--batch-size {s['batch_size']}", f"--seeds {','.join(map(str, s['seeds']))}",
             f"--variants {','.join(s['variants'])}", f"--latency-runs {s['latency_runs']}"]
    if s.get("steps_per_epoch"):
        flags.insert(7, f"--steps-per-epoch {s['steps_per_epoch']}")
    if s.get("kv_pool_size") is not None:
        flags.append(f"--kv-pool-size {s['kv_pool_size']}")
    return "python recipes/compare_attention.py " + " ".join(flags)


def _claims(cost, result):
    out = ["## Which paper claims these results support", ""]
    if cost:
        default = _row(cost, "vgg16 cfsam")
        if default:
            small = default["flops_ratio"] <= 1.2 and (default["latency_ms_ratio"] or 0) <= 1.2
            out.append(
                "- **\"No substantial computational overhead.\"** "
                + ("Supported within +20% " if small else "Not for our faithful default ")
                + f"(our reading of the module adds {_pct(default['flops_ratio'])} FLOPs, "
                f"{_pct(default['params_ratio'])} parameters and {_pct(default['latency_ms_ratio'])} "
                "CPU latency to SSD300-VGG16); see the efficient variant above for a small "
                "overhead. The paper's own FLOP figures were not available to compare with.")
        for base_name, name in (("mobilenet_v2 none", "mobilenet_v2 cfsam"),
                                ("demo small_vgg none", "demo small_vgg cfsam kv4")):
            row = _row(cost, name)
            if row and _row(cost, base_name):
                out.append(
                    f"- On the CPU-sized `{name}` model CFSAM ({row['attention_kwargs']}) adds "
                    f"{_pct(row['flops_ratio'])} FLOPs, {_pct(row['latency_ms_ratio'])} batch-1 "
                    f"latency and {_pct(row['train_step_ms_ratio'])} training-step time: next to a "
                    "small backbone the module's share of the cost is larger.")
    if result:
        summary = comparison_summary(result)
        out += _comparison_claims(summary, result["settings"])
    out.append(
        "- **VOC mAP 75.5 -> 78.6 and COCO AP50 43.1 -> 52.1** (the paper's numbers, quoted "
        "from arXiv 2510.14726). Cannot be tested on this "
        "machine (no GPU, no ImageNet weights, no VOC/COCO download). The same recipe runs them: "
        "`python recipes/compare_attention.py --dataset voc --data-dir VOCdevkit` and "
        "`--dataset coco --tfds`, writing the same table.")
    return out


def _comparison_claims(summary, settings):
    """The beats-the-baseline and converges-faster claims, judged from the comparison."""
    base = summary.get("none")
    cfsams = [n for n in summary if n.startswith("cfsam")]
    if not base or not cfsams:
        return []
    budget = (f"on the CPU-sized built-in comparison ({settings['epochs']} epochs, "
              f"{len(base['seeds'])} seed(s))")
    out = []
    others = {n: s for n, s in summary.items() if n in ("se", "cbam", "eca")}
    for name in cfsams:
        s = summary[name]
        a, b = s["final"]["AP50"], base["final"]["AP50"]
        verdict = s["verdict"]
        word = {"better": "Supported", "worse": "Contradicted"}.get(verdict, "Not shown")
        line = (f"- **CFSAM beats the baseline** (`{name}`): {word} {budget}: AP50 "
                f"{a['mean']:.3f} against {b['mean']:.3f} ({verdict}).")
        if others:
            best = max(others, key=lambda n: others[n]["final"]["AP50"]["mean"])
            o = others[best]["final"]["AP50"]
            rel = {1: "above", -1: "below"}.get(_compare(a, o), "no difference from")
            line += f" Against the best other module ({best}, AP50 {o['mean']:.3f}): {rel} it."
        out.append(line)
        epochs = len(s["curve"])
        reach = s["reaches_baseline_epoch"]
        if reach is not None and reach < epochs:
            conv = (f"Supported {budget}: `{name}` reaches the baseline's final AP50 at epoch "
                    f"{reach} of {epochs}.")
        else:
            conv = (f"Not shown {budget}: `{name}` "
                    + ("never reaches the baseline's final AP50." if reach is None else
                       "reaches the baseline's final AP50 only at the last epoch."))
        out.append(f"- **Faster convergence** (`{name}`): {conv}")
    out.append("- A budget this small tests early training only; the paper's claims are about "
               "converged VOC / COCO detectors.")
    return out


def render_results(results_dir="docs/results", doc_path=None):
    """Builds the text of ``docs/results.md`` from the JSON under ``results_dir``.

    Reads ``cost.json`` and ``compare_builtin/compare.json`` when present; a
    missing one gets a line saying it was not run.
    """
    doc_dir = os.path.dirname(os.path.abspath(doc_path)) if doc_path else os.path.dirname(
        os.path.abspath(results_dir))
    cost = result = None
    cost_file = os.path.join(results_dir, "cost.json")
    compare_file = os.path.join(results_dir, "compare_builtin", "compare.json")
    if os.path.isfile(cost_file):
        with open(cost_file) as f:
            cost = json.load(f)
    if os.path.isfile(compare_file):
        with open(compare_file) as f:
            result = json.load(f)
    lines = [
        "# Results: what CFSAM costs and what it buys",
        "",
        "Generated by `python -m cfsam_keras.benchmarks.report` from the JSON under "
        "`docs/results/`; do not edit by hand. Every number below was produced by the command "
        "named in its section.",
        "",
    ]
    lines += _cost_section(cost) + _gpu_lines(cost) if cost else ["## Cost", "", "Not run yet: `cfsam-keras benchmark --cost --out docs/results`."]
    lines.append("")
    if result:
        rel = os.path.relpath(os.path.join(results_dir, "compare_builtin"), doc_dir)
        lines += _comparison_section(result, rel)
    else:
        lines += ["## Comparison of attention modules", "", "Not run yet."]
    lines.append("")
    lines += _claims(cost, result)
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description="Write docs/results.md from docs/results/*.json.")
    p.add_argument("--results", default=os.path.join("docs", "results"))
    p.add_argument("--out", default=os.path.join("docs", "results.md"))
    args = p.parse_args(argv)
    text = render_results(args.results, args.out)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
