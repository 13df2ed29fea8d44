"""The ``cfsam-keras`` command line tool.

Each sub-command lives in its own module in this package and defines
``add_parser(subparsers)`` and ``run(args) -> int``.
"""

import argparse
import importlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SUBCOMMANDS = (
    "make_dataset",
    "train",
    "evaluate",
    "predict",
    "export",
)


class CLIError(Exception):
    """An error reported to the user as one line, without a traceback."""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="cfsam-keras",
        description="Train, evaluate, export and benchmark SSD300 with CFSAM.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"cfsam_keras.cli.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except CLIError as e:
        print(f"cfsam-keras {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
