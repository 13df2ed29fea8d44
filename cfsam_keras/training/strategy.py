"""Choosing a distribution strategy and a mixed-precision policy, and reproducible training.

Under the TensorFlow backend a strategy is a ``tf.distribute.Strategy``; under JAX
it is a `DataParallelStrategy`, ``keras.distribution.DataParallel`` behind the
two things the recipes use of a strategy (``scope()``, ``num_replicas_in_sync``).
"""

import contextlib
import json
import os

import keras
import tensorflow as tf

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
#: The strategies that also exist under the JAX backend (`DataParallelStrategy`).
JAX_STRATEGIES = ("auto", "one_device", "mirrored")


class DataParallelStrategy:
    """Data parallelism under the JAX backend, as the recipes use a ``tf.distribute`` strategy.

    Over more than one device it sets ``keras.distribution.DataParallel`` as Keras'
    global distribution (``fit`` shards each global batch across the devices and
    keeps the variables replicated); over one device it sets none. ``scope()``
    does nothing: the distribution is global, as ``fit`` needs it.

    Args:
        devices: the JAX devices (``jax.devices()`` or one of them).

    Attributes:
        num_replicas_in_sync: the number of devices.
        distribution: the ``DataParallel`` distribution, or None on one device.
    """

    def __init__(self, devices):
        self.devices = list(devices)
        self.num_replicas_in_sync = len(self.devices)
        self.distribution = None
        if len(self.devices) > 1:
            self.distribution = keras.distribution.DataParallel(devices=self.devices)
        keras.distribution.set_distribution(self.distribution)

    def scope(self):
        return contextlib.nullcontext()


def _jax_strategy(name):
    if name not in JAX_STRATEGIES:
        raise ValueError(
            f"strategy {name!r} is tf.distribute's and needs the TensorFlow backend; under "
            f"JAX use one of {', '.join(JAX_STRATEGIES)} (keras.distribution.DataParallel)."
        )
    import jax  # noqa: PLC0415 (only under the JAX backend)

    devices = jax.devices()
    return DataParallelStrategy(devices[:1] if name == "one_device" else devices)


def get_strategy(name="auto", tpu_address=None):
    """Returns the ``tf.distribute.Strategy`` named by ``name``.

    Under the JAX backend it returns a `DataParallelStrategy` instead, over every
    device for ``"auto"`` and ``"mirrored"`` (data parallel when there are
    several) and over the first for ``"one_device"``; ``"multi_worker"`` and
    ``"tpu"`` are refused.

    Args:
        name: one of ``"auto"`` (``MirroredStrategy`` when more than one GPU is
            visible, else TensorFlow's default strategy, ``tf.distribute.get_strategy()``
            outside any scope: one device, no distributed input), ``"one_device"``
            (first GPU if any, else the CPU), ``"mirrored"`` (all local GPUs, or
            all logical CPUs when there is no GPU), ``"multi_worker"``
            (``MultiWorkerMirroredStrategy``; the cluster comes from the
            ``TF_CONFIG`` environment variable) or ``"tpu"``
            (``TPUStrategy``; ``tpu_address`` or the TPU of the VM).
        tpu_address: address of the TPU for ``name="tpu"``; ``None`` for a
            TPU VM's local TPU.

    Returns:
        A ``tf.distribute.Strategy`` (a `DataParallelStrategy` under JAX).

    Example:

    >>> strategy = get_strategy("one_device")
    >>> strategy.num_replicas_in_sync
    1
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}.")
    if keras.backend.backend() == "jax":
        return _jax_strategy(name)
    if name == "multi_worker":
        # Before anything that initialises TensorFlow's runtime (even listing
        # logical devices): collective ops must be configured at start-up.
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "strategy 'multi_worker' needs the TF_CONFIG environment "
                "variable: this worker's cluster and task as JSON, e.g. "
                '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                '"task": {"type": "worker", "index": 0}}.'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        if len(gpus) <= 1:
            # Not OneDeviceStrategy: its distributed input and step made the demo's
            # CPU step 1.15x longer (docs/performance.md, "The strategy on one device").
            return tf.distribute.get_strategy()
        name = "mirrored"
    if name == "one_device":
        device = gpus[0].name if gpus else "/cpu:0"
        return tf.distribute.OneDeviceStrategy(device)
    if name == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy()
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(cpus)
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address or "")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def task_info():
    """Returns ``(task_type, task_index)`` of this process from ``TF_CONFIG``.

    ``("chief", 0)`` when there is no ``TF_CONFIG`` (a single process).
    """
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = config.get("task", {})
    cluster = config.get("cluster", {})
    task_type = task.get("type", "chief")
    task_index = int(task.get("index", 0))
    if task_type == "worker" and "chief" not in cluster and task_index == 0:
        # Without an explicit chief, worker 0 acts as the chief.
        return "chief", 0
    return task_type, task_index


def is_chief():
    """Whether this process writes checkpoints, logs and reports."""
    return task_info()[0] == "chief"


def _platform(strategy):
    """``"gpu"``, ``"tpu"`` or ``"cpu"``: the kind of device ``strategy`` trains on."""
    if isinstance(strategy, DataParallelStrategy):
        return strategy.devices[0].platform
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"


def mixed_precision_policy(strategy):
    """The mixed-precision policy that suits the devices of ``strategy``.

    ``"mixed_float16"`` on GPU, ``"mixed_bfloat16"`` on TPU and CPU.
    """
    return "mixed_float16" if _platform(strategy) == "gpu" else "mixed_bfloat16"


#: ``/proc/cpuinfo`` flags of CPU instructions that compute in bfloat16 (Intel and AMD).
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_computes_bfloat16(cpuinfo="/proc/cpuinfo"):
    """Whether the CPU has bfloat16 instructions (``BFLOAT16_CPU_FLAGS``).

    Without them a CPU has no bfloat16 arithmetic of its own, so mixed precision is
    not expected to pay there (not measured: the machine this is tested on has them).
    Reads the Linux ``cpuinfo`` file; ``False`` where it cannot be read.
    """
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            flags = {word for line in f if line.startswith("flags") for word in line.split()}
    except OSError:
        return False
    return any(flag in flags for flag in BFLOAT16_CPU_FLAGS)


def set_mixed_precision(enabled, strategy):
    """Sets Keras' global dtype policy; call it before building the model.

    Args:
        enabled: whether to train in mixed precision; ``None`` for where the devices
            compute in 16 bits natively: on GPU and TPU, and on a CPU with bfloat16
            instructions (`cpu_computes_bfloat16`).
        strategy: the strategy the model is trained under.

    Returns:
        The name of the policy set (``"float32"`` when not enabled).
    """
    if enabled is None:
        enabled = _platform(strategy) != "cpu" or cpu_computes_bfloat16()
    policy = mixed_precision_policy(strategy) if enabled else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy


def make_deterministic():
    """Makes TensorFlow training give the same weights on every run of the same seed.

    Even with every seed fixed (``keras.utils.set_random_seed``) and a deterministic
    input pipeline, two runs on a CPU part in the last digits of the weights within a few
    steps and then drift apart: independent ops of the step graph run concurrently on
    TensorFlow's inter-op threads, and some op's float result depends on that (which one
    was not found). This runs them one at a time
    (``tf.config.threading.set_inter_op_parallelism_threads(1)``; each op still uses
    every core) and turns on ``tf.config.experimental.enable_op_determinism()`` for the
    ops that are nondeterministic on GPUs. Runs are then equal on the same machine and
    software; the step is slower (``benchmarks/process_settings.py`` measures it).

    Call it before TensorFlow runs its first op (before creating the strategy). The
    TensorFlow backend only: under JAX it raises ``ValueError``.

    Raises:
        ValueError: TensorFlow has already started, or Keras does not run on it.
    """
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            f"deterministic training is set up for the TensorFlow backend, not "
            f"{keras.backend.backend()}"
        )
    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError as e:
        raise ValueError(
            f"deterministic training must be set before TensorFlow's first op ({e})"
        ) from None
    tf.config.experimental.enable_op_determinism()
