"""``--backend``: a recipe's Keras backend, set before Keras loads.

Keras fixes its backend when it is first imported, and importing ``cfsam_keras``
imports Keras, so ``common`` imports this module before either: it reads
``--backend NAME`` (or ``--backend=NAME``) from the command line and sets
``KERAS_BACKEND``, turns on TensorFlow's pooled CPU allocator
(``cfsam_keras.runtime.pool_cpu_memory``), then loads TensorFlow quietly.
``common.recipe_parser`` declares the flag, and ``common.parse_args`` refuses a
``--backend`` other than the one Keras runs on (given to ``main(argv)`` after Keras
loaded, or in ``--config``).
"""

import os
import sys

#: The backends the recipes train on (the data pipeline is tf.data under both).
BACKENDS = ("tensorflow", "jax")


def backend_in(argv):
    """The value of the last ``--backend`` in ``argv``, or None.

    Example:
    >>> backend_in(["--out", "runs/a", "--backend", "jax"])
    'jax'
    """
    found = None
    for i, arg in enumerate(argv):
        if arg == "--backend" and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith("--backend="):
            found = arg.split("=", 1)[1]
    return found


_name = backend_in(sys.argv[1:])
if _name in BACKENDS and "keras" not in sys.modules:
    os.environ["KERAS_BACKEND"] = _name

# The recipes' pipelines are tf.data under every backend: load TensorFlow now, before
# Keras, without its start-up lines. (Importing the package loads Keras: only now that
# the backend is set.)
from cfsam_keras.runtime import import_tensorflow_quietly  # noqa: E402
from cfsam_keras.runtime import pool_cpu_memory  # noqa: E402

pool_cpu_memory()
import_tensorflow_quietly()
