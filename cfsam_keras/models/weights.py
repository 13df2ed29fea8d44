"""Loading backbone weights into an SSD model: ImageNet, or a file of weights.

SSD300 starts from VGG16 trained on ImageNet with its fully connected layers fc6 and
fc7 turned into convolutions and subsampled ("VGG_ILSVRC_16_layers_fc_reduced", as
DeepLab-LargeFOV does; ssd.caffe, ssd_keras and ssd.pytorch all start there):
`reduced_fc` is that subsampling, applied to ``keras.applications.VGG16``'s
``fc1`` / ``fc2``.
"""

import collections
import os

import h5py
import keras
import numpy as np

from cfsam_keras.models.state_dicts import STATE_DICT_SUFFIXES
from cfsam_keras.models.state_dicts import assign_weights
from cfsam_keras.models.state_dicts import read_state_dict
from cfsam_keras.models.state_dicts import set_layer_weights
from cfsam_keras.models.vgg16 import VGG16_LAYER_NAMES

# The input side the keras.applications reference model is built at; the convolutional
# weights do not depend on it, and these sizes have ImageNet weights without a warning.
_REFERENCE_INPUT_SIZE = 224

#: The backbones that have a keras.applications counterpart with ImageNet weights.
IMAGENET_BACKBONES = ("vgg16", "mobilenet_v2")

#: The subsampling of VGG16's fully connected layers into SSD's fc6 and fc7:
#: fc6 (7 x 7 x 512 -> 4096) keeps the taps 0, 3 and 6 of each spatial axis (a 3 x 3
#: kernel; dilated 6 on SSD's stride-16 grid it spans 13 positions, about the 7 x 32 =
#: 224 pixels fc1 saw) and every 4th of its 4096 filters (-> 1024); fc7 (4096 -> 4096)
#: keeps every 4th input and every 4th output.
FC6_TAP_STEP = 3
FC_FILTER_STEP = 4

# keras.applications.VGG16(include_top=True): the arrays of the top on top of those of
# include_top=False (fc1 and fc2 of the 7 x 7 x 512 grid, then the 1000 classes).
_VGG16_TOP_SHAPES = collections.Counter(
    [(7 * 7 * 512, 4096), (4096,), (4096, 4096), (4096,), (4096, 1000), (1000,)]
)

# ssd.pytorch's ``vgg`` ModuleList (the keys of vgg16_reducedfc.pth): index -> our layer.
SSD_PYTORCH_VGG = dict(
    zip((0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28, 31, 33), VGG16_LAYER_NAMES)
)


def reference_backbone(backbone, weights=None, alpha=1.0, include_top=False):
    """The ``keras.applications`` model whose layers SSD's backbone reuses by name.

    Args:
        backbone: ``"vgg16"`` or ``"mobilenet_v2"``.
        weights: ``None``, ``"imagenet"`` or a weights file, passed to
            ``keras.applications``.
        alpha: MobileNetV2's width multiplier.
        include_top: VGG16 only: with its fully connected layers (which `reduced_fc`
            turns into SSD's fc6 and fc7).

    Returns:
        ``keras.applications.VGG16(include_top=include_top)`` or
        ``keras.applications.MobileNetV2(include_top=False, alpha=alpha)``.
    """
    shape = (_REFERENCE_INPUT_SIZE, _REFERENCE_INPUT_SIZE, 3)
    if backbone == "vgg16":
        return keras.applications.VGG16(include_top=include_top, weights=weights, input_shape=shape)
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
        set_layer_weights(
            target_layers[layer.name], weights, f"the weights of {source.name!r}'s {layer.name!r}"
        )
        copied += 1
    return copied


def reduced_fc(fc1_kernel, fc1_bias, fc2_kernel, fc2_bias):
    """SSD's fc6 and fc7 from VGG16's fully connected fc1 and fc2, by decimation.

    Args:
        fc1_kernel: ``[25088, 4096]``, ``keras.applications.VGG16``'s ``fc1`` kernel
            (its rows are the 7 x 7 x 512 grid flattened channels-last).
        fc1_bias: ``[4096]``.
        fc2_kernel: ``[4096, 4096]``.
        fc2_bias: ``[4096]``.

    Returns:
        ``{"fc6": [kernel [3, 3, 512, 1024], bias [1024]], "fc7": [kernel
        [1, 1, 1024, 1024], bias [1024]]}``, the taps and filters of `FC6_TAP_STEP` and
        `FC_FILTER_STEP`.
    """
    taps, step = FC6_TAP_STEP, FC_FILTER_STEP
    fc6 = np.reshape(fc1_kernel, (7, 7, 512, -1))[::taps, ::taps, :, ::step]
    fc7 = np.asarray(fc2_kernel)[::step, ::step]
    return {
        "fc6": [fc6, np.asarray(fc1_bias)[::step]],
        "fc7": [fc7[None, None], np.asarray(fc2_bias)[::step]],
    }


def _copy_vgg16_with_top(reference, model):
    """conv1_1 .. conv5_3 of a ``VGG16(include_top=True)`` by name, fc6 / fc7 reduced."""
    convolutions = keras.Model(reference.input, reference.get_layer("block5_pool").output)
    copy_weights_by_name(convolutions, model)
    fc1 = reference.get_layer("fc1").get_weights()
    fc2 = reference.get_layer("fc2").get_weights()
    for name, weights in reduced_fc(*fc1, *fc2).items():
        model.get_layer(name).set_weights(weights)


def _load_reduced_fc_state_dict(model, path):
    """ssd.pytorch's ``vgg16_reducedfc.pth`` (keys ``0.weight`` .. ``33.bias``)."""
    state = read_state_dict(path)
    assignments = {}
    for index, layer in SSD_PYTORCH_VGG.items():
        assignments[layer] = [f"{index}.weight", f"{index}.bias"]
    assign_weights(model, state, assignments, path, partial=True)


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
            ``keras.applications``: for vgg16 ``VGG16(include_top=True)``, whose
            convolutions are copied by name and whose ``fc1`` / ``fc2`` become fc6 /
            fc7 by `reduced_fc`; for mobilenet_v2 every layer of
            ``MobileNetV2(include_top=False, alpha=alpha)``); or a file:
            an ``.h5`` / ``.weights.h5`` file of this very SSD model (same backbone,
            attention, classes, input size; loaded with ``model.load_weights``), of
            ``keras.applications.VGG16`` with or without its top (the file Keras
            downloads, or ``save_weights`` of such a model), or of
            ``MobileNetV2(include_top=False, alpha=alpha)``; or, for vgg16,
            ssd.pytorch's ``vgg16_reducedfc.pth`` (or a ``.npz`` / ``.safetensors`` of
            its keys), whose fc6 / fc7 are already reduced.
        backbone: ``"vgg16"``, ``"mobilenet_v2"`` or ``"small_vgg"`` (no ImageNet
            weights; a file must hold the whole model's).
        alpha: MobileNetV2's width multiplier.

    Returns:
        What was loaded: ``None``, ``"imagenet"``, ``"full"``, ``"backbone"`` (the
        convolutions of a file without top), ``"backbone+fc"`` (a VGG16 file with its
        top) or ``"reduced_fc"`` (ssd.pytorch's file).

    Raises:
        ValueError: for any other value, a missing file, or a file that fits nothing.
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
        if backbone == "vgg16":
            _copy_vgg16_with_top(reference_backbone("vgg16", "imagenet", include_top=True), model)
        else:
            copy_weights_by_name(reference_backbone(backbone, "imagenet", alpha), model)
        return "imagenet"
    if not isinstance(backbone_weights, (str, os.PathLike)):
        raise ValueError(
            "backbone_weights must be None, 'imagenet' or the path of a weights file; "
            f"got {backbone_weights!r}"
        )
    path = os.fspath(backbone_weights)
    suffixes = (".h5",) + (STATE_DICT_SUFFIXES if backbone == "vgg16" else ())
    if not path.lower().endswith(suffixes):
        raise ValueError(
            f"backbone_weights={path!r}: expected None, 'imagenet' or a path ending in "
            f"{', '.join(suffixes)}"
        )
    if not os.path.isfile(path):
        raise ValueError(f"backbone_weights file {path!r} does not exist")
    if path.lower().endswith(STATE_DICT_SUFFIXES):
        _load_reduced_fc_state_dict(model, path)
        return "reduced_fc"
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
    if backbone == "vgg16" and stored == _model_shapes(reference) + _VGG16_TOP_SHAPES:
        _copy_vgg16_with_top(reference_backbone("vgg16", path, include_top=True), model)
        return "backbone+fc"
    description = "VGG16 (with or without its top)"
    if backbone == "mobilenet_v2":
        description = f"MobileNetV2(include_top=False, alpha={alpha})"
    raise ValueError(
        f"backbone_weights file {path!r} holds {sum(stored.values())} arrays that fit neither "
        f"this SSD model ({len(model.weights)} arrays: same backbone, attention, "
        f"num_classes and input size needed) nor the keras.applications.{description} "
        "backbone"
    )
