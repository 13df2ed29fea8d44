import keras
import numpy as np
import pytest
import tensorflow as tf

from cfsam_keras.losses import MultiBoxLoss
from cfsam_keras.losses import multibox_loss_terms


def reference_loss(y_true, y_pred, neg_pos_ratio=3, alpha=1.0):
    """Plain numpy, one image at a time, as the SSD reference code."""
    total, num_pos = 0.0, 0
    for t, p in zip(y_true.astype(np.float64), y_pred.astype(np.float64)):
        labels = t[:, 4].astype(int)
        pos = labels > 0
        d = np.abs(p[:, :4] - t[:, :4])
        loc = np.where(d < 1, 0.5 * d**2, d - 0.5)[pos].sum()
        logits = p[:, 4:]
        m = logits.max(axis=1, keepdims=True)
        lse = np.log(np.exp(logits - m).sum(axis=1)) + m[:, 0]
        ce = lse - logits[np.arange(len(labels)), labels]
        k = min(int(neg_pos_ratio * pos.sum()), int((~pos).sum()))
        hardest = np.sort(ce[~pos])[::-1][:k]
        total += ce[pos].sum() + hardest.sum() + alpha * loc
        num_pos += pos.sum()
    return total / max(num_pos, 1)


def make_batch(rng, batch, anchors, num_classes, positives):
    y_true = np.zeros((batch, anchors, 5), np.float32)
    for b, n in enumerate(positives):
        rows = rng.choice(anchors, size=n, replace=False)
        y_true[b, rows, :4] = rng.normal(size=(n, 4)) * 2
        y_true[b, rows, 4] = rng.integers(1, num_classes + 1, size=n)
    y_pred = rng.normal(size=(batch, anchors, 4 + num_classes + 1)).astype(np.float32) * 2
    return y_true, y_pred


@pytest.mark.parametrize("alpha,ratio", [(1.0, 3.0), (0.5, 2.0)])
def test_loss_equals_numpy_reference(alpha, ratio):
    rng = np.random.default_rng(0)
    y_true, y_pred = make_batch(rng, 3, 40, 4, positives=[3, 0, 7])
    loss = MultiBoxLoss(num_classes=4, neg_pos_ratio=ratio, alpha=alpha)(y_true, y_pred)
    assert float(loss) == pytest.approx(reference_loss(y_true, y_pred, ratio, alpha), rel=1e-5)


def test_hard_negative_mining_picks_min_of_ratio_times_positives_and_negatives():
    rng = np.random.default_rng(1)
    # 10 default boxes: 2 positives -> 6 negatives; 4 positives -> all 6 negatives.
    y_true, y_pred = make_batch(rng, 3, 10, 2, positives=[2, 4, 0])
    terms = multibox_loss_terms(y_true, y_pred)
    np.testing.assert_array_equal(np.asarray(terms["num_positives"]), [2, 4, 0])
    np.testing.assert_array_equal(np.asarray(terms["num_negatives"]), [6, 6, 0])

    # The mined negatives are the ones with the largest cross-entropy: give
    # three negatives a clearly wrong (confident non-background) prediction.
    y_true = np.zeros((1, 20, 5), np.float32)
    y_true[0, 0, 4] = 1
    y_pred = np.zeros((1, 20, 4 + 2 + 1), np.float32)
    hard = [4, 11, 17]
    y_pred[0, hard, 5] = 5.0
    terms = multibox_loss_terms(y_true, y_pred)
    ce_hard = np.log(np.exp(5.0) + 2) - 0.0
    ce_pos = np.log(3.0)
    assert float(terms["num_negatives"][0]) == 3
    assert float(terms["classification"][0]) == pytest.approx(ce_pos + 3 * ce_hard, rel=1e-6)


def test_loss_is_finite_without_positives_and_gradients_too():
    rng = np.random.default_rng(2)
    y_true = np.zeros((2, 30, 5), np.float32)
    y_pred = tf.Variable(rng.normal(size=(2, 30, 4 + 3 + 1)).astype(np.float32))
    loss_fn = MultiBoxLoss(num_classes=3)
    with tf.GradientTape() as tape:
        loss = loss_fn(y_true, y_pred)
    grad = tape.gradient(loss, y_pred)
    assert np.isfinite(float(loss)) and float(loss) == 0.0
    assert np.all(np.isfinite(grad.numpy()))


def test_gradient_matches_reference_on_positives_and_mined_negatives():
    rng = np.random.default_rng(3)
    y_true, y_pred = make_batch(rng, 2, 12, 2, positives=[1, 2])
    variable = tf.Variable(y_pred)
    with tf.GradientTape() as tape:
        loss = MultiBoxLoss(num_classes=2)(y_true, variable)
    grad = tape.gradient(loss, variable).numpy()
    eps = 1e-3
    numeric = np.zeros_like(y_pred)
    for idx in np.ndindex(*y_pred.shape):
        up, down = y_pred.copy(), y_pred.copy()
        up[idx] += eps
        down[idx] -= eps
        numeric[idx] = (reference_loss(y_true, up) - reference_loss(y_true, down)) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, atol=2e-3)


def test_mixed_precision_predictions_give_a_float32_loss():
    rng = np.random.default_rng(4)
    y_true, y_pred = make_batch(rng, 2, 50, 5, positives=[4, 6])
    loss_fn = MultiBoxLoss(num_classes=5)
    half = loss_fn(y_true, tf.constant(y_pred, tf.float16))
    assert half.dtype == tf.float32
    expected = reference_loss(y_true, y_pred.astype(np.float16).astype(np.float32))
    assert float(half) == pytest.approx(expected, rel=1e-5)
    terms = multibox_loss_terms(y_true, tf.constant(y_pred, tf.float16))
    assert all(v.dtype == tf.float32 for v in terms.values())


def test_per_image_values_and_sample_weight_keep_the_global_normaliser():
    rng = np.random.default_rng(5)
    y_true, y_pred = make_batch(rng, 4, 25, 3, positives=[1, 5, 0, 2])
    total = reference_loss(y_true, y_pred)
    per_image = np.asarray(MultiBoxLoss(num_classes=3, reduction="none")(y_true, y_pred))
    assert per_image.shape == (4,)
    assert per_image.mean() == pytest.approx(total, rel=1e-5)
    assert per_image[2] == 0.0
    weights = np.array([1.0, 0.0, 1.0, 1.0], np.float32)
    weighted = MultiBoxLoss(num_classes=3)(y_true, y_pred, sample_weight=weights)
    assert float(weighted) == pytest.approx((per_image * weights).mean(), rel=1e-5)


def test_serialization_round_trip():
    loss = MultiBoxLoss(num_classes=7, neg_pos_ratio=2.0, alpha=0.5)
    config = loss.get_config()
    assert config["num_classes"] == 7 and config["alpha"] == 0.5 and config["neg_pos_ratio"] == 2.0
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert isinstance(restored, MultiBoxLoss)
    assert restored.get_config() == config


def test_compile_and_fit_a_tiny_model():
    num_anchors, num_classes = 16, 2
    rng = np.random.default_rng(6)
    y_true, _ = make_batch(rng, 8, num_anchors, num_classes, positives=[2] * 8)
    x = rng.normal(size=(8, num_anchors, 3)).astype(np.float32)
    model = keras.Sequential(
        [keras.Input((num_anchors, 3)), keras.layers.Dense(4 + num_classes + 1)]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=MultiBoxLoss(num_classes))
    before = model.evaluate(x, y_true, batch_size=8, verbose=0)
    expected = reference_loss(y_true, model.predict(x, verbose=0))
    assert before == pytest.approx(expected, rel=1e-4)
    history = model.fit(x, y_true, batch_size=4, epochs=3, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    assert model.evaluate(x, y_true, batch_size=8, verbose=0) < before


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="num_classes"):
        MultiBoxLoss(num_classes=0)
    with pytest.raises(ValueError, match="reduction"):
        MultiBoxLoss(num_classes=3, reduction="sum")
    with pytest.raises(ValueError, match="neg_pos_ratio"):
        MultiBoxLoss(num_classes=3, neg_pos_ratio=-1)
    with pytest.raises(ValueError, match=r"num_classes=3.*\[B, A, 8\]"):
        MultiBoxLoss(num_classes=3)(
            np.zeros((1, 4, 5), np.float32), np.zeros((1, 4, 9), np.float32)
        )
    with pytest.raises(ValueError, match="y_true"):
        MultiBoxLoss(num_classes=3)(
            np.zeros((1, 4, 6), np.float32), np.zeros((1, 4, 8), np.float32)
        )
