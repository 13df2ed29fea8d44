"""``benchmarks/conv_backends.py``: SSD300-VGG16's convolutions in TensorFlow and in JAX."""

import json

import conv_backends
import pytest


def test_layers_and_flops_are_ssd300_vgg16s():
    layers = {layer["name"]: layer for layer in conv_backends.conv_layers()}
    conv4_3, fc6 = layers["block4_conv3"], layers["fc6"]
    assert (conv4_3["input"], conv4_3["output"], conv4_3["filters"]) == (
        (38, 38, 512),
        (38, 38),
        512,
    )
    assert fc6["dilation"] == (6, 6) and layers["conv8_2"]["strides"] == (2, 2)
    # By hand: 3 x (2 x 38 x 38 outputs x 3 x 3 x 512 inputs x 512 filters), batch 2.
    assert conv_backends.conv_flops(conv4_3, 2) == 3 * 2 * 2 * 38 * 38 * 9 * 512 * 512
    assert conv_backends.conv_flops(conv4_3, 1, backward=False) == 2 * 38 * 38 * 9 * 512 * 512
    assert len(layers) == 35


def test_quick_run_times_both_backends(tmp_path, capsys):
    pytest.importorskip("jax")
    argv = ["--quick", "--layers", "fc7,conv10_2", "--out", str(tmp_path)]
    assert conv_backends.main(argv) == 0
    record = json.loads((tmp_path / "conv_backends.json").read_text())
    rows = {r["name"]: r for r in record["rows"]}
    assert list(rows) == ["fc7", "conv10_2"] and rows["fc7"]["input"] == [17, 17, 1024]
    for row in rows.values():
        assert row["tensorflow_ms"] > 0 and row["jax_ms"] > 0
        assert row["jax_over_tensorflow"] == pytest.approx(row["jax_ms"] / row["tensorflow_ms"])
    assert record["totals"]["jax_ms"] == pytest.approx(sum(r["jax_ms"] for r in rows.values()))
    out = capsys.readouterr().out
    assert "| fc7 | 17x17x1024 | 1x1, 1 | 1024 |" in out and "| all |" in out
    assert conv_backends.main(argv + ["--forward-only"]) == 0
    forward = json.loads((tmp_path / "conv_backends_forward.json").read_text())
    assert forward["rows"][0]["gflops"] == pytest.approx(rows["fc7"]["gflops"] / 3)
    with pytest.raises(SystemExit):
        conv_backends.main(["--quick", "--layers", "conv99", "--out", str(tmp_path)])
    assert "--layers: unknown ['conv99']" in capsys.readouterr().err
