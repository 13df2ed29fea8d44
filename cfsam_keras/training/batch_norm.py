"""How closely BatchNormalization's inference statistics follow the weights."""

import keras


def set_batch_norm_momentum(model, momentum):
    """Sets the moving-statistics momentum of every BatchNormalization in ``model``.

    The moving statistics are what inference uses. With Keras' defaults (0.999 in
    ``keras.applications.MobileNetV2``, 0.99 elsewhere) they trail the weights by
    hundreds to thousands of steps, so a model trained from scratch for a few
    thousand steps is scored with statistics of much earlier weights, and its
    detections are far worse than its training loss suggests. A lower momentum
    (e.g. 0.9) follows the weights closely. The model's own BatchNorm layers keep
    it in a ``.keras`` file; those inside a composite layer (CFSAM, CBAM) are
    rebuilt from that layer's config with Keras' default, so set it again after
    loading a model to train it further (resuming a recipe does).

    Args:
        model: a Keras model.
        momentum: float in [0, 1).

    Returns:
        The number of layers changed.
    """
    layers = [
        layer
        for layer in model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    for layer in layers:
        layer.momentum = float(momentum)
    return len(layers)
