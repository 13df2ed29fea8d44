"""The ``cfsam-keras`` command line.

Each sub-command lives in its own module here and defines ``add_parser(subparsers)``
and ``run(args) -> int``. These modules import nothing heavy at their top: the
arguments are parsed (and ``--help`` answered) before TensorFlow loads, and each
``run`` imports what it needs. Every error reaches the user as one line,
``cfsam-keras COMMAND: error: ...``, with exit status 2.
"""

import importlib
import sys

from cfsam_keras.cli.common import CLIError
from cfsam_keras.cli.common import load_runtime
from cfsam_keras.validation import ArgumentParser

SUBCOMMANDS = ("make_dataset", "evaluate", "predict", "export", "convert_weights")

__all__ = ["CLIError", "SUBCOMMANDS", "build_parser", "main"]


def build_parser():
    parser = ArgumentParser(
        prog="cfsam-keras",
        description="Evaluate, run and export SSD300 detectors with CFSAM; write the "
        "built-in dataset. Training runs from the recipes/ scripts of the source "
        "checkout (see its README).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in SUBCOMMANDS:
        importlib.import_module(f"cfsam_keras.cli.{name}").add_parser(subparsers)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        load_runtime()
        return int(args.run(args) or 0)
    except CLIError as e:
        print(f"cfsam-keras {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
