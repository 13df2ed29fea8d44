"""The built wheel: only the library, and every console command works after installing it."""

import json
import os
import site
import subprocess
import sys
import sysconfig
import zipfile

import numpy as np
import pytest
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(cmd, cwd, timeout=600, **kwargs):
    env = dict(os.environ, PYTHONNOUSERSITE="1")
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, **kwargs
    )
    assert result.returncode == 0, f"{cmd}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with the wheel installed; dependencies from the test environment."""
    root = tmp_path_factory.mktemp("wheel")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(root / "dist"),
            REPO,
        ],
        cwd=root,
    )
    (wheel,) = (root / "dist").glob("cfsam_keras-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=root)
    python = venv / "bin" / "python"
    purelib = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=root
    ).stdout.strip()
    # Reuse the test environment's packages, after the venv's own (a .pth line is
    # appended to sys.path; that folder's own .pth files, the editable install of
    # this checkout among them, are not run).
    deps = [sysconfig.get_path("purelib")] + site.getsitepackages()
    with open(os.path.join(purelib, "test-dependencies.pth"), "w") as f:
        f.write("\n".join(dict.fromkeys(deps)) + "\n")
    _run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], cwd=root
    )
    return {"root": root, "wheel": wheel, "bin": venv / "bin", "python": python}


def test_wheel_holds_the_library_only(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    packages = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert packages == {"cfsam_keras"}, packages
    assert not [
        n for n in names if "/benchmarks/" in n or "recipes" in n or n.endswith("README.md")
    ]


@pytest.mark.slow
def test_every_console_command_runs_from_the_installed_wheel(installed, tmp_path):
    where = _run(
        [str(installed["python"]), "-c", "import cfsam_keras; print(cfsam_keras.__file__)"],
        cwd=tmp_path,
    ).stdout.strip()
    assert where.startswith(str(installed["root"])), where  # the wheel, not this checkout
    command = str(installed["bin"] / "cfsam-keras")
    top = _run([command, "--help"], cwd=tmp_path).stdout
    from cfsam_keras.cli import SUBCOMMANDS

    for name in [s.replace("_", "-") for s in SUBCOMMANDS]:
        assert name in top
        result = _run([command, name, "--help"], cwd=tmp_path)
        assert "usage: cfsam-keras " + name in result.stdout and not result.stderr

    import keras

    from cfsam_keras.models import SSD300

    keras.utils.set_random_seed(0)
    model = SSD300(
        class_names=["cat", "dog"], backbone="small_vgg", attention="none", input_size=64
    )
    model.save(tmp_path / "tiny.keras")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (80, 60, 3), np.uint8)).save(
        tmp_path / "photo.png"
    )
    result = _run(
        [
            command,
            "predict",
            "--model",
            "tiny.keras",
            "photo.png",
            "--out",
            "out",
            "--min-score",
            "0",
        ],
        cwd=tmp_path,
    )
    assert "1 images" in result.stdout
    with open(tmp_path / "out" / "detections.json") as f:
        (image,) = json.load(f)["images"]
    assert image["detections"], "a random model still scores above 0"
    assert {d["class_name"] for d in image["detections"]} <= {"cat", "dog"}
    assert (tmp_path / "out" / "photo.png").exists()
