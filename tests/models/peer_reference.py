"""The peers' SSD300 state-dict layouts, seeded state dicts, and their forward pass.

The forward pass here follows the peers' modules (torchvision's
``SSDFeatureExtractorVGG`` / ``SSDHead`` and ssd.pytorch's ``SSD``) from the state dict
alone: PyTorch's padding, ceil-mode pooling and head flattening are written out by
hand, and no code of ``cfsam_keras`` is used, so a conversion is checked against an
evaluation of the same weights that does not share its key map.
"""

import numpy as np
from keras import ops

# (out, in) of VGG16's convolutions, as the peers index them in their Sequential /
# ModuleList: (index, out, in, kernel, dilation).
_VGG = [
    (0, 64, 3), (2, 64, 64), (5, 128, 64), (7, 128, 128), (10, 256, 128), (12, 256, 256),
    (14, 256, 256), (17, 512, 256), (19, 512, 512), (21, 512, 512), (24, 512, 512),
    (26, 512, 512), (28, 512, 512),
]  # fmt: skip
# SSD300's extra layers: (out, in, kernel, stride, padding).
_EXTRAS = [
    (256, 1024, 1, 1, 0), (512, 256, 3, 2, 1), (128, 512, 1, 1, 0), (256, 128, 3, 2, 1),
    (128, 256, 1, 1, 0), (256, 128, 3, 1, 0), (128, 256, 1, 1, 0), (256, 128, 3, 1, 0),
]  # fmt: skip
_SOURCE_CHANNELS = (512, 1024, 512, 256, 256, 256)
BOXES = (4, 6, 6, 6, 4, 4)


def _torchvision_vgg_keys():
    keys = [f"backbone.features.{i}" for i, *_ in _VGG[:10]]
    keys += [f"backbone.extra.0.{i}" for i in (1, 3, 5)]
    return keys


def torchvision_shapes(slots=91):
    """torchvision ``ssd300_vgg16(num_classes=slots)``: every key and its shape."""
    shapes = {"backbone.scale_weight": (512,)}
    for key, (_, out, inp) in zip(_torchvision_vgg_keys(), _VGG):
        shapes[f"{key}.weight"], shapes[f"{key}.bias"] = (out, inp, 3, 3), (out,)
    shapes["backbone.extra.0.7.1.weight"], shapes["backbone.extra.0.7.1.bias"] = (
        (1024, 512, 3, 3),
        (1024,),
    )
    shapes["backbone.extra.0.7.3.weight"], shapes["backbone.extra.0.7.3.bias"] = (
        (1024, 1024, 1, 1),
        (1024,),
    )
    for n, (out, inp, k, _, _) in enumerate(_EXTRAS):
        key = f"backbone.extra.{n // 2 + 1}.{2 * (n % 2)}"
        shapes[f"{key}.weight"], shapes[f"{key}.bias"] = (out, inp, k, k), (out,)
    for head, columns in (("classification", slots), ("regression", 4)):
        for level, (c, k) in enumerate(zip(_SOURCE_CHANNELS, BOXES)):
            key = f"head.{head}_head.module_list.{level}"
            shapes[f"{key}.weight"], shapes[f"{key}.bias"] = (k * columns, c, 3, 3), (k * columns,)
    return shapes


def ssd_pytorch_shapes(slots=21):
    """ssd.pytorch ``build_ssd("train", 300, slots)``: every key and its shape."""
    shapes = {"L2Norm.weight": (512,)}
    for i, out, inp in _VGG:
        shapes[f"vgg.{i}.weight"], shapes[f"vgg.{i}.bias"] = (out, inp, 3, 3), (out,)
    shapes["vgg.31.weight"], shapes["vgg.31.bias"] = (1024, 512, 3, 3), (1024,)
    shapes["vgg.33.weight"], shapes["vgg.33.bias"] = (1024, 1024, 1, 1), (1024,)
    for n, (out, inp, k, _, _) in enumerate(_EXTRAS):
        shapes[f"extras.{n}.weight"], shapes[f"extras.{n}.bias"] = (out, inp, k, k), (out,)
    for head, columns in (("conf", slots), ("loc", 4)):
        for level, (c, k) in enumerate(zip(_SOURCE_CHANNELS, BOXES)):
            shapes[f"{head}.{level}.weight"] = (k * columns, c, 3, 3)
            shapes[f"{head}.{level}.bias"] = (k * columns,)
    return shapes


def seeded_state(shapes, seed=0):
    """Random weights of the given shapes, scaled so activations stay O(1)."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, shape in shapes.items():
        if len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = rng.normal(0, np.sqrt(2.0 / fan_in), shape).astype(np.float32)
        elif key.endswith(("scale_weight", "L2Norm.weight")):
            state[key] = rng.uniform(10, 30, shape).astype(np.float32)
        else:
            state[key] = rng.normal(0, 0.1, shape).astype(np.float32)
    return state


def _conv(x, state, key, padding=1, stride=1, dilation=1, relu=True):
    """PyTorch's Conv2d (zero padding on every side) on an NHWC array."""
    weight = np.transpose(state[f"{key}.weight"], (2, 3, 1, 0))  # OIHW -> HWIO
    x = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    y = ops.conv(x, weight, strides=stride, padding="valid", dilation_rate=dilation)
    y = np.asarray(y) + state[f"{key}.bias"]
    return np.maximum(y, 0) if relu else y


def _max_pool(x, size, stride, padding=0, ceil_mode=False):
    """PyTorch's MaxPool2d: padding and the ceil-mode remainder never win the max."""
    h = x.shape[1] + 2 * padding
    extra = (-(h - size) % stride) if ceil_mode else 0
    x = np.pad(
        x,
        ((0, 0), (padding, padding + extra), (padding, padding + extra), (0, 0)),
        constant_values=-np.inf,
    )
    return np.asarray(ops.max_pool(x, size, strides=stride, padding="valid"))


def _vgg_sources(x, state, conv_keys, fc6, fc7, norm_scale, norm):
    """conv4_3 (L2-normalised) and fc7 of SSD's VGG16."""
    for n, key in enumerate(conv_keys):
        x = _conv(x, state, key)
        if n in (1, 3):
            x = _max_pool(x, 2, 2)
        if n == 6:
            x = _max_pool(x, 2, 2, ceil_mode=True)
        if n == 9:
            sources = [norm(x) * norm_scale]
            x = _max_pool(x, 2, 2)
    x = _max_pool(x, 3, 1, padding=1)
    x = _conv(x, state, fc6, padding=6, dilation=6)
    x = _conv(x, state, fc7, padding=0)
    return sources + [x]


def _extras(sources, state, key_of):
    """Appends conv8_2 .. conv11_2 to ``sources`` (``key_of(n)``: the n-th conv's key)."""
    x = sources[-1]
    for n, (*_, stride, padding) in enumerate(_EXTRAS):
        x = _conv(x, state, key_of(n), padding, stride)
        if n % 2:
            sources.append(x)


def _heads(sources, state, box_prefix, class_prefix):
    """Each head's NCHW output viewed (N, boxes, columns, H, W), then (N, H, W, boxes)."""
    boxes, classes = [], []
    for level, x in enumerate(sources):
        for prefix, out in ((box_prefix, boxes), (class_prefix, classes)):
            y = _conv(x, state, f"{prefix}.{level}", relu=False)
            columns = y.shape[-1] // BOXES[level]
            out.append(y.reshape(len(y), -1, columns))
    return np.concatenate(boxes, 1), np.concatenate(classes, 1)


def torchvision_forward(state, images):
    """torchvision ``ssd300_vgg16`` on RGB [0, 255] images ``[N, 300, 300, 3]``.

    Returns:
        ``(bbox_regression [N, 8732, 4], cls_logits [N, 8732, slots])``.
    """
    mean = np.array([0.48235, 0.45882, 0.40784], np.float32)
    std = np.array([1 / 255.0] * 3, np.float32)
    x = (images.astype(np.float32) / 255.0 - mean) / std

    def normalize(t):  # F.normalize(t, dim=1)
        return t / np.maximum(np.sqrt((t * t).sum(-1, keepdims=True)), 1e-12)

    sources = _vgg_sources(
        x,
        state,
        _torchvision_vgg_keys(),
        "backbone.extra.0.7.1",
        "backbone.extra.0.7.3",
        state["backbone.scale_weight"],
        normalize,
    )
    _extras(sources, state, lambda n: f"backbone.extra.{n // 2 + 1}.{2 * (n % 2)}")
    return _heads(
        sources, state, "head.regression_head.module_list", "head.classification_head.module_list"
    )


def ssd_pytorch_forward(state, images):
    """ssd.pytorch's SSD300 on RGB [0, 255] images: BGR minus (104, 117, 123) first.

    Returns:
        ``(loc [N, 8732, 4], conf [N, 8732, slots])``.
    """
    x = images.astype(np.float32)[..., ::-1] - np.array([104.0, 117.0, 123.0], np.float32)

    def normalize(t):  # ssd.pytorch's L2Norm
        return t / (np.sqrt((t * t).sum(-1, keepdims=True)) + 1e-10)

    sources = _vgg_sources(
        x,
        state,
        [f"vgg.{i}" for i, *_ in _VGG],
        "vgg.31",
        "vgg.33",
        state["L2Norm.weight"],
        normalize,
    )
    _extras(sources, state, lambda n: f"extras.{n}")
    return _heads(sources, state, "loc", "conf")
