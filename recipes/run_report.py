"""The demo's Markdown report: metrics table, curves, pictures."""

import os

import matplotlib
import numpy as np
from PIL import Image

from cfsam_keras.runtime import POOLED_CPU_ALLOCATOR
from cfsam_keras.training import read_history
from cfsam_keras.visualization import draw_detections

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after choosing the non-interactive backend)


def plot_curves(history, out_dir):
    """Plots the loss and the validation metrics per epoch as PNG files.

    Args:
        history: rows as returned by ``read_history`` (dicts with ``epoch``).
        out_dir: where to write ``loss.png`` and ``map.png``.

    Returns:
        The paths written (``map.png`` only when some row holds a metric
        ``val_AP``, ``val_AP50``, ``val_AP75`` or ``val_voc_map``).
    """
    os.makedirs(out_dir, exist_ok=True)
    written = []
    if not history:
        return written
    epochs = [row["epoch"] for row in history]

    fig, ax = plt.subplots(figsize=(6, 4))
    for key in ("loss", "val_loss"):
        points = [(row["epoch"], row[key]) for row in history if key in row]
        if points:
            ax.plot(*zip(*points), marker="o", label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("MultiBox loss")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend()
    path = os.path.join(out_dir, "loss.png")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)

    metric_keys = sorted(
        {
            k
            for row in history
            for k in row
            if k in ("val_AP", "val_AP50", "val_AP75", "val_voc_map")
        }
    )
    if metric_keys:
        fig, ax = plt.subplots(figsize=(6, 4))
        for key in metric_keys:
            points = [(row["epoch"], row[key]) for row in history if key in row]
            ax.plot(*zip(*points), marker="o", label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation metric")
        ax.set_xlim(0.5, max(epochs) + 0.5)
        ax.set_ylim(0, 1)
        ax.grid(True, alpha=0.3)
        ax.legend()
        path = os.path.join(out_dir, "map.png")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def machine_note(load_averages):
    """A report paragraph: the CPU cores and the load averages taken during the run.

    Args:
        load_averages: dict moment -> ``os.getloadavg()`` (1, 5 and 15 minutes).
    """
    moments = "; ".join(
        f"{moment} {' / '.join(f'{v:.2f}' for v in values)}"
        for moment, values in load_averages.items()
    )
    switch = POOLED_CPU_ALLOCATOR[0]
    return (
        f"Machine: {os.cpu_count()} CPU cores; load average (1, 5 and 15 minutes) {moments}; "
        f"{switch} {os.environ.get(switch, 'unset')}."
    )


def write_report(run_dir, title, metrics, settings=None, images=(), timings=None, notes=()):
    """Writes ``report.md`` in ``run_dir`` with curves from ``history.jsonl``.

    Args:
        run_dir: the run folder (holds ``history.jsonl``).
        title: the report's heading.
        metrics: dict name -> value, the final evaluation (a table).
        settings: dict name -> value, the hyper-parameters (a table).
        images: paths of pictures (e.g. predictions) to show, inside run_dir.
        timings: dict stage -> seconds.
        notes: extra Markdown paragraphs.

    Returns:
        The path of ``report.md``.
    """
    history = read_history(os.path.join(run_dir, "history.jsonl"))
    curves = plot_curves(history, run_dir)
    lines = [f"# {title}", ""]
    if metrics:
        lines += ["## Validation metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in metrics.items()]
        lines.append("")
    if timings:
        lines += ["## Time", "", "| stage | seconds |", "|---|---|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in timings.items()]
        lines.append("")
    if settings:
        lines += ["## Settings", "", "| setting | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in settings.items()]
        lines.append("")
    if curves:
        lines += ["## Training curves", ""]
        lines += [f"![{os.path.basename(p)}]({os.path.relpath(p, run_dir)})" for p in curves]
        lines.append("")
    if history:
        keys = ["epoch"] + sorted({k for row in history for k in row} - {"epoch"})
        lines += ["## Per epoch", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        for row in history:
            lines.append("| " + " | ".join(_fmt(row[k]) if k in row else "" for k in keys) + " |")
        lines.append("")
    if images:
        lines += ["## Predictions on validation images", ""]
        lines += [f"![{os.path.basename(p)}]({os.path.relpath(p, run_dir)})" for p in images]
        lines.append("")
    for note in notes:
        lines += [note, ""]
    path = os.path.join(run_dir, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def draw_prediction(image, detections, class_names, path, min_score=0.3):
    """Draws detections on an image (enlarged to about 256 px) and saves it as ``path``."""
    scale = max(1, round(256 / max(image.shape[:2])))
    picture = draw_detections(image, detections, class_names, min_score=min_score, scale=scale)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(np.asarray(picture, np.uint8)).save(path)
    return path
