"""Seconds of ``cfsam-keras [SUB-COMMAND] --help``, each a fresh process.

    python benchmarks/cli_help.py [--runs 5]

The command line parses its arguments before it imports TensorFlow, so ``--help``
should take well under a second; this prints the median of each, timed in
interleaved rounds (``harness.interleaved_rounds``), and says if any printed to
stderr (TensorFlow's start-up lines would).
"""

import argparse
import ast
import os
import subprocess
import sys

import harness

CLI = os.path.join(os.path.dirname(harness.RECIPES), "cfsam_keras", "cli", "__init__.py")


def subcommands():
    """``cfsam_keras.cli.SUBCOMMANDS``, read from its file: importing the package here
    would load TensorFlow into this process."""
    with open(CLI, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "SUBCOMMANDS":
            return [name.replace("_", "-") for name in ast.literal_eval(node.value)]
    raise LookupError(f"no SUBCOMMANDS in {CLI}")


def help_command(subcommand=None):
    """The ``python -m cfsam_keras [sub] --help`` argv (the installed command's code)."""
    return [sys.executable, "-m", "cfsam_keras", *([subcommand] if subcommand else []), "--help"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed rounds (default %(default)s)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs must be >= 1, got {args.runs}")
    stderr = {}

    def call(subcommand):
        def run():
            ran = subprocess.run(help_command(subcommand), capture_output=True, text=True)
            if ran.returncode != 0 or ran.stderr:
                stderr[subcommand or "(top)"] = ran.stderr.strip() or f"exit {ran.returncode}"

        return run

    names = {"cfsam-keras --help": call(None)}
    names.update({f"cfsam-keras {name} --help": call(name) for name in subcommands()})
    results = harness.interleaved_rounds(names, runs=args.runs, warmup=1)
    for name, result in results.items():
        print(f"{name:<36} {result['median_s']:.3f} s (median of {args.runs})")
    for name, text in stderr.items():
        print(f"{name}: wrote to stderr: {text.splitlines()[0]}")
    return 1 if stderr else 0


if __name__ == "__main__":
    sys.exit(main())
