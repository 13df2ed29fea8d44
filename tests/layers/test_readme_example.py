"""Runs the "Use CFSAM in your own model" example from README.md verbatim."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- SECTION: layers (CFSAM) -->"


def readme_example():
    text = README.read_text()
    section = text.split(MARKER, 1)[1].split("<!-- SECTION:", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1, "expected one python example in the CFSAM section"
    return blocks[0]


def test_readme_example_runs():
    namespace = {}
    exec(compile(readme_example(), str(README), "exec"), namespace)
    model = namespace["model"]
    assert any(layer.__class__.__name__ == "CFSAM" for layer in model.layers)
    cfsam = next(layer for layer in model.layers if layer.__class__.__name__ == "CFSAM")
    # fit took a step: the zero-initialised fusion scales moved.
    assert all(abs(float(s)) > 0 for s in cfsam.fusion_scale.numpy())
