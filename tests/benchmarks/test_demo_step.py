"""``benchmarks/demo_step.py``: the variants are the demo with one change; the table's sums."""

import demo_step
import pytest


@pytest.mark.slow
def test_variants_build_the_demo_model_with_their_change(tmp_path):
    import keras
    import tensorflow as tf

    from cfsam_keras.data import coco
    from cfsam_keras.data import write_builtin_dataset
    from cfsam_keras.layers import CFSAM
    from cfsam_keras.models import model_config

    paths = write_builtin_dataset(str(tmp_path), train=4, val=0, seed=0, image_size=64)
    source = coco(*paths["train"])
    configs = demo_step.harness.recipe_configs()
    flags = ["--input-size", "64"]
    built = {
        name: demo_step.build_variant(name, flags, source)
        for name in (
            "demo",
            "widths 16-32-64-128",
            "cfsam embed 32",
            "attention none",
            demo_step.KERAS_BATCH_NORM,
            "mixed bfloat16",
            "xla",
        )
    }

    def describe(model):
        """Input side, backbone stage widths and the CFSAM layer's config of a built model."""
        widths = [model.get_layer(n).filters for n in ("conv1", "conv2_1", "conv3_1", "conv4_1")]
        [cfsam] = [layer for layer in model.layers if isinstance(layer, CFSAM)]
        config = {k: v for k, v in cfsam.get_config().items() if k != "name"}
        return model_config(model)["input_size"], tuple(widths), config

    size, widths, cfsam = describe(built["demo"][0])
    demo_cfsam = configs.DEMO_MODEL["attention_kwargs"]
    assert size == 64 and widths == configs.DEMO_MODEL["backbone_kwargs"]["widths"]
    assert {k: cfsam[k] for k in demo_cfsam} == demo_cfsam
    size, widths, narrow = describe(built["widths 16-32-64-128"][0])
    assert widths == (16, 32, 64, 128) and narrow == cfsam
    *_, small = describe(built["cfsam embed 32"][0])
    assert small == {**cfsam, "embed_dim": 32}
    assert not [layer for layer in built["attention none"][0].layers if isinstance(layer, CFSAM)]
    # The same model, but its batch norms train with Keras' own code, not the fused kernel.
    assert describe(built[demo_step.KERAS_BATCH_NORM][0]) == describe(built["demo"][0])
    assert demo_step.keras_batch_norm(built[demo_step.KERAS_BATCH_NORM][0]) == 15 + 6
    # Mixed precision is the bfloat16 model's alone: the global policy is float32 again.
    assert built["mixed bfloat16"][0].get_layer("conv1").compute_dtype == "bfloat16"
    assert built["demo"][0].get_layer("conv1").compute_dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"
    assert built["xla"][0].jit_compile and not built["demo"][0].jit_compile

    def training_ops(model):
        layer = model.get_layer("conv1_bn")
        step = tf.function(lambda x: layer(x, training=True))
        return {
            op.type
            for op in step.get_concrete_function(tf.ones((2, 4, 4, 24))).graph.get_operations()
        }

    assert "FusedBatchNormV3" in training_ops(built["demo"][0])
    assert "FusedBatchNormV3" not in training_ops(built[demo_step.KERAS_BATCH_NORM][0])
    batch = configs.DEMO["batch_size"]
    assert built["demo"][2] == batch
    images, targets = next(iter(built["attention none"][1]))
    assert images.shape == (batch, 64, 64, 3) and targets.shape[0] == batch

    class Recorder:
        """Stands in for the model: the timing loop is tested without tracing a step."""

        def __init__(self):
            self.batches = []

        def train_on_batch(self, images, targets):
            self.batches.append((images.shape[0], targets.shape[0]))

    recorder = Recorder()
    fed = {"none": (recorder, built["attention none"][1], batch)}
    times = demo_step.time_variants(fed, steps=3, warmup_steps=2, rounds=2)
    # Per round and way: 2 untimed and 3 timed steps; one batch is taken out to be cached.
    assert len(recorder.batches) == 2 * 2 * (2 + 3) and set(recorder.batches) == {(batch, batch)}
    assert [len(times["none"][w]["wall_s"]) for w in ("fed", "cached")] == [2, 2]


def test_summary_and_table():
    times = {
        "demo": {"fed": {"wall_s": [0.5, 0.4, 0.6], "cpu_s": [1.0, 0.8, 0.9]},
                 "cached": {"wall_s": [0.3, 0.3, 0.4], "cpu_s": [0.6, 0.6, 0.6]}},
        "batch 8": {"fed": {"wall_s": [0.3, 0.3], "cpu_s": [0.5, 0.7]},
                    "cached": {"wall_s": [0.2, 0.2], "cpu_s": [0.4, 0.4]}},
    }  # fmt: skip
    rows = demo_step.summarize(times, {"demo": 16, "batch 8": 8}, {"demo": 2e6, "batch 8": 2e6})
    assert rows["demo"]["fed_s_per_step"] == 0.5 and rows["demo"]["input_share"] == 0.4
    assert rows["batch 8"]["fed_cpu_s_per_step"] == pytest.approx(0.6)
    # Per image: 0.3 s / 8 against 0.5 s / 16.
    assert rows["batch 8"]["vs_demo"] == pytest.approx((0.3 / 8) / (0.5 / 16))
    record = dict(
        settings=dict(rounds=3, steps=15, warmup_steps=5, images=256, image_size=192),
        machine=dict(cores=2, cpu="x", load_average_1min_before=0.5),
        rows=rows,
        command="python benchmarks/demo_step.py",
    )
    text = demo_step.table(record)
    assert "| demo | 16 | 2.00M | 0.500 | 0.300 | 40% |" in text
    assert "| batch 8 | 8 |" in text and "1.20 |" in text


def test_unknown_variant_is_a_one_line_error(capsys):
    assert all("," not in name for name in demo_step.VARIANTS)  # --variants splits at commas
    with pytest.raises(SystemExit):
        demo_step.parse(["--variants", "demo,input 999"])
    assert "--variants: unknown ['input 999']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        demo_step.parse(["--steps", "0"])
    assert "--steps must be >= 1" in capsys.readouterr().err
