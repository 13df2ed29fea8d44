"""``model.fit`` under the JAX backend on the tf.data training pipeline, one device and two.

Subprocesses, because the Keras backend is fixed when keras is first imported. A
small model (small VGG, 64 x 64) and a batch of the built-in dataset: TensorFlow
writes the weights, both backends train from them on the same pipeline batches.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

RECIPES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "recipes")

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import keras
    import numpy as np
    from cfsam_keras import data, training
    from cfsam_keras.losses import MultiBoxLoss
    from cfsam_keras.models import SSD300, model_default_boxes

    root, mode = sys.argv[1], sys.argv[2]
    source = data.coco(os.path.join(root, "instances_train.json"), os.path.join(root, "train"))
    classes = len(source.class_names)


    def fit(strategy_name, steps, batch=4):
        strategy = training.get_strategy(strategy_name)
        keras.utils.set_random_seed(0)
        with strategy.scope():
            # Across backends, the CFSAM model from TensorFlow's weights. One device
            # against two (JAX only, the same seeded start): a smaller model to compile.
            cfsam = mode == "steps"
            model = SSD300(classes, backbone="small_vgg", attention="cfsam" if cfsam else "none",
                           input_size=64, anchor_preset="coco",
                           backbone_kwargs={"widths": (8, 8, 16, 16)},
                           attention_kwargs={"embed_dim": 16, "num_heads": 2, "kv_pool_size": 2}
                           if cfsam else None)
            weights = os.path.join(root, "start.weights.h5")
            if cfsam and keras.backend.backend() == "tensorflow":
                model.save_weights(weights)
            elif cfsam:
                model.load_weights(weights)
            model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                          loss=MultiBoxLoss(classes))
        anchors = model_default_boxes(model)
        dataset = training.distribute(
            strategy,
            lambda b, context: data.train_pipeline(source, anchors, 64, b, seed=0).take(1)
            .cache().repeat(),
            batch,
        )
        first = next(iter(dataset))[1].numpy()
        start = [np.asarray(v.value) for v in model.weights]
        means = []
        log = keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda i, logs: means.append(float(logs["loss"])))
        model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[log])
        # fit logs the mean over the epoch so far; the loss of step k from the means:
        losses = [(k + 1) * m - k * (means[k - 1] if k else 0.0) for k, m in enumerate(means)]
        return model, strategy, losses, float(np.abs(first).sum()), start


    def largest_change(model, reference):
        return max(float(np.max(np.abs(np.asarray(v.value) - r)))
                   for v, r in zip(model.weights, reference))


    if mode == "steps":
        model, _, losses, targets, _ = fit("auto", 4)
        result = {"losses": losses, "targets": targets}
    else:
        one, _, _, _, start = fit("one_device", 1)
        expected = [np.asarray(v.value) for v in one.weights]
        keras.backend.clear_session()
        two, strategy, _, _, _ = fit("mirrored", 1)
        result = {
            "replicas": strategy.num_replicas_in_sync,
            "devices_per_weight": sorted({len(v.value.sharding.device_set) for v in two.weights}),
            "max_difference": largest_change(two, expected),
            "max_update": largest_change(one, start),
        }
        try:
            training.get_strategy("multi_worker")
        except ValueError as e:
            result["multi_worker"] = str(e)
    print("RESULT" + json.dumps(result))
    """
)


def _run(backend, mode, root, **env):
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu", **env)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(root), mode],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT") :])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from cfsam_keras.data import write_builtin_dataset

    root = tmp_path_factory.mktemp("shapes")
    write_builtin_dataset(str(root), train=8, val=0, seed=0, image_size=96)
    return root


@pytest.mark.slow
def test_jax_fit_gives_tensorflows_loss_and_lowers_it(dataset):
    pytest.importorskip("jax")
    tf_run = _run("tensorflow", "steps", dataset)
    jax_run = _run("jax", "steps", dataset)
    assert jax_run["targets"] == tf_run["targets"]  # the same pipeline batch
    assert jax_run["losses"][0] == pytest.approx(tf_run["losses"][0], rel=1e-4)
    np.testing.assert_allclose(jax_run["losses"], tf_run["losses"], rtol=1e-3)
    assert jax_run["losses"][-1] < 0.9 * jax_run["losses"][0]


@pytest.mark.slow
def test_data_parallel_on_two_cpu_devices_gives_the_one_device_update(dataset):
    pytest.importorskip("jax")
    result = _run("jax", "parallel", dataset, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    assert result["replicas"] == 2 and result["devices_per_weight"] == [2]
    assert result["max_update"] > 1e-3 and result["max_difference"] < 1e-5
    assert "needs the TensorFlow backend" in result["multi_worker"]


def test_recipes_take_backend_before_keras_loads():
    script = (
        f"import sys; sys.path.insert(0, {RECIPES!r}); sys.argv[1:] = ['--backend', 'jax'];"
        "import common, keras; print(keras.backend.backend())"
    )
    env = dict(os.environ, KERAS_BACKEND="tensorflow", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["jax"]


def test_a_backend_keras_does_not_run_on_is_refused(capsys):
    sys.path.insert(0, RECIPES)
    import common

    parser = common.recipe_parser("d", {}, prog="p")
    assert common.parse_args(parser, ["--backend", "tensorflow"]).backend == "tensorflow"
    with pytest.raises(SystemExit):
        common.parse_args(parser, ["--backend", "jax"])
    assert "--backend jax: Keras already runs on tensorflow" in capsys.readouterr().err


def test_what_needs_tensorflow_is_refused_in_one_line_under_jax(monkeypatch, capsys):
    sys.path.insert(0, RECIPES)
    import common

    monkeypatch.setattr(common.keras.backend, "backend", lambda: "jax")
    parser = common.recipe_parser("d", {}, prog="p")
    assert common.parse_args(parser, ["--eval-every", "0"]).eval_every == 0
    with pytest.raises(SystemExit):
        common.parse_args(parser, ["--eval-every", "2"])
    assert "--eval-every 2: evaluation runs per-class NMS" in capsys.readouterr().err
    with pytest.raises(ValueError, match="^--backend jax: the exports needs the TensorFlow"):
        common.require_tensorflow_backend("the exports")


def test_recipes_always_compile_with_xla_under_jax(monkeypatch):
    sys.path.insert(0, RECIPES)
    import common
    import keras

    from cfsam_keras.models import SSD300

    model = SSD300(2, backbone="small_vgg", attention="none", input_size=64, anchor_preset="coco")
    args = common.recipe_parser("d", {"lr": 1e-3, "batch_size": 2}, prog="p").parse_args(
        [
            "--optimizer",
            "sgd",
            "--schedule",
            "constant",
            "--reference-batch",
            "2",
            "--weight-decay",
            "0",
        ]
    )
    common.compile_model(model, args, total_steps=10)
    assert model.jit_compile is False
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    common.compile_model(model, args, total_steps=10)
    assert model.jit_compile is True
