"""What each attention module costs: parameters, FLOPs, CPU time, training step time.

Every variant is built once and kept alive, then timed in interleaved rounds
(round r times variant 1, 2, ..., n, then round r + 1 starts), so a change in
the machine's load during the run hits all variants alike and the ratios to
the baseline stay meaningful on a shared machine. Each number is the median of
its rounds after warm-up. FLOPs are counted by TensorFlow's graph profiler
(``cfsam_keras.flops.count_flops``); ``conv2d_flops`` and
``cfsam_matmul_flops`` give the analytic counts used to cross-check it.
"""

import dataclasses
import json
import os
import platform
import statistics
import time

import numpy as np

#: The small MobileNetV2 model (alpha 0.35, 192 x 192, slim extra blocks, COCO box
#: sizes, 5 classes) with a 64-wide CFSAM: ``recipes/demo.py --backbone mobilenet_v2``.
MOBILENET_MODEL = dict(
    backbone="mobilenet_v2",
    input_size=192,
    num_classes=5,
    anchor_preset="coco",
    backbone_kwargs={"alpha": 0.35, "extra_channels": (128, 128, 64, 64)},
)
MOBILENET_CFSAM_KWARGS = {"embed_dim": 64, "num_heads": 4}

#: The model of ``recipes/demo.py`` (small VGG at 192 x 192, COCO box sizes, 5
#: classes, 64-wide CFSAM with keys / values pooled to 4 x 4); tests/benchmarks
#: checks these stay equal to the demo's settings.
DEMO_MODEL = dict(
    backbone="small_vgg",
    input_size=192,
    num_classes=5,
    anchor_preset="coco",
    backbone_kwargs={"widths": (24, 48, 96, 192)},
)
DEMO_CFSAM_KWARGS = {"embed_dim": 64, "num_heads": 4, "kv_pool_size": 4}
#: The same CFSAM with full attention (keys and values not pooled).
DEMO_FULL_CFSAM_KWARGS = {k: v for k, v in DEMO_CFSAM_KWARGS.items() if k != "kv_pool_size"}

#: The efficient CFSAM of the cost table: pooled keys / values (see docs/results.md
#: for why 5).
EFFICIENT_CFSAM_KWARGS = {"kv_pool_size": 5, "local_channels": 64}


@dataclasses.dataclass(frozen=True)
class Variant:
    """One model of the cost table.

    Attributes:
        name: row name.
        group: the baseline a row's ratios refer to is the row of the same
            group whose ``attention`` is ``"none"``.
        attention: ``attention`` argument of ``SSD300``.
        attention_kwargs: its ``attention_kwargs``.
        model_kwargs: the other ``SSD300`` arguments (``num_classes``,
            ``backbone``, ``input_size``, ...).
    """

    name: str
    group: str
    attention: str
    attention_kwargs: dict
    model_kwargs: dict

    def build(self):
        from cfsam_keras.models import SSD300

        kwargs = dict(self.model_kwargs)
        num_classes = kwargs.pop("num_classes")
        return SSD300(
            num_classes,
            attention=self.attention,
            attention_kwargs=self.attention_kwargs or None,
            **kwargs,
        )

    @property
    def input_size(self):
        return int(self.model_kwargs.get("input_size", 300))

    @property
    def num_classes(self):
        return int(self.model_kwargs["num_classes"])


def _vgg(name, attention, attention_kwargs=None):
    return Variant(name, "SSD300-VGG16", attention, dict(attention_kwargs or {}),
                   {"num_classes": 20, "backbone": "vgg16"})


def _mobilenet(name, attention, attention_kwargs=None):
    return Variant(name, "MobileNetV2 small", attention, dict(attention_kwargs or {}),
                   dict(MOBILENET_MODEL))


def _demo(name, attention, attention_kwargs=None):
    return Variant(name, "small VGG demo", attention, dict(attention_kwargs or {}),
                   dict(DEMO_MODEL))


#: The full table: SSD300-VGG16 (VOC, 21 outputs) with every module, the small
#: MobileNetV2 model and the demo model.
COST_VARIANTS = (
    _vgg("vgg16 none", "none"),
    _vgg("vgg16 cfsam", "cfsam"),
    _vgg("vgg16 cfsam kv5 local64", "cfsam", EFFICIENT_CFSAM_KWARGS),
    _vgg("vgg16 se", "se"),
    _vgg("vgg16 cbam", "cbam"),
    _vgg("vgg16 eca", "eca"),
    _mobilenet("mobilenet_v2 none", "none"),
    _mobilenet("mobilenet_v2 cfsam", "cfsam", MOBILENET_CFSAM_KWARGS),
    _demo("demo small_vgg none", "none"),
    _demo("demo small_vgg cfsam", "cfsam", DEMO_FULL_CFSAM_KWARGS),
    _demo("demo small_vgg cfsam kv4", "cfsam", DEMO_CFSAM_KWARGS),
)

#: ``--quick``: a tiny MobileNetV2 model, with and without CFSAM, at 96 x 96.
QUICK_VARIANTS = tuple(
    Variant(name, "tiny MobileNetV2", attention, kwargs, dict(
        backbone="mobilenet_v2", input_size=96, num_classes=3, anchor_preset="coco",
        backbone_kwargs={"alpha": 0.35, "extra_channels": (32, 32, 32, 32)}))
    for name, attention, kwargs in (
        ("tiny none", "none", {}),
        ("tiny cfsam", "cfsam", {"embed_dim": 32, "num_heads": 4}),
    )
)


def cost_variants(quick=False, names=None):
    """The variants of the cost table.

    Args:
        quick: the two tiny ``QUICK_VARIANTS`` instead of ``COST_VARIANTS``.
        names: optional list of row names to keep (in table order).

    Returns:
        list of `Variant`.
    """
    variants = list(QUICK_VARIANTS if quick else COST_VARIANTS)
    if names:
        known = [v.name for v in variants]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"Unknown cost variants {unknown}; known: {known}")
        variants = [v for v in variants if v.name in names]
    return variants


def conv2d_flops(output_height, output_width, kernel_size, in_channels, out_channels, bias=True):
    """Analytic FLOPs of a Conv2D, the profiler's convention (multiply-add = 2).

    Example:
    >>> conv2d_flops(38, 38, 3, 512, 512)  # SSD300's conv4_3
    6814386176
    """
    flops = 2 * output_height * output_width * kernel_size * kernel_size * in_channels * out_channels
    if bias:
        flops += output_height * output_width * out_channels
    return int(flops)


def cfsam_matmul_flops(feature_shapes, embed_dim=256, mlp_ratio=4.0, num_layers=1,
                       local_channels=None, kv_pool_size=None, fusion="residual"):
    """Analytic FLOPs of CFSAM's convolutions and matrix products at batch 1.

    Counts every multiply-add as 2 and nothing else (no bias, norm, softmax,
    GELU or residual additions), so it is a lower bound of the counted FLOPs;
    the difference is the element-wise work.

    Args:
        feature_shapes: list of ``(H_i, W_i, C_i)``.
        embed_dim, mlp_ratio, num_layers, local_channels, kv_pool_size, fusion:
            as in ``cfsam_keras.layers.CFSAM``.

    Returns:
        dict: ``local``, ``qkv_out`` (query / key / value / output
        projections), ``attention`` (scores and weighted sum), ``mlp``,
        ``fusion`` and ``total``, in FLOPs.

    Example:
    >>> cfsam_matmul_flops([(38, 38, 512), (19, 19, 1024)])["total"] > 0
    True
    """
    c = embed_dim
    local_c = local_channels or c
    tokens = sum(h * w for h, w, _ in feature_shapes)
    if kv_pool_size is None:
        kv_tokens = tokens
    else:
        kv_tokens = sum(min(h, kv_pool_size) * min(w, kv_pool_size) for h, w, _ in feature_shapes)
    local = sum(2 * h * w * (9 * ci * local_c + local_c * c) for h, w, ci in feature_shapes)
    qkv_out = num_layers * 2 * c * c * (2 * tokens + 2 * kv_tokens)
    attention = num_layers * 2 * 2 * tokens * kv_tokens * c
    mlp = num_layers * 2 * 2 * tokens * c * int(mlp_ratio * c)
    if fusion == "concat":
        fuse = sum(2 * h * w * (c * ci + 2 * ci * ci) for h, w, ci in feature_shapes)
    else:
        fuse = sum(2 * h * w * c * ci for h, w, ci in feature_shapes)
    parts = dict(local=local, qkv_out=qkv_out, attention=attention, mlp=mlp, fusion=fuse)
    parts["total"] = sum(parts.values())
    return {k: int(v) for k, v in parts.items()}


def median_seconds(fn, runs=5, warmup=1):
    """Median wall time of ``fn()`` over ``runs`` calls after ``warmup`` calls."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0; received {runs} and {warmup}.")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_matmul_gflops(size=2048, runs=5, warmup=2):
    """The machine's measured float32 peak: GFLOP/s of a ``size x size`` matmul (median).

    Args:
        size: side of the two square float32 matrices.
        runs, warmup: timed and untimed products.

    Returns:
        float, GFLOP/s (``2 * size**3`` FLOPs per product).
    """
    from cfsam_keras.flops import matmul_product

    product, flops = matmul_product(size)
    return flops / median_seconds(product, runs=runs, warmup=warmup) / 1e9


class _Timers:
    """A built model with its forward and training-step callables."""

    def __init__(self, variant, train_batch, seed=0):
        import keras
        import tensorflow as tf

        from cfsam_keras.losses import MultiBoxLoss

        keras.utils.set_random_seed(seed)
        self.model = variant.build()
        size = variant.input_size
        rng = np.random.default_rng(seed)
        self.image = rng.uniform(0, 255, (1, size, size, 3)).astype("float32")
        self.batch = rng.uniform(0, 255, (train_batch, size, size, 3)).astype("float32")
        anchors = self.model.output_shape[1]
        # Targets with some positives, so the loss's mining and box terms run.
        targets = np.zeros((train_batch, anchors, 5), "float32")
        targets[:, ::50, 4] = rng.integers(1, variant.num_classes + 1, targets[:, ::50, 4].shape)
        targets[:, ::50, :4] = rng.normal(0, 1, targets[:, ::50, :4].shape)
        self.targets = targets
        model = self.model
        forward = tf.function(lambda x: model(x, training=False), autograph=False)
        self.forward = lambda x: forward(x).numpy()
        model.compile(
            optimizer=keras.optimizers.SGD(1e-6, momentum=0.9),
            loss=MultiBoxLoss(variant.num_classes),
        )

    def latency(self):
        self.forward(self.image)

    def throughput(self):
        self.forward(self.batch)

    def train_step(self):
        self.model.train_on_batch(self.batch, self.targets)


def _interleaved_medians(timers, measure, runs, warmup):
    for timer in timers:
        for _ in range(warmup):
            getattr(timer, measure)()
    times = [[] for _ in timers]
    for _ in range(runs):
        for i, timer in enumerate(timers):
            start = time.perf_counter()
            getattr(timer, measure)()
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times], times


MEASUREMENTS = ("latency", "throughput", "train_step")


def cost_benchmark(variants, runs=5, train_runs=2, warmup=1, batch_size=8,
                   peak_size=2048, log=None, measurements=MEASUREMENTS, batch_runs=None):
    """Measures every variant in one run.

    Args:
        variants: list of `Variant` (``cost_variants()``).
        runs: timed rounds of the batch-1 latency and batch-``batch_size``
            throughput.
        train_runs: timed rounds of the training step (forward + backward +
            SGD update, ``model.train_on_batch`` with ``MultiBoxLoss``).
        warmup: untimed calls of each measurement first (tracing happens here).
        batch_size: batch of the throughput and training-step measurements.
        peak_size: side of the square matmul measuring the machine's peak.
        log: optional ``f(str)`` for progress lines.
        measurements: which timings to take, a subset of ``MEASUREMENTS``;
            the others are ``None`` in the rows (on a slow or shared machine
            the batch-8 ones of SSD300-VGG16 take minutes per call).
        batch_runs: timed rounds of the throughput (default ``runs``).

    Returns:
        dict: ``rows`` (one dict per variant: name, group, attention,
        attention_kwargs, params, flops (batch 1), latency_ms (batch 1),
        throughput_ips, train_step_ms, gflops_per_s (batch ``batch_size``),
        peak_fraction, and ``*_ratio`` to the group's baseline), ``peak_gflops``,
        ``cross_check`` (the profiler against the analytic count on one
        Conv2D and on the CFSAM module of the first VGG16 CFSAM row, if any),
        and ``settings`` / ``machine``.
    """
    import tensorflow as tf

    log = log or (lambda line: None)
    started = time.perf_counter()
    # Every variant traces its own forward function once per input shape, which
    # TensorFlow's retracing warning would report as excessive.
    logger_level = tf.get_logger().level
    tf.get_logger().setLevel("ERROR")
    try:
        return _cost_benchmark(variants, runs, train_runs, warmup, batch_size, peak_size, log,
                               started, tuple(measurements), batch_runs or runs)
    finally:
        tf.get_logger().setLevel(logger_level)


def _cost_benchmark(variants, runs, train_runs, warmup, batch_size, peak_size, log, started,
                    measurements, batch_runs):
    unknown = set(measurements) - set(MEASUREMENTS)
    if unknown:
        raise ValueError(f"Unknown measurements {sorted(unknown)}; expected a subset of {MEASUREMENTS}.")
    import keras

    from cfsam_keras.flops import count_flops

    timers, rows = [], []
    for variant in variants:
        t = time.perf_counter()
        timer = _Timers(variant, batch_size)
        size = variant.input_size
        rows.append({
            "name": variant.name,
            "group": variant.group,
            "attention": variant.attention,
            "attention_kwargs": variant.attention_kwargs,
            "model": {k: v for k, v in variant.model_kwargs.items()},
            "params": int(timer.model.count_params()),
            "flops": int(count_flops(timer.model, [(1, size, size, 3)])),
        })
        timers.append(timer)
        log(f"built {variant.name}: {rows[-1]['params']:,} parameters, "
            f"{rows[-1]['flops'] / 1e9:.2f} GFLOPs ({time.perf_counter() - t:.0f} s)")
    peak = peak_matmul_gflops(peak_size)
    log(f"peak float32 matmul: {peak:.1f} GFLOP/s")
    for measure, key, n in (("latency", "latency_s", runs), ("throughput", "batch_s", batch_runs),
                            ("train_step", "train_s", train_runs)):
        if measure not in measurements:
            for row in rows:
                row[key] = None
            continue
        t = time.perf_counter()
        medians, rounds = _interleaved_medians(timers, measure, n, warmup)
        for row, seconds, times in zip(rows, medians, rounds):
            row[key] = seconds
            row[f"{measure}_rounds_ms"] = [1000 * t for t in times]
        log(f"timed {measure} ({time.perf_counter() - t:.0f} s)")
    for row in rows:
        latency_s, batch_s, train_s = row.pop("latency_s"), row.pop("batch_s"), row.pop("train_s")
        row["latency_ms"] = None if latency_s is None else 1000 * latency_s
        row["throughput_ips"] = None if batch_s is None else batch_size / batch_s
        row["train_step_ms"] = None if train_s is None else 1000 * train_s
        row["gflops_per_s"] = None if batch_s is None else batch_size * row["flops"] / batch_s / 1e9
        row["gflops_per_s_b1"] = None if latency_s is None else row["flops"] / latency_s / 1e9
        row["peak_fraction_b1"] = None if latency_s is None else row["gflops_per_s_b1"] / peak
        row["peak_fraction"] = None if batch_s is None else row["gflops_per_s"] / peak
    baselines = {r["group"]: r for r in rows if r["attention"] == "none"}
    for row in rows:
        base = baselines.get(row["group"])
        for key in ("params", "flops", "latency_ms", "throughput_ips", "train_step_ms"):
            ok = base is not None and row[key] is not None and base[key]
            row[f"{key}_ratio"] = row[key] / base[key] if ok else None
    cross_check = _cross_check(variants, timers)
    del timers
    keras.backend.clear_session()
    return {
        "rows": rows,
        "peak_gflops": peak,
        "cross_check": cross_check,
        "settings": {"runs": runs, "batch_runs": batch_runs, "train_runs": train_runs,
                     "warmup": warmup, "measurements": list(measurements),
                     "batch_size": batch_size, "peak_matmul_size": peak_size},
        "machine": machine(),
        "seconds": time.perf_counter() - started,
    }


def interleaved_latency(variants, runs=20, warmup=2, seed=0):
    """Batch-1 forward latency of several models, timed in interleaved rounds.

    Args:
        variants: list of `Variant`; the first whose ``attention`` is
            ``"none"`` is the baseline of the ratios.
        runs, warmup: timed and untimed rounds.
        seed: seed of the random weights and image.

    Returns:
        dict: variant name -> ``{"params", "latency_ms", "latency_ratio"}``.
    """
    import keras

    class _Forward(_Timers):
        def __init__(self, variant):  # no training step needed
            keras.utils.set_random_seed(seed)
            self.model = variant.build()
            size = variant.input_size
            self.image = np.random.default_rng(seed).uniform(0, 255, (1, size, size, 3)).astype("float32")
            import tensorflow as tf

            model = self.model
            forward = tf.function(lambda x: model(x, training=False), autograph=False)
            self.forward = lambda x: forward(x).numpy()

    timers = [_Forward(v) for v in variants]
    medians, _ = _interleaved_medians(timers, "latency", runs, warmup)
    base = next((m for v, m in zip(variants, medians) if v.attention == "none"), None)
    out = {
        v.name: {"params": int(t.model.count_params()), "latency_ms": 1000 * m,
                 "latency_ratio": m / base if base else None}
        for v, t, m in zip(variants, timers, medians)
    }
    del timers
    keras.backend.clear_session()
    return out


def _cross_check(variants, timers):
    """The profiler's count against the analytic one, on a Conv2D and on CFSAM."""
    import keras

    from cfsam_keras.flops import count_flops

    conv = keras.layers.Conv2D(512, 3, padding="same")
    checks = [{
        "what": "Conv2D 3x3, 38x38x512 -> 512 (SSD300 conv4_3)",
        "counted": int(count_flops(conv, [(1, 38, 38, 512)])),
        "analytic": conv2d_flops(38, 38, 3, 512, 512),
    }]
    for variant, timer in zip(variants, timers):
        if variant.attention != "cfsam":
            continue
        layer = next(l for l in timer.model.layers if type(l).__name__ == "CFSAM")
        shapes = [tuple(int(d) for d in t.shape[1:]) for t in layer.input]
        counted = int(count_flops(lambda *xs: layer(list(xs), training=False),
                                  [(1,) + s for s in shapes]))
        analytic = cfsam_matmul_flops(shapes, **{
            k: v for k, v in layer.get_config().items()
            if k in ("embed_dim", "mlp_ratio", "num_layers", "local_channels",
                     "kv_pool_size", "fusion")
        })
        checks.append({
            "what": f"CFSAM module of '{variant.name}' (analytic: matmuls and convs only)",
            "counted": counted,
            "analytic": analytic["total"],
            "analytic_parts": analytic,
            "feature_shapes": [list(s) for s in shapes],
        })
    return checks


def machine():
    """CPU model, cores, 1-minute load average and versions of this machine."""
    import os

    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "cores": os.cpu_count(), "load_average_1min": load,
            "tensorflow": tf.__version__, "platform": platform.platform()}


def _gflops(value):
    return f"{value / 1e9:.2f}"


def _ratio(value):
    return "" if value is None else f"x{value:.2f}"


def _achieved(row, key, fraction):
    if row.get(key) is None:
        return "not run"
    return f"{row[key]:.1f} ({100 * row[fraction]:.0f}%)"


def cost_table(results):
    """The cost results as a Markdown table (one row per variant).

    Args:
        results: the dict ``cost_benchmark`` returns.

    Returns:
        str.
    """
    lines = [
        "| model | params (M) | GFLOPs (b1) | FLOPs vs base | latency b1 (ms) | vs base "
        "| throughput b8 (img/s) | vs base | train step b8 (ms) | vs base "
        "| GFLOP/s b1 (of peak) | GFLOP/s b8 (of peak) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["rows"]:
        def num(key, fmt):
            return "not run" if r.get(key) is None else format(r[key], fmt)

        lines.append(
            f"| {r['name']} | {r['params'] / 1e6:.2f} | {_gflops(r['flops'])} "
            f"| {_ratio(r['flops_ratio'])} | {num('latency_ms', '.0f')} | {_ratio(r['latency_ms_ratio'])} "
            f"| {num('throughput_ips', '.2f')} | {_ratio(r['throughput_ips_ratio'])} "
            f"| {num('train_step_ms', '.0f')} | {_ratio(r['train_step_ms_ratio'])} "
            f"| {_achieved(r, 'gflops_per_s_b1', 'peak_fraction_b1')} "
            f"| {_achieved(r, 'gflops_per_s', 'peak_fraction')} |"
        )
    return "\n".join(lines)


def write_cost_results(results, out_dir):
    """Writes `cost.json` (the raw results) and `cost.md` (`cost_table`) into `out_dir`.

    Returns:
        The markdown table.
    """
    table = cost_table(results)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "cost.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(out_dir, "cost.md"), "w", encoding="utf-8") as f:
        f.write(table + "\n")
    return table
