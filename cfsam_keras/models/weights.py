"""Loading backbone weights into an SSD model: ImageNet, or a ``.weights.h5`` file."""

import collections
import os

import h5py
import keras

# The input side the keras.applications reference model is built at; the convolutional
# weights do not depend on it, and these sizes have ImageNet weights without a warning.
_REFERENCE_INPUT_SIZE = 224

#: The backbones that have a keras.applications counterpart with ImageNet weights.
IMAGENET_BACKBONES = ("vgg16", "mobilenet_v2")


def reference_backbone(backbone, weights=None, alpha=1.0):
    """The ``keras.applications`` model whose layers SSD's backbone reuses by name.

    Args:
        backbone: ``"vgg16"`` or ``"mobilenet_v2"``.
        weights: ``None`` or ``"imagenet"``, passed to ``keras.applications``.
        alpha: MobileNetV2's width multiplier.

    Returns:
        ``keras.applications.VGG16(include_top=False)`` or
        ``keras.applications.MobileNetV2(include_top=False, alpha=alpha)``.
    """
    shape = (_REFERENCE_INPUT_SIZE, _REFERENCE_INPUT_SIZE, 3)
    if backbone == "vgg16":
        return keras.applications.VGG16(include_top=False, weights=weights, input_shape=shape)
    return keras.applications.MobileNetV2(
        include_top=False, weights=weights, alpha=alpha, input_shape=shape
    )


def copy_weights_by_name(source, target):
    """Copies the weights of every layer of ``source`` to the layer of ``target`` with its name.

    Args:
        source: keras.Model to copy from.
        target: keras.Model to copy to.

    Returns:
        Number of layers copied.

    Raises:
        ValueError: if a layer of ``source`` with weights has no namesake in ``target``, or
            the shapes differ.
    """
    target_layers = {layer.name: layer for layer in target.layers}
    copied = 0
    for layer in source.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if layer.name not in target_layers:
            raise ValueError(
                f"Layer {layer.name!r} of {source.name!r} has no namesake in {target.name!r}."
            )
        destination = target_layers[layer.name]
        expected = [tuple(w.shape) for w in destination.get_weights()]
        received = [tuple(w.shape) for w in weights]
        if expected != received:
            raise ValueError(
                f"Layer {layer.name!r}: {target.name!r} has weight shapes {expected}, "
                f"{source.name!r} has {received}."
            )
        destination.set_weights(weights)
        copied += 1
    return copied


def _file_shapes(path):
    """Multiset of the shapes of every array stored in a Keras ``.weights.h5`` file."""
    shapes = collections.Counter()

    def visit(_, item):
        if isinstance(item, h5py.Dataset):
            shapes[tuple(item.shape)] += 1

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return shapes


def _model_shapes(model):
    return collections.Counter(tuple(v.shape) for v in model.weights)


def load_backbone_weights(model, backbone_weights, backbone, alpha=1.0):
    """Loads ``backbone_weights`` into a freshly built SSD model.

    Args:
        model: the SSD keras.Model.
        backbone_weights: ``None``; ``"imagenet"`` (downloaded through
            ``keras.applications`` and copied by layer name); or the path of a
            ``.weights.h5`` file holding either the weights of this very SSD model (same
            backbone, attention, classes, input size; loaded with ``model.load_weights``)
            or those of the ``keras.applications`` backbone (``VGG16(include_top=False)``
            or ``MobileNetV2(include_top=False, alpha=alpha)``, copied by layer name).
        backbone: ``"vgg16"``, ``"mobilenet_v2"`` or ``"small_vgg"`` (no ImageNet
            weights; a file must hold the whole model's).
        alpha: MobileNetV2's width multiplier.

    Returns:
        ``None``, ``"imagenet"``, ``"full"`` or ``"backbone"``: what was loaded.

    Raises:
        ValueError: for any other value, a missing file, or a file that fits neither.
    """
    if backbone_weights is None:
        return None
    if backbone_weights == "imagenet" and backbone not in IMAGENET_BACKBONES:
        raise ValueError(
            f"backbone_weights='imagenet': the {backbone!r} backbone has no ImageNet weights "
            f"(those exist for {list(IMAGENET_BACKBONES)}); train it from scratch "
            "(backbone_weights=None) or load a .weights.h5 file of this whole model"
        )
    if backbone_weights == "imagenet":
        copy_weights_by_name(reference_backbone(backbone, "imagenet", alpha), model)
        return "imagenet"
    if not isinstance(backbone_weights, (str, os.PathLike)):
        raise ValueError(
            "backbone_weights must be None, 'imagenet' or the path of a .weights.h5 file; "
            f"got {backbone_weights!r}"
        )
    path = os.fspath(backbone_weights)
    if not path.endswith(".weights.h5"):
        raise ValueError(
            f"backbone_weights={path!r}: expected None, 'imagenet' or a path ending in "
            "'.weights.h5'"
        )
    if not os.path.isfile(path):
        raise ValueError(f"backbone_weights file {path!r} does not exist")
    try:
        stored = _file_shapes(path)
    except OSError as e:
        raise ValueError(
            f"backbone_weights file {path!r} is not a readable HDF5 file: {e}"
        ) from None
    if stored == _model_shapes(model):
        model.load_weights(path)
        return "full"
    if backbone not in IMAGENET_BACKBONES:
        raise ValueError(
            f"backbone_weights file {path!r} holds {sum(stored.values())} arrays that do not "
            f"fit this SSD model ({len(model.weights)} arrays: same backbone, attention, "
            "num_classes and input size needed)"
        )
    reference = reference_backbone(backbone, None, alpha)
    if stored == _model_shapes(reference):
        reference.load_weights(path)
        copy_weights_by_name(reference, model)
        return "backbone"
    description = "VGG16(include_top=False)"
    if backbone == "mobilenet_v2":
        description = f"MobileNetV2(include_top=False, alpha={alpha})"
    raise ValueError(
        f"backbone_weights file {path!r} holds {sum(stored.values())} arrays that fit neither "
        f"this SSD model ({len(model.weights)} arrays: same backbone, attention, "
        f"num_classes and input size needed) nor the keras.applications.{description} "
        "backbone"
    )
