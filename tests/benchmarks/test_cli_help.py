"""``benchmarks/cli_help.py``: every sub-command's ``--help``, quiet and without TensorFlow."""

import subprocess
import sys

import cli_help


def test_subcommands_are_the_clis_own():
    from cfsam_keras.cli import SUBCOMMANDS

    assert cli_help.subcommands() == [name.replace("_", "-") for name in SUBCOMMANDS]


def test_help_prints_nothing_to_stderr_and_loads_no_tensorflow(capsys):
    assert cli_help.main(["--runs", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + len(cli_help.subcommands())
    assert all(line.startswith("cfsam-keras ") and line.endswith("(median of 1)") for line in lines)
    ran = subprocess.run(
        [sys.executable, "-m", "cfsam_keras", "export", "--help"], capture_output=True, text=True
    )
    assert ran.returncode == 0 and not ran.stderr
    ran = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "cfsam_keras", "export", "--help"],
        capture_output=True,
        text=True,
    )
    assert "tensorflow" not in ran.stderr and "keras." not in ran.stderr.replace("cfsam_keras", "")
