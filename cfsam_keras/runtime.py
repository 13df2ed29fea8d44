"""Loading TensorFlow without its start-up noise (standard library only).

TensorFlow's C++ runtime writes lines to stderr while it loads, before its logging
honours ``TF_CPP_MIN_LOG_LEVEL``: CUDA probing on a machine without a GPU, oneDNN
and CPU-feature notices. `import_tensorflow_quietly` holds those back and passes
anything else on. ``import cfsam_keras`` (TensorFlow backend), the command line and
the recipes call it; the recipes create their strategy (which sets up the devices)
inside `start_up_lines_held_back`.

`pool_cpu_memory` makes TensorFlow keep its CPU tensors' memory in a pool; the
recipes, the command line and the benchmarks that time training call it.
"""

import contextlib
import os
import sys
import tempfile

START_UP_NOISE = (
    "absl::InitializeLog()",
    "cudart_stub.cc",
    "cuda_platform.cc",
    "cuda_executor.cc",
    "cpu_feature_guard.cc",
    "rebuild TensorFlow with the appropriate compiler flags",
    "oneDNN custom operations are on",
    "Unable to register cu",
    "computation placer already registered",
)


@contextlib.contextmanager
def start_up_lines_held_back():
    """Holds back TensorFlow's start-up lines written to stderr inside the block.

    The process's stderr (file descriptor 2, where the C++ runtime writes) goes to a
    temporary file; at the end its other lines are passed on.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode("utf-8", "replace").splitlines()
            for line in lines:
                if line.strip() and not any(noise in line for noise in START_UP_NOISE):
                    print(line, file=sys.stderr)


#: TensorFlow's switch for its pooling (best-fit with coalescing) CPU allocator, and the
#: value that turns it on.
POOLED_CPU_ALLOCATOR = ("TF_CPU_ALLOCATOR_USE_BFC", "true")


def pool_cpu_memory():
    """Makes TensorFlow's CPU allocator keep freed memory for reuse (unless the user chose).

    By default TensorFlow allocates each CPU tensor with ``malloc``; the large buffers
    of a training step then come as fresh pages from the kernel and go back at every
    step, and the kernel's work of clearing and mapping them can take a large share of
    the CPU (``benchmarks/process_settings.py`` measures it for the demo). TensorFlow's
    BFC allocator keeps them instead, at the cost of holding the process's peak memory.
    TensorFlow reads the switch when it makes its first CPU tensor, so call this before
    any TensorFlow op (importing TensorFlow or Keras first is fine). A value the user
    set for ``TF_CPU_ALLOCATOR_USE_BFC`` stays.
    The library itself never calls it: importing ``cfsam_keras`` leaves the process's
    allocator alone.
    """
    os.environ.setdefault(*POOLED_CPU_ALLOCATOR)


def import_tensorflow_quietly(probe_devices=False):
    """Imports TensorFlow (once), its start-up lines held back.

    Args:
        probe_devices: also initialise the devices now (where CUDA probing writes its
            lines). Not for processes that may still create a
            ``MultiWorkerMirroredStrategy``: it must come before the devices are set up.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules and not probe_devices:
        return
    with start_up_lines_held_back():
        import tensorflow as tf  # noqa: PLC0415

        if probe_devices:
            tf.config.list_logical_devices("CPU")
