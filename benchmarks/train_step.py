"""Training-step speed of SSD300 with and without CFSAM, on either Keras backend.

    python benchmarks/train_step.py [--out docs/results] [--quick] [--backend tensorflow|jax]
        [--models "vgg16 none,vgg16 cfsam"] [--batch-size 8] [--precision float32]
        [--xla auto|on|off] [--rounds 2] [--forward-rounds 6] [--warmup 1]
        [--peak-size 2048] [--no-torch]

Times, in interleaved rounds (``harness.interleaved_rounds``), the training step
(forward, backward and SGD-momentum update, ``model.train_on_batch`` with
``MultiBoxLoss`` on pre-encoded targets), the batch-1 forward and the batch-N
forward of each model, with a float32 matmul (the peak) in the same rounds and,
where ``torch`` and ``torchvision`` are importable, torchvision's
``ssd300_vgg16`` on the same images, boxes, batch and precision. The targets
come from NumPy (`synthetic_batch`), so under ``--backend jax`` the script
imports nothing from TensorFlow. Writes
OUT/train_step_<backend>_<precision>[_xla].json and .md (``benchmarks/conv_backends.py``
times the convolutions alone in both backends).
"""

import argparse
import os
import shlex
import sys
import time

import cost
import harness
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BACKENDS = ("tensorflow", "jax")
#: --precision -> the Keras dtype policy the model is built under.
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
#: The models of a full run and of ``--quick`` (`cost.cost_variants` row names).
MODELS = {
    False: ("vgg16 none", "vgg16 cfsam", "vgg16 cfsam kv5 local64", cost.demo_variant().name),
    True: ("tiny cfsam",),
}
#: Batch, timed rounds and matmul size of a full run and of ``--quick``.
COUNTS = {
    False: dict(batch_size=8, rounds=2, forward_rounds=6, warmup=1, peak_size=harness.PEAK_SIZE),
    True: dict(batch_size=2, rounds=1, forward_rounds=1, warmup=1, peak_size=128),
}
#: A training step counted as this many forward passes (forward + backward).
TRAIN_FLOPS_PER_FORWARD = 3
#: Objects per image of the synthetic batch (VOC averages about 2.4) and their sides.
BOXES_PER_IMAGE = (1, 5)
BOX_SIDES = (0.1, 0.7)
#: The peer's name in the rounds and the table.
TORCHVISION = "torchvision ssd300_vgg16"
#: SGD of every timed step (the rate is tiny, so the weights barely move).
LEARNING_RATE, MOMENTUM = 1e-6, 0.9


def model_variants(names):
    """The `cost.Variant` of each name, among the full and the ``--quick`` rows of cost.py."""
    known = {v.name: v for v in cost.cost_variants(False) + cost.cost_variants(True)}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"--models: unknown {unknown}; known: {list(known)}")
    return [known[n] for n in names]


def numpy_targets(boxes, labels, anchors):
    """SSD targets of one image in NumPy, as ``cfsam_keras.targets.encode`` gives them.

    Every ground truth takes its best default box, and every default box whose
    IoU reaches ``defaults.MATCH_IOU_THRESHOLD`` takes its best ground truth;
    offsets use ``defaults.VARIANCES``.

    Args:
        boxes: float ``[K, 4]`` normalised ``(xmin, ymin, xmax, ymax)``, K >= 1.
        labels: int ``[K]``, 1-based classes.
        anchors: float ``[A, 4]`` default boxes, ``(cx, cy, w, h)``.

    Returns:
        float32 ``[A, 5]``: four offsets and the class (0: background).
    """
    from cfsam_keras.defaults import MATCH_IOU_THRESHOLD
    from cfsam_keras.defaults import VARIANCES

    # IoU in float32 as encode computes it, so that ties break the same way.
    boxes, anchors = np.asarray(boxes, np.float32), np.asarray(anchors, np.float32)
    half = anchors[:, 2:] / np.float32(2)
    corners = np.concatenate([anchors[:, :2] - half, anchors[:, :2] + half], 1)
    lo = np.maximum(boxes[:, None, :2], corners[None, :, :2])
    hi = np.minimum(boxes[:, None, 2:], corners[None, :, 2:])
    inter = np.prod(np.maximum(hi - lo, 0), axis=-1)
    box_area = np.prod(boxes[:, 2:] - boxes[:, :2], 1)
    anchor_area = np.prod(corners[:, 2:] - corners[:, :2], 1)
    iou = inter / (anchor_area[None] + box_area[:, None] - inter)  # [K, A]
    best_gt, best_iou = iou.argmax(0), iou.max(0)
    best_gt[iou.argmax(1)] = np.arange(len(boxes))
    best_iou[iou.argmax(1)] = 1.0
    positive = best_iou >= MATCH_IOU_THRESHOLD
    matched, a = boxes[best_gt[positive]], anchors[positive]
    centre, size = (matched[:, :2] + matched[:, 2:]) / 2, matched[:, 2:] - matched[:, :2]
    targets = np.zeros((len(anchors), 5), np.float32)
    targets[positive, :2] = (centre - a[:, :2]) / (VARIANCES[0] * a[:, 2:])
    targets[positive, 2:4] = np.log(size / a[:, 2:]) / VARIANCES[1]
    targets[positive, 4] = np.asarray(labels)[best_gt[positive]]
    return targets


def synthetic_batch(anchors, batch_size, num_classes, input_size, seed=0):
    """Images, ground truth and SSD targets of a synthetic batch, in NumPy only.

    Each image gets `BOXES_PER_IMAGE` random boxes of `BOX_SIDES` and random
    classes, encoded by `numpy_targets`.

    Args:
        anchors: float ``[A, 4]`` default boxes, ``(cx, cy, w, h)``.
        batch_size, num_classes, input_size: the batch, object classes, side.
        seed: NumPy seed.

    Returns:
        dict: ``images`` float32 ``[B, S, S, 3]`` in [0, 255], ``targets``
        float32 ``[B, A, 5]``, ``boxes`` (per image, float32 ``[K, 4]``
        normalised xyxy) and ``labels`` (per image, int64 ``[K]``, 1-based).
    """
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (batch_size, input_size, input_size, 3)).astype(np.float32)
    boxes, labels = [], []
    for _ in range(batch_size):
        k = int(rng.integers(BOXES_PER_IMAGE[0], BOXES_PER_IMAGE[1] + 1))
        sides = rng.uniform(*BOX_SIDES, (k, 2))
        centres = rng.uniform(sides / 2, 1 - sides / 2)
        boxes.append(np.concatenate([centres - sides / 2, centres + sides / 2], 1).astype("f4"))
        labels.append(rng.integers(1, num_classes + 1, k).astype(np.int64))
    targets = np.stack([numpy_targets(b, c, anchors) for b, c in zip(boxes, labels)])
    return {"images": images, "targets": targets, "boxes": boxes, "labels": labels}


def forward_flops(model, input_size):
    """FLOPs of one batch-1 forward pass: TensorFlow's profiler, or XLA's count under JAX.

    Returns:
        ``(flops, counter)``: an int and the name of what counted it.
    """
    import keras

    if keras.backend.backend() == "tensorflow":
        from cfsam_keras.flops import count_flops

        return int(count_flops(model, [(1, input_size, input_size, 3)])), "tensorflow profiler"
    import jax

    def forward(trainable, non_trainable, x):
        return model.stateless_call(trainable, non_trainable, x, training=False)[0]

    values = [
        [v.value for v in vs] for vs in (model.trainable_variables, model.non_trainable_variables)
    ]
    x = jax.ShapeDtypeStruct((1, input_size, input_size, 3), "float32")
    analysis = jax.jit(forward).lower(*values, x).cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0]
    return int(analysis["flops"]), "XLA cost analysis"


def seed_everything(seed):
    """``keras.utils.set_random_seed``, which under JAX seeds what it needs without
    importing TensorFlow (Keras' own function imports it to seed it too)."""
    import random

    import keras

    if keras.backend.backend() == "tensorflow":
        keras.utils.set_random_seed(seed)
        return
    random.seed(seed)
    np.random.seed(seed)


class KerasTimers:
    """A built, compiled model with its three timed calls on one synthetic batch."""

    def __init__(self, variant, batch_size, precision, xla, seed=0):
        import keras

        from cfsam_keras.losses import MultiBoxLoss
        from cfsam_keras.models import model_default_boxes

        seed_everything(seed)
        keras.config.set_dtype_policy(POLICIES[precision])
        try:
            self.model = model = variant.build()
        finally:
            keras.config.set_dtype_policy("float32")
        self.batch = synthetic_batch(
            model_default_boxes(model), batch_size, variant.num_classes, variant.input_size, seed
        )
        optimizer = keras.optimizers.SGD(LEARNING_RATE, momentum=MOMENTUM)
        if precision == "float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        model.compile(optimizer=optimizer, loss=MultiBoxLoss(variant.num_classes), jit_compile=xla)
        self.image = self.batch["images"][:1]

    def train(self):
        self.model.train_on_batch(self.batch["images"], self.batch["targets"])

    def forward_b1(self):
        self.model.predict_on_batch(self.image)

    def forward_bn(self):
        self.model.predict_on_batch(self.batch["images"])


class TorchvisionTimers:
    """torchvision's ``ssd300_vgg16`` (random weights) on the same batch and precision.

    Its training step takes the raw boxes and does its own matching; its forward
    is the backbone and heads on the normalised batch (no resize, no NMS), the
    part that matches our model's outputs.
    """

    def __init__(self, batch, num_classes, precision, seed=0):
        import torch
        import torchvision

        torch.manual_seed(seed)
        self.torch = torch
        self.model = torchvision.models.detection.ssd300_vgg16(
            weights=None, weights_backbone=None, num_classes=num_classes + 1
        )
        size = batch["images"].shape[1]
        self.images = torch.from_numpy(batch["images"]).permute(0, 3, 1, 2).contiguous() / 255.0
        self.targets = [
            {"boxes": torch.from_numpy(b * size), "labels": torch.from_numpy(lab)}
            for b, lab in zip(batch["boxes"], batch["labels"])
        ]
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM
        )
        self.scaler = torch.amp.GradScaler("cpu", enabled=precision == "float16")
        self.dtype = getattr(torch, precision)
        self.mixed = precision != "float32"

    def _autocast(self):
        return self.torch.autocast("cpu", dtype=self.dtype, enabled=self.mixed)

    def train(self):
        self.model.train()
        with self._autocast():
            losses = self.model(list(self.images), self.targets)
            loss = sum(losses.values())
        self.optimizer.zero_grad()
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def _forward(self, images):
        self.model.eval()
        with self.torch.no_grad(), self._autocast():
            self.model.head(list(self.model.backbone(images).values()))

    def forward_b1(self):
        self._forward(self.images[:1])

    def forward_bn(self):
        self._forward(self.images)


def _comparable(variant):
    """Whether a model is SSD300-VGG16 at 300 x 300, the peer's model."""
    return variant.model_kwargs["backbone"] == "vgg16" and variant.input_size == 300


def torchvision_available():
    """Whether ``torch`` and ``torchvision`` are importable (without importing them)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("torch", "torchvision"))


def train_step_benchmark(args, log):
    """Builds every model and times it; see the module docstring. Returns the record."""
    if args.torch and torchvision_available():
        # torchvision imported after TensorFlow segfaults (seen with torch 2.14.1,
        # torchvision 0.29.1, tensorflow 2.21.0); imported first, both run.
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    import keras

    started, load_before = time.perf_counter(), harness.load_average()
    variants = model_variants(args.models)
    xla = args.xla == "on" or (args.xla == "auto" and args.backend == "jax")
    timers, rows = {}, {}
    for variant in variants:
        t = time.perf_counter()
        timer = timers[variant.name] = KerasTimers(variant, args.batch_size, args.precision, xla)
        flops, counter = forward_flops(timer.model, variant.input_size)
        targets = timer.batch["targets"]
        rows[variant.name] = {
            "model": dict(variant.model_kwargs, num_classes=variant.num_classes),
            "attention": variant.attention,
            "attention_kwargs": variant.attention_kwargs,
            "params": int(timer.model.count_params()),
            "flops": flops,
            "flops_counter": counter,
            "positives_per_image": float((targets[..., 4] > 0).sum(1).mean()),
            "boxes_per_image": float(np.mean([len(b) for b in timer.batch["boxes"]])),
            "comparable": _comparable(variant),
        }
        log(f"built {variant.name}: {flops / 1e9:.3g} GFLOPs ({time.perf_counter() - t:.0f} s)")
    peer = None
    vgg = [v for v in variants if _comparable(v)]
    if args.torch and torchvision_available() and vgg:
        peer = TorchvisionTimers(timers[vgg[0].name].batch, vgg[0].num_classes, args.precision)
        rows[TORCHVISION] = {"model": {"num_classes": vgg[0].num_classes}}
    peak, peak_flops = harness.matmul_peak(args.peak_size)
    measures = {"train": args.rounds, "forward_b1": args.forward_rounds, "forward_bn": args.rounds}
    everyone = dict(timers, **({TORCHVISION: peer} if peer else {}))
    peaks = {}
    for measure, runs in measures.items():
        t = time.perf_counter()
        calls = {name: getattr(timer, measure) for name, timer in everyone.items()}
        calls[harness.PEAK] = peak
        timed = harness.interleaved_rounds(calls, runs=runs, warmup=args.warmup)
        peaks[measure] = peak_flops / timed.pop(harness.PEAK)["median_s"] / 1e9
        for name, result in timed.items():
            rows[name][f"{measure}_s"] = result["median_s"]
            rows[name][f"{measure}_rounds_s"] = result["times_s"]
        log(
            f"timed {measure} ({time.perf_counter() - t:.0f} s); "
            f"matmul {peaks[measure]:.0f} GFLOP/s"
        )
    del timers, everyone, peer
    keras.backend.clear_session()
    for row in rows.values():
        _rates(row, args.batch_size, peaks, rows.get(TORCHVISION))
    return {
        "rows": rows,
        "peak_gflops": peaks,
        "settings": {
            "backend": args.backend,
            "precision": args.precision,
            "xla": xla,
            "batch_size": args.batch_size,
            "rounds": args.rounds,
            "forward_rounds": args.forward_rounds,
            "warmup": args.warmup,
            "peak_matmul_size": args.peak_size,
            "train_flops_per_forward": TRAIN_FLOPS_PER_FORWARD,
            "optimizer": f"SGD lr {LEARNING_RATE} momentum {MOMENTUM}",
        },
        "machine": harness.machine(load_before),
        "seconds": time.perf_counter() - started,
    }


def _rates(row, batch_size, peaks, peer):
    """Fills a row's images/s, achieved GFLOP/s, share of the peak and ratio to the peer."""
    row["train_images_per_s"] = batch_size / row["train_s"]
    row["forward_b1_ms"] = 1000 * row["forward_b1_s"]
    row["forward_bn_images_per_s"] = batch_size / row["forward_bn_s"]
    if "flops" in row:
        row["train_gflops_per_s"] = (
            TRAIN_FLOPS_PER_FORWARD * row["flops"] * row["train_images_per_s"] / 1e9
        )
        row["train_peak_fraction"] = row["train_gflops_per_s"] / peaks["train"]
        row["forward_bn_gflops_per_s"] = row["flops"] * row["forward_bn_images_per_s"] / 1e9
        row["forward_bn_peak_fraction"] = row["forward_bn_gflops_per_s"] / peaks["forward_bn"]
    if peer is not None and (row.get("comparable") or row is peer):
        row["train_vs_torchvision"] = row["train_images_per_s"] / (batch_size / peer["train_s"])
        row["forward_b1_vs_torchvision"] = peer["forward_b1_s"] / row["forward_b1_s"]


def _cell(row, key, fmt, share=None):
    if row.get(key) is None:
        return ""
    text = format(row[key], fmt)
    return f"{text} ({row[share]:.0%})" if share and row.get(share) is not None else text


def train_step_table(record):
    """The record as a Markdown table, then a note on how it was measured."""
    s, m = record["settings"], record["machine"]
    b = s["batch_size"]
    lines = [
        f"| model | GFLOPs (b1) | train step b{b} (s) | train img/s | vs torchvision "
        f"| train GFLOP/s (of peak) | forward b1 (ms) | b1 vs torchvision "
        f"| forward b{b} img/s | forward GFLOP/s (of peak) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in record["rows"].items():
        gflops = "" if r.get("flops") is None else f"{r['flops'] / 1e9:.3g}"
        lines.append(
            f"| {name} | {gflops} | {r['train_s']:.3f} | {_cell(r, 'train_images_per_s', '.2f')} "
            f"| {_cell(r, 'train_vs_torchvision', '.2f')} "
            f"| {_cell(r, 'train_gflops_per_s', '.1f', 'train_peak_fraction')} "
            f"| {_cell(r, 'forward_b1_ms', '.1f')} "
            f"| {_cell(r, 'forward_b1_vs_torchvision', '.2f')} "
            f"| {_cell(r, 'forward_bn_images_per_s', '.2f')} "
            f"| {_cell(r, 'forward_bn_gflops_per_s', '.1f', 'forward_bn_peak_fraction')} |"
        )
    load = harness.load_text(m)
    versions = ", ".join(f"{k} {m[k]}" for k in harness.LIBRARIES if k in m)
    counters = sorted({r["flops_counter"] for r in record["rows"].values() if "flops_counter" in r})
    peaks = ", ".join(f"{k} {v:.0f}" for k, v in record["peak_gflops"].items())
    note = (
        f"Keras backend {s['backend']}, {s['precision']}, XLA {'on' if s['xla'] else 'off'}, "
        f"batch {b}, {s['optimizer']}; medians of {s['rounds']} training-step and "
        f"batch-{b} forward rounds and {s['forward_rounds']} batch-1 rounds after "
        f"{s['warmup']} warm-up round(s), every model, the peer and a {s['peak_matmul_size']} "
        f"x {s['peak_matmul_size']} float32 matmul taking turns. {m['cores']} CPU cores "
        f"({m['cpu']}), 1-minute load average {load} (before/after); {versions}. Random "
        f"weights; forward FLOPs counted by {' and '.join(counters)}, a training step "
        f"counted as {s['train_flops_per_forward']} forwards; the share is of the matmul's "
        f"GFLOP/s in the same rounds ({peaks}). 'vs torchvision' is our images/s over "
        f"torchvision's (above 1: we are faster), for the SSD300-VGG16 rows only"
        + ("." if TORCHVISION in record["rows"] else "; torchvision was not importable here.")
    )
    return "\n".join(lines) + "\n\n" + note + "\n\nCommand: `" + record["command"] + "`\n"


def results_stem(settings):
    """The file name (no extension) of a run's results."""
    xla = "_xla" if settings["xla"] and settings["backend"] == "tensorflow" else ""
    return f"train_step_{settings['backend']}_{settings['precision']}{xla}"


def parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join("docs", "results"), help="results folder")
    p.add_argument("--quick", action="store_true", help="a tiny model and one round (a smoke run)")
    p.add_argument(
        "--backend", choices=BACKENDS, default=os.environ.get("KERAS_BACKEND", "tensorflow")
    )
    p.add_argument(
        "--models",
        help="comma-separated rows of benchmarks/cost.py (default: "
        f"{', '.join(MODELS[False])}; --quick: {', '.join(MODELS[True])})",
    )
    p.add_argument("--precision", choices=tuple(POLICIES), default="float32")
    p.add_argument(
        "--xla",
        choices=("auto", "on", "off"),
        default="auto",
        help="jit_compile (auto: off under TensorFlow, on under JAX)",
    )
    for key, counts in COUNTS[False].items():
        p.add_argument("--" + key.replace("_", "-"), type=int, help=f"default {counts}")
    p.add_argument("--no-torch", dest="torch", action="store_false", help="skip torchvision")
    return p


def parse(argv=None):
    """The flags, checked, with the counts of a full run or ``--quick`` filled in."""
    p = parser()
    args = p.parse_args(argv)
    harness.fill_counts(p, args, COUNTS[args.quick])
    args.models = (
        [n.strip() for n in args.models.split(",") if n.strip()]
        if args.models
        else MODELS[args.quick]
    )
    try:
        model_variants(args.models)
    except ValueError as e:
        p.error(str(e))
    if args.backend == "jax" and args.xla == "off":
        p.error("--xla off: the JAX backend compiles every step with XLA (use auto or on)")
    loaded = sys.modules.get("keras")
    if loaded is not None and loaded.backend.backend() != args.backend:
        p.error(
            f"--backend {args.backend}: keras is already loaded with {loaded.backend.backend()}"
        )
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    os.environ["KERAS_BACKEND"] = args.backend
    record = train_step_benchmark(args, lambda line: print(line, file=sys.stderr, flush=True))
    record["command"] = "python benchmarks/train_step.py " + shlex.join(argv)
    harness.write_results(
        args.out, results_stem(record["settings"]), record, train_step_table(record)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
