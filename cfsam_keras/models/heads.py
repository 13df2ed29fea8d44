"""SSD's convolutional prediction heads and the layer that gathers their outputs."""

import copy

import keras
from keras import ops

from cfsam_keras.defaults import VARIANCES
from cfsam_keras.validation import positive_int


def _plain(value):
    """Turns tuples and numpy scalars into JSON-friendly lists and Python numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _plain(value.tolist())
    return value


@keras.saving.register_keras_serializable(package="cfsam_keras")
class SSDPredictions(keras.layers.Layer):
    """Concatenates per-level head outputs into one ``[B, A, 4 + num_classes + 1]`` tensor.

    The default boxes come in the order (level, row, column, box kind), the order
    ``cfsam_keras.anchors.default_boxes`` produces. The layer also carries what a saved
    model needs to be used without its training code: ``num_classes``, the class names,
    the ``anchor_config`` and the box-encoding ``variances`` (read them with
    ``cfsam_keras.models.model_config``).

    Args:
        num_classes: int, number of object classes (background not counted).
        anchor_config: dict from ``cfsam_keras.anchors.anchor_config``.
        class_names: optional list of ``num_classes`` names, index = class.
        variances: the centre and size variances the box offsets are encoded with.

    Call arguments:
        inputs: list of ``2 * L`` tensors: the L box-offset maps ``[B, H_l, W_l, k_l * 4]``
            then the L class maps ``[B, H_l, W_l, k_l * (num_classes + 1)]``.

    Returns:
        Tensor ``[B, A, 4 + num_classes + 1]``: 4 encoded offsets, then class logits with
        index 0 = background.

    Example:
    >>> from cfsam_keras.anchors import anchor_config, boxes_per_location
    >>> config = anchor_config("voc")
    >>> k = boxes_per_location(config["aspect_ratios"])
    >>> maps = [np.zeros((1, s, s, n * 4)) for s, n in zip(config["feature_sizes"], k)]
    >>> maps += [np.zeros((1, s, s, n * 21)) for s, n in zip(config["feature_sizes"], k)]
    >>> SSDPredictions(num_classes=20, anchor_config=config)(maps).shape
    (1, 8732, 25)
    """

    def __init__(self, num_classes, anchor_config, class_names=None, variances=VARIANCES, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = positive_int(num_classes, "num_classes")
        missing = {"feature_sizes", "aspect_ratios"} - set(anchor_config)
        if missing:
            raise ValueError(f"anchor_config lacks the keys {sorted(missing)}")
        self.anchor_config = _plain(copy.deepcopy(anchor_config))
        self.class_names = check_class_names(class_names, self.num_classes)
        if len(variances) != 2 or min(variances) <= 0:
            raise ValueError(f"variances must be two positive floats; received {variances!r}")
        self.variances = tuple(float(v) for v in variances)

    def _num_levels(self):
        return len(self.anchor_config["feature_sizes"])

    def build(self, input_shape):
        levels = self._num_levels()
        if len(input_shape) != 2 * levels:
            raise ValueError(
                f"SSDPredictions expects {2 * levels} maps (box maps then class maps for "
                f"{levels} levels), got {len(input_shape)}"
            )
        for level, size in enumerate(self.anchor_config["feature_sizes"]):
            size = tuple(size) if isinstance(size, list) else (size, size)
            for shape in (input_shape[level], input_shape[levels + level]):
                if tuple(shape[1:3]) != size:
                    raise ValueError(
                        f"level {level}: map of shape {tuple(shape)} does not match the "
                        f"anchor_config feature size {size}"
                    )
        self.built = True

    def call(self, inputs):
        levels = self._num_levels()
        boxes, classes = [], []
        for level in range(levels):
            box_map, class_map = inputs[level], inputs[levels + level]
            batch = ops.shape(box_map)[0]
            boxes.append(ops.reshape(box_map, (batch, -1, 4)))
            classes.append(ops.reshape(class_map, (batch, -1, self.num_classes + 1)))
        return ops.concatenate(
            [ops.concatenate(boxes, axis=1), ops.concatenate(classes, axis=1)], axis=-1
        )

    def compute_output_shape(self, input_shape):
        levels = self._num_levels()
        num_boxes = 0
        for shape in input_shape[:levels]:
            num_boxes += shape[1] * shape[2] * shape[3] // 4
        return (input_shape[0][0], num_boxes, 4 + self.num_classes + 1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "anchor_config": copy.deepcopy(self.anchor_config),
                "class_names": None if self.class_names is None else list(self.class_names),
                "variances": list(self.variances),
            }
        )
        return config


def check_class_names(class_names, num_classes):
    """``class_names`` as a list of ``num_classes`` one-line strings, or ``None``."""
    if class_names is None:
        return None
    if isinstance(class_names, str):
        raise ValueError(f"class_names must be a list of names, not the string {class_names!r}")
    names = [str(n) for n in class_names]
    if len(names) != num_classes:
        raise ValueError(
            f"class_names has {len(names)} names but the model has {num_classes} object classes"
        )
    bad = [n for n in names if not n.strip() or "\n" in n]
    if bad:
        raise ValueError(f"class_names must be non-empty one-line strings; received {bad[:3]!r}")
    return names


def prediction_heads(sources, boxes_per_location, num_classes):
    """SSD's heads: per level a 3x3 convolution for offsets and one for class logits.

    Args:
        sources: list of L Keras tensors (the source maps, after any attention module).
        boxes_per_location: list of L ints, default boxes per cell of each level.
        num_classes: int, object classes (the heads predict ``num_classes + 1``).

    Returns:
        List of 2L tensors: the L box maps then the L class maps, ready for
        ``SSDPredictions``.
    """
    box_maps, class_maps = [], []
    for level, (x, k) in enumerate(zip(sources, boxes_per_location)):
        box_maps.append(keras.layers.Conv2D(k * 4, 3, padding="same", name=f"box_head_{level}")(x))
        class_maps.append(
            keras.layers.Conv2D(
                k * (num_classes + 1), 3, padding="same", name=f"class_head_{level}"
            )(x)
        )
    return box_maps + class_maps
