"""Session fixtures of the export tests: a small trained detector and its exports."""

import numpy as np
import pytest
from export_helpers import NUM_CLASSES
from export_helpers import SIZE
from export_helpers import random_images


def _confident_like_trained(model, background_bias):
    """Raises the background logit of every class head, as training does.

    With random weights the class scores are near uniform: thousands of boxes tie
    within the 1e-3 by which TFLite's arithmetic may differ from TensorFlow's, so
    which of them make the top 200 is arbitrary. A trained detector calls most
    boxes background; so does this one.
    """
    from cfsam_keras.models import model_config

    classes = model_config(model)["num_classes"] + 1
    for layer in model.layers:
        if layer.name.startswith("class_head_"):
            bias = np.asarray(layer.bias)
            bias[::classes] += background_bias
            layer.bias.assign(bias)


def _recalibrate_batch_norm(model, images):
    """Sets BatchNorm moving statistics to those of ``images`` (one forward pass).

    A few dozen training steps leave the moving averages (Keras' momentum 0.99)
    near their initial values, so inference would not show what
    training learned.
    """
    from cfsam_keras.training import set_batch_norm_momentum

    set_batch_norm_momentum(model, 0.0)
    model(images, training=True)
    set_batch_norm_momentum(model, 0.99)


@pytest.fixture(scope="session")
def shapes_dataset(tmp_path_factory):
    from cfsam_keras.data import write_builtin_dataset

    out = tmp_path_factory.mktemp("shapes")
    return write_builtin_dataset(str(out), train=8, val=8, seed=3, image_size=SIZE)


@pytest.fixture(scope="session")
def trained_model(shapes_dataset, tmp_path_factory):
    """A small-VGG SSD at 96 px (the demo's backbone), fitted to 8 built-in images.

    Returns (model, path of its .keras file, uint8 train images [8, S, S, 3]).
    """
    import keras

    from cfsam_keras.data import BUILTIN_CLASSES
    from cfsam_keras.data import coco
    from cfsam_keras.data import eval_pipeline
    from cfsam_keras.data import train_pipeline
    from cfsam_keras.losses import MultiBoxLoss
    from cfsam_keras.models import SSD300
    from cfsam_keras.models import model_default_boxes

    keras.utils.set_random_seed(7)
    model = SSD300(
        class_names=list(BUILTIN_CLASSES),
        backbone="small_vgg",
        attention="none",
        input_size=SIZE,
    )
    source = coco(*shapes_dataset["train"])
    data = train_pipeline(source, model_default_boxes(model), SIZE, 8, seed=0, augment=False)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3), loss=MultiBoxLoss(NUM_CLASSES), jit_compile=False
    )
    model.fit(data, steps_per_epoch=60, epochs=1, verbose=0, shuffle=False)  # a tf.data stream
    images = next(iter(eval_pipeline(source, SIZE, 8)))["images"].numpy()
    _recalibrate_batch_norm(model, images)
    path = str(tmp_path_factory.mktemp("model") / "small.keras")
    model.save(path)
    return model, path, np.round(images).astype(np.uint8)


@pytest.fixture(scope="session")
def saved_model_dir(trained_model, tmp_path_factory):
    from cfsam_keras.export import export_saved_model

    base = tmp_path_factory.mktemp("exports") / "small"
    return export_saved_model(trained_model[0], str(base))


@pytest.fixture(scope="session")
def tflite_float32(trained_model, tmp_path_factory):
    from cfsam_keras.export import export_tflite

    path = str(tmp_path_factory.mktemp("tflite") / "small.tflite")
    return export_tflite(trained_model[0], path)


@pytest.fixture(scope="session")
def vgg16_cfsam(shapes_dataset):
    """SSD300-VGG16 with an active CFSAM branch, and uint8 images [4, 300, 300, 3]
    (two random, two built-in val images)."""
    import keras

    from cfsam_keras.data import coco
    from cfsam_keras.data import eval_pipeline
    from cfsam_keras.models import SSD300

    # Seeded: with some random weights two detections tie in score, and the TFLite
    # file and Keras may list them in either order.
    keras.utils.set_random_seed(1)
    model = SSD300(20, backbone="vgg16", attention="cfsam")
    assert any(w.path.endswith("fusion_scale") for w in model.weights)
    # Make the CFSAM branch active (it starts as the identity) so it is exercised.
    for weight in model.weights:
        if weight.path.endswith("fusion_scale"):
            weight.assign(keras.ops.ones_like(weight) * 0.5)
    _confident_like_trained(model, 3.0)
    builtin = next(iter(eval_pipeline(coco(*shapes_dataset["val"]), 300, 2)))["images"].numpy()
    images = np.concatenate(
        [random_images(2, size=300, seed=11), np.round(builtin).astype(np.uint8)]
    )
    return model, images
