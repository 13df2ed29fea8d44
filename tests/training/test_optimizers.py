import keras
import numpy as np
import pytest

from cfsam_keras.optimizers import SGDL2
from cfsam_keras.optimizers import WarmupStepDecay
from cfsam_keras.optimizers import build_optimizer
from cfsam_keras.optimizers import build_schedule
from cfsam_keras.optimizers import scale_learning_rate


def test_sgdl2_matches_caffe_update():
    """w' = w + v', v' = m v - lr (g + l2 w) for kernels; biases without l2."""
    kernel = keras.Variable(np.array([[1.0, -2.0], [0.5, 3.0]], "float32"))
    bias = keras.Variable(np.array([1.0, -1.0], "float32"))
    opt = SGDL2(learning_rate=0.1, momentum=0.9, l2=0.01)
    grads = [np.full((2, 2), 0.5, "float32"), np.full((2,), 0.5, "float32")]
    w0, b0 = kernel.numpy().copy(), bias.numpy().copy()
    opt.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in grads], [kernel, bias]))
    v_w = -0.1 * (0.5 + 0.01 * w0)
    v_b = -0.1 * 0.5 * np.ones(2)
    np.testing.assert_allclose(kernel.numpy(), w0 + v_w, rtol=1e-6)
    np.testing.assert_allclose(bias.numpy(), b0 + v_b, rtol=1e-6)
    opt.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in grads], [kernel, bias]))
    w1 = w0 + v_w
    v_w2 = 0.9 * v_w - 0.1 * (0.5 + 0.01 * w1)
    np.testing.assert_allclose(kernel.numpy(), w1 + v_w2, rtol=1e-6)


def test_sgdl2_serialises():
    opt = SGDL2(learning_rate=WarmupStepDecay(1e-3, [10, 20], warmup_steps=5), l2=5e-4)
    again = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert isinstance(again, SGDL2) and again.l2 == 5e-4
    assert isinstance(again.learning_rate, WarmupStepDecay) or again._learning_rate is not None


def test_warmup_step_decay_values():
    schedule = WarmupStepDecay(1e-3, [100, 200], factor=0.1, warmup_steps=10, warmup_start=0.5)
    assert float(schedule(0)) == pytest.approx(0.5e-3)
    assert float(schedule(5)) == pytest.approx(0.75e-3)
    assert float(schedule(50)) == pytest.approx(1e-3)
    assert float(schedule(100)) == pytest.approx(1e-4)
    assert float(schedule(250)) == pytest.approx(1e-5)


def test_build_schedule_step_defaults_to_ssd_fractions():
    schedule = build_schedule("step", 1e-3, total_steps=120000)
    assert schedule.boundaries == [80000, 100000]
    cosine = build_schedule("cosine", 1e-2, total_steps=100, warmup_steps=10)
    assert float(cosine(10)) == pytest.approx(1e-2, rel=1e-4)
    assert float(cosine(100)) < 1e-4


def test_learning_rate_scales_with_global_batch():
    assert scale_learning_rate(1e-3, 64) == pytest.approx(2e-3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "rmsprop"}, "Unknown optimizer"),
        ({"global_clipnorm": 0.0}, "global_clipnorm"),
    ],
)
def test_build_optimizer_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_optimizer(**kwargs)


def test_schedule_rejects_decreasing_boundaries():
    with pytest.raises(ValueError, match="boundaries"):
        WarmupStepDecay(1e-3, [20, 10])
