"""Runs the README's CFSAM example (its first python block) verbatim."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def readme_example():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert blocks, "README.md has no python example"
    return blocks[0]


def test_readme_example_runs():
    namespace = {}
    exec(compile(readme_example(), str(README), "exec"), namespace)
    model = namespace["model"]
    assert any(layer.__class__.__name__ == "CFSAM" for layer in model.layers)
    cfsam = next(layer for layer in model.layers if layer.__class__.__name__ == "CFSAM")
    # fit took a step: the zero-initialised fusion scales moved.
    assert all(abs(float(s)) > 0 for s in cfsam.fusion_scale.numpy())
