"""Trained SSD300 detectors of the peers as our SSD300-VGG16: torchvision and ssd.pytorch.

Both peers' SSD300 is ours layer for layer, so a conversion is a key map, PyTorch's
kernel layout turned into Keras' (`state_dicts.torch_conv`), and three things the
model must carry so that it takes RGB in [0, 255] like every model of ours:

- the peer's input convention, as the model's preprocessing layer
  (``InputPreprocessing("torchvision")`` or ``("ssd.pytorch")``);
- its default boxes: ssd.pytorch's are our ``"voc"`` preset (its COCO model:
  ``"coco"``), which clamp all four of (cx, cy, w, h) to [0, 1] as SSD's reference
  code does. torchvision's have the ``"coco"`` sizes but clamp only w and h, so the
  centres of the last row and column of the 10 x 10 level stay at 1.013: the
  ``"torchvision"`` preset;
- its class layout: index 0 is background in both; torchvision's COCO model has a slot
  for each of the 90 COCO category ids (ten unused), which become the 80 contiguous
  classes of `COCO_CATEGORIES` in increasing id order (what ``cfsam_keras.data.coco``
  gives for COCO's annotation files, so evaluation scores them with their real ids).

The head layout needs no change: both peers flatten a head's output per location as
(box, column), as our ``SSDPredictions`` does.
"""

from cfsam_keras.class_lists import COCO_CATEGORIES
from cfsam_keras.class_lists import VOC_CLASSES
from cfsam_keras.models.ssd import SSD300
from cfsam_keras.models.state_dicts import assign_weights
from cfsam_keras.models.state_dicts import read_state_dict
from cfsam_keras.models.vgg16 import EXTRA_LAYER_NAMES
from cfsam_keras.models.vgg16 import VGG16_LAYER_NAMES
from cfsam_keras.models.weights import SSD_PYTORCH_VGG

LEVELS = 6
# Default boxes per location of SSD300's first level (4), which tells the class count.
_FIRST_LEVEL_BOXES = 4

# torchvision's SSDFeatureExtractorVGG: ``features`` up to conv4_3, then ``extra.0``
# holding pool4, conv5_1 .. conv5_3 and the (pool5, fc6, fc7) block, then four extras.
_TORCHVISION_VGG = dict(
    zip(
        [f"backbone.features.{i}" for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21)]
        + [f"backbone.extra.0.{i}" for i in (1, 3, 5)]
        + ["backbone.extra.0.7.1", "backbone.extra.0.7.3"],
        VGG16_LAYER_NAMES,
    )
)
_TORCHVISION_EXTRAS = dict(
    zip([f"backbone.extra.{i}.{j}" for i in range(1, 5) for j in (0, 2)], EXTRA_LAYER_NAMES)
)


def _conv_keys(prefix):
    return [f"{prefix}.weight", f"{prefix}.bias"]


def _layer_map(vgg, extras, scale_key, box_prefix, class_prefix):
    layers = {name: _conv_keys(prefix) for prefix, name in {**vgg, **extras}.items()}
    layers["conv4_3_norm"] = [scale_key]
    for level in range(LEVELS):
        layers[f"box_head_{level}"] = _conv_keys(f"{box_prefix}.{level}")
        layers[f"class_head_{level}"] = _conv_keys(f"{class_prefix}.{level}")
    return layers


def _num_slots(state, class_prefix, source):
    key = f"{class_prefix}.0.bias"
    if key not in state:
        raise ValueError(f"{source}: lacks {key!r}; is it this peer's SSD300 state dict?")
    return state[key].shape[0] // _FIRST_LEVEL_BOXES


def _keep_columns(state, class_prefix, slots, keep):
    """The class heads restricted to the columns ``keep`` of each default box."""
    state = dict(state)
    for level in range(LEVELS):
        for key in _conv_keys(f"{class_prefix}.{level}"):
            array = state[key]
            boxes = array.shape[0] // slots
            array = array.reshape((boxes, slots) + array.shape[1:])[:, keep]
            state[key] = array.reshape((boxes * len(keep),) + array.shape[2:])
    return state


def _class_names(class_names, slots, defaults, source):
    if class_names is not None:
        return list(class_names)
    if slots - 1 in defaults:
        return list(defaults[slots - 1])
    raise ValueError(
        f"{source}: its heads predict {slots - 1} object classes (plus background); pass "
        f"class_names with {slots - 1} names"
    )


def _convert(state, layers, source, **model_kwargs):
    model = SSD300(backbone="vgg16", attention="none", input_size=300, **model_kwargs)
    assign_weights(model, state, layers, source)
    return model


def _source_name(state_dict_or_path):
    return state_dict_or_path if isinstance(state_dict_or_path, str) else "state dict"


def from_torchvision(state_dict_or_path, class_names=None, unused_slots="drop"):
    """torchvision's ``ssd300_vgg16`` as our SSD300-VGG16 (``attention="none"``).

    Args:
        state_dict_or_path: its state dict (``model.state_dict()``, arrays or tensors),
            or a ``.pth`` (needs torch), ``.npz`` or ``.safetensors`` file of it, such as
            the ``SSD300_VGG16_Weights.COCO_V1`` checkpoint.
        class_names: names of its object classes (background not counted). Default:
            COCO's for a 91-slot model (see ``unused_slots``), VOC's for 21 slots.
        unused_slots: for the 91-slot COCO model: ``"drop"`` keeps the 80 used slots as
            contiguous classes (their ids are the keys of `COCO_CATEGORIES`);
            ``"keep"`` keeps all 90 slots, the unused ones named ``"unused_<id>"``, so
            that scores equal torchvision's (whose softmax runs over all 91).

    Returns:
        A ``keras.Model`` from ``SSD300`` with the ``"torchvision"`` default boxes,
        ``preprocessing="torchvision"`` and the class names stored; it takes RGB in
        [0, 255] at 300 x 300.

    Raises:
        ValueError: an unreadable file, or a state dict of another layout.
    """
    if unused_slots not in ("drop", "keep"):
        raise ValueError(f"unused_slots must be 'drop' or 'keep'; got {unused_slots!r}")
    source = _source_name(state_dict_or_path)
    state = read_state_dict(state_dict_or_path)
    class_prefix = "head.classification_head.module_list"
    slots = _num_slots(state, class_prefix, source)
    if slots == 91 and class_names is None:
        if unused_slots == "drop":
            ids = sorted(COCO_CATEGORIES)
            state = _keep_columns(state, class_prefix, slots, [0] + ids)
            class_names = [COCO_CATEGORIES[i] for i in ids]
        else:
            class_names = [COCO_CATEGORIES.get(i, f"unused_{i}") for i in range(1, slots)]
    class_names = _class_names(class_names, slots, {20: VOC_CLASSES}, source)
    layers = _layer_map(
        _TORCHVISION_VGG,
        _TORCHVISION_EXTRAS,
        "backbone.scale_weight",
        "head.regression_head.module_list",
        class_prefix,
    )
    return _convert(
        state,
        layers,
        source,
        class_names=class_names,
        anchor_preset="torchvision",
        preprocessing="torchvision",
    )


def from_ssd_pytorch(state_dict_or_path, class_names=None, anchor_preset=None):
    """ssd.pytorch's SSD300 (amdegroot/ssd.pytorch) as our SSD300-VGG16.

    Args:
        state_dict_or_path: its state dict, or a ``.pth`` (needs torch), ``.npz`` or
            ``.safetensors`` file of it, such as ``ssd300_mAP_77.43_v2.pth`` (VOC).
        class_names: names of its object classes (background not counted). Default:
            VOC's for 21 outputs, COCO's 80 (in id order, as its ``COCO_CLASSES``) for 81.
        anchor_preset: the default boxes it was trained with; default ``"voc"``, or
            ``"coco"`` for an 81-output model (ssd.pytorch's ``voc`` and ``coco``
            configs).

    Returns:
        A ``keras.Model`` from ``SSD300`` with ``preprocessing="ssd.pytorch"`` (BGR minus
        (104, 117, 123) inside the model) and the class names stored; it takes RGB in
        [0, 255] at 300 x 300.

    Raises:
        ValueError: an unreadable file, or a state dict of another layout.
    """
    source = _source_name(state_dict_or_path)
    state = read_state_dict(state_dict_or_path)
    slots = _num_slots(state, "conf", source)
    coco_names = [COCO_CATEGORIES[i] for i in sorted(COCO_CATEGORIES)]
    class_names = _class_names(class_names, slots, {20: VOC_CLASSES, 80: coco_names}, source)
    if anchor_preset is None:
        anchor_preset = "coco" if slots == 81 else "voc"
    layers = _layer_map(
        {f"vgg.{i}": name for i, name in SSD_PYTORCH_VGG.items()},
        dict(zip([f"extras.{i}" for i in range(8)], EXTRA_LAYER_NAMES)),
        "L2Norm.weight",
        "loc",
        "conf",
    )
    return _convert(
        state,
        layers,
        source,
        class_names=class_names,
        anchor_preset=anchor_preset,
        preprocessing="ssd.pytorch",
    )
