"""The SSD300 model builder and reading default boxes back from a model."""

import keras

from cfsam_keras.anchors import anchor_config
from cfsam_keras.anchors import boxes_per_location
from cfsam_keras.anchors import default_boxes
from cfsam_keras.layers import ATTENTION_MODULES
from cfsam_keras.layers import attention_module
from cfsam_keras.models.heads import SSDPredictions
from cfsam_keras.models.heads import prediction_heads
from cfsam_keras.models.mobilenet_v2 import mobilenet_v2_source_maps
from cfsam_keras.models.preprocessing import PREPROCESSING
from cfsam_keras.models.preprocessing import InputPreprocessing
from cfsam_keras.models.small_vgg import small_vgg_source_maps
from cfsam_keras.models.vgg16 import vgg16_feature_sizes
from cfsam_keras.models.vgg16 import vgg16_source_maps
from cfsam_keras.models.weights import load_backbone_weights

#: Backbones and the keyword arguments each takes in ``backbone_kwargs``.
BACKBONES = {"vgg16": (), "mobilenet_v2": ("alpha", "extra_channels"), "small_vgg": ("widths",)}

#: The input preprocessing each backbone's own (ImageNet) weights expect.
BACKBONE_PREPROCESSING = {"vgg16": "caffe", "mobilenet_v2": "tf", "small_vgg": "tf"}

#: Attention modules placed between the source maps and the heads.
ATTENTIONS = ("none",) + tuple(ATTENTION_MODULES)


def _num_classes(num_classes, class_names):
    if num_classes is None:
        if class_names is None:
            raise ValueError("SSD300 needs num_classes or class_names")
        num_classes = len(class_names)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(
            f"num_classes must be a positive int (object classes, background not "
            f"counted); got {num_classes!r}"
        )
    return num_classes


def _check_arguments(backbone, attention, input_size, backbone_kwargs, preprocessing):
    if backbone not in BACKBONES:
        raise ValueError(f"Unknown backbone {backbone!r}; expected one of {sorted(BACKBONES)}")
    if preprocessing is not None and preprocessing not in PREPROCESSING:
        raise ValueError(
            f"Unknown preprocessing {preprocessing!r}; expected None (the backbone's own) "
            f"or one of {sorted(PREPROCESSING)}"
        )
    if attention not in ATTENTIONS:
        raise ValueError(f"Unknown attention {attention!r}; expected one of {list(ATTENTIONS)}")
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 32:
        raise ValueError(f"input_size must be an int >= 32; got {input_size!r}")
    unknown = set(backbone_kwargs) - set(BACKBONES[backbone])
    if unknown:
        raise ValueError(
            f"backbone_kwargs {sorted(unknown)} are not understood by backbone "
            f"{backbone!r}; it takes {list(BACKBONES[backbone]) or 'none'}"
        )


def SSD300(
    num_classes=None,
    backbone="vgg16",
    attention="cfsam",
    input_size=300,
    anchor_preset="voc",
    backbone_weights=None,
    attention_kwargs=None,
    backbone_kwargs=None,
    class_names=None,
    preprocessing=None,
):
    """Builds an SSD300 detector with an attention module before its heads.

    Args:
        num_classes: int, number of object classes (background not counted); may be
            left out when ``class_names`` is given.
        backbone: ``"vgg16"`` (SSD's modified VGG16, the published SSD300),
            ``"mobilenet_v2"`` (``keras.applications.MobileNetV2`` at strides 16 and 32
            plus four extra blocks; small and fast, for phones) or ``"small_vgg"`` (a
            small VGG-style stack with BatchNorm at strides 8 .. 256, no ImageNet
            weights; for training from scratch on a CPU).
        attention: ``"none"``, ``"cfsam"``, ``"se"``, ``"cbam"`` or ``"eca"``: the module
            applied to the six source maps before the heads.
        input_size: int, side of the square input. For ``"vgg16"`` at least 268; the
            default boxes follow the sizes of the built source maps.
        anchor_preset: ``"voc"`` or ``"coco"``, the default-box sizes
            (``cfsam_keras.anchors.PRESETS``; ``"torchvision"`` is the COCO sizes
            clamped as torchvision's ``ssd300_vgg16`` does).
        backbone_weights: ``None`` (random), ``"imagenet"`` (through
            ``keras.applications``; needs internet the first time; for vgg16 SSD's
            start: the convolutions and the reduced fc6 / fc7 of
            ``VGG16(include_top=True)``), or a file: ``.h5`` / ``.weights.h5`` of this
            whole SSD model or of the ``keras.applications`` backbone (VGG16 with or
            without top, ``MobileNetV2(include_top=False, alpha=...)``), told apart by
            the file's array shapes; or for vgg16 ssd.pytorch's ``vgg16_reducedfc.pth``
            (or ``.npz`` / ``.safetensors``). See ``load_backbone_weights``.
        attention_kwargs: optional dict of keyword arguments for the attention module.
        backbone_kwargs: optional dict; ``"mobilenet_v2"`` takes ``alpha`` (width
            multiplier, default 1.0) and ``extra_channels`` (four ints, default
            ``(512, 256, 256, 128)``); ``"small_vgg"`` takes ``widths`` (four ints,
            default ``(24, 48, 96, 192)``); ``"vgg16"`` takes none.
        class_names: optional list of ``num_classes`` names (index = class), stored in
            the model so that its predictions, evaluations and exports name its classes.
        preprocessing: what the model does to its RGB [0, 255] input before the
            backbone: ``None`` for what the backbone's ImageNet weights expect
            (``BACKBONE_PREPROCESSING``: ``"caffe"`` for vgg16, ``"tf"`` for the
            others), or a mode of ``cfsam_keras.models.InputPreprocessing``
            (``"caffe"``, ``"ssd.pytorch"``, ``"torchvision"``, ``"tf"``), as a model
            converted from a peer's weights needs. Stored in the model.

    Returns:
        A functional ``keras.Model``: input float32 ``[B, input_size, input_size, 3]``, RGB
        in [0, 255] (the backbone's preprocessing happens inside); output
        ``[B, A, 4 + num_classes + 1]``, the encoded box offsets of the A default boxes
        then class logits, index 0 = background. Its last layer, ``"predictions"``, holds
        ``num_classes``, the class names, ``anchor_config`` and the box-encoding variances
        in its config (``model_config`` reads them).

    Example:
    >>> model = SSD300(num_classes=20, attention="none")
    >>> model.output_shape
    (None, 8732, 25)
    """
    num_classes = _num_classes(num_classes, class_names)
    backbone_kwargs = dict(backbone_kwargs or {})
    attention_kwargs = dict(attention_kwargs or {})
    _check_arguments(backbone, attention, input_size, backbone_kwargs, preprocessing)
    if backbone == "vgg16":
        vgg16_feature_sizes(input_size)  # raises early for too small inputs

    images = keras.Input(shape=(input_size, input_size, 3), name="images")
    mode = preprocessing or BACKBONE_PREPROCESSING[backbone]
    x = InputPreprocessing(mode, name="preprocessing")(images)
    if backbone == "vgg16":
        sources = vgg16_source_maps(x)
    elif backbone == "small_vgg":
        sources = small_vgg_source_maps(x, **backbone_kwargs)
    else:
        sources = mobilenet_v2_source_maps(x, **backbone_kwargs)

    feature_sizes = [int(s.shape[1]) for s in sources]
    config = anchor_config(anchor_preset, input_size, feature_sizes)

    if attention != "none":
        sources = attention_module(attention, **attention_kwargs)(sources)

    maps = prediction_heads(sources, boxes_per_location(config["aspect_ratios"]), num_classes)
    outputs = SSDPredictions(num_classes, config, class_names=class_names, name="predictions")(maps)
    name = f"ssd{input_size}_{backbone}" + ("" if attention == "none" else f"_{attention}")
    model = keras.Model(images, outputs, name=name)
    load_backbone_weights(
        model, backbone_weights, backbone, alpha=backbone_kwargs.get("alpha", 1.0)
    )
    return model


def _find_predictions_layer(model):
    for layer in model.layers:
        if isinstance(layer, SSDPredictions):
            return layer
        if isinstance(layer, keras.Model):
            found = _find_predictions_layer(layer)
            if found is not None:
                return found
    return None


def model_config(model):
    """What an SSD model (or a detector built on one) says about itself: the one reader.

    Args:
        model: a model from ``SSD300`` or ``detector``, freshly built or reloaded.

    Returns:
        Dict with ``num_classes`` (int), ``class_names`` (list of ``num_classes`` names:
        the stored ones, else ``"class_0"``, ``"class_1"``, ...), ``anchor_config``
        (dict), ``variances`` (pair of floats) and ``input_size`` (int, the side of the
        square input).

    Raises:
        ValueError: if the model has no ``SSDPredictions`` layer or no fixed square
            RGB input.
    """
    layer = _find_predictions_layer(model)
    if layer is None:
        raise ValueError(
            f"Model {model.name!r} has no SSDPredictions layer; is it an SSD300 model?"
        )
    shape = model.input_shape
    if isinstance(shape, list):
        shape = shape[0]
    if len(shape) != 4 or shape[1] is None or shape[1] != shape[2] or shape[3] != 3:
        raise ValueError(
            f"Model {model.name!r}: expected a fixed square RGB input [B, S, S, 3], "
            f"got input shape {shape}"
        )
    names = layer.class_names or [f"class_{i}" for i in range(layer.num_classes)]
    return {
        "num_classes": layer.num_classes,
        "class_names": list(names),
        "anchor_config": dict(layer.anchor_config),
        "variances": tuple(layer.variances),
        "input_size": int(shape[1]),
    }


def model_default_boxes(model):
    """The default boxes of an SSD model, from its config (no rebuilding, no weights).

    Works on a freshly built model, a reloaded ``.keras`` model and a detector.

    Args:
        model: a model from ``SSD300`` or ``detector``.

    Returns:
        ``np.float32 [A, 4]`` default boxes, ``"rel_center_xywh"``, in the order of the
        model's output.

    Example:
    >>> model = SSD300(num_classes=20, attention="none")
    >>> model_default_boxes(model).shape
    (8732, 4)
    """
    return default_boxes(**model_config(model)["anchor_config"])
