"""ONNX export with decoding and per-class NMS inside, standard operators only.

The ONNX model takes ``images`` uint8 ``[B, S, S, 3]`` RGB (S the model's input
size; resize before; B fixed or dynamic) and returns the TFLite file's outputs,
in this order:
``detection_boxes`` float32 ``[B, K, 4]`` (normalised ``(ymin, xmin, ymax, xmax)``,
as the SavedModel's), ``detection_classes`` int32 ``[B, K]`` (0-based),
``detection_scores`` float32 ``[B, K]``, ``num_detections`` int32 ``[B]`` and
``raw_predictions`` float32 ``[B, A, 4 + num_classes + 1]`` (the Keras model's output).

Decoding and NMS are the Keras detector's own layers (``PerClassNMS`` with
``method="class_offset"``), converted by tf2onnx: each image's NMS is one ONNX
``NonMaxSuppression`` (inside a ``Loop`` over the batch when B is dynamic), so
ONNX Runtime's default build runs the file without custom operators. The class
names, input size and inference settings are in the model's metadata
(``metadata_props``; ``read_metadata`` reads them back).
"""

import json

import numpy as np
import tensorflow as tf

from cfsam_keras.export.common import check_tensorflow_backend
from cfsam_keras.export.common import detection_function
from cfsam_keras.export.common import effective_settings
from cfsam_keras.export.common import float32_model
from cfsam_keras.export.common import write_file
from cfsam_keras.models import check_class_names
from cfsam_keras.models import model_config
from cfsam_keras.validation import positive_int

#: The ONNX opset the file targets (ONNX Runtime 1.16 and later, TensorRT 8.6 and later).
ONNX_OPSET = 17
#: Operator domains a file may use: the standard ONNX ones only.
STANDARD_DOMAINS = ("", "ai.onnx")
_INSTALL = "pip install 'cfsam-keras[onnx]' (tf2onnx and onnxruntime)"


def _import_tf2onnx():
    try:
        import tf2onnx  # noqa: PLC0415 (optional extra)
    except ImportError:
        raise ImportError(f"ONNX export needs tf2onnx: {_INSTALL}") from None
    return tf2onnx


def _erfc_as_erf(ctx, node, name, args):
    """tf2onnx handler: TF's exact GELU uses Erfc, which ONNX lacks; erfc(x) = 1 - erf(x)."""
    from tf2onnx import utils  # noqa: PLC0415 (optional extra)

    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
    node.type = "Erf"
    one = ctx.make_const(utils.make_name(f"{name}_one"), np.array(1, dtype))
    ctx.insert_new_node_on_output("Sub", node.output[0], inputs=[one.output[0], node.output[0]])


def operator_domains(model_proto):
    """The set of ``(domain, op_type)`` of every node, subgraphs (``Loop`` bodies) included."""
    found = set()

    def visit(graph):
        for node in graph.node:
            found.add((node.domain, node.op_type))
            for attribute in node.attribute:
                if attribute.g.node:
                    visit(attribute.g)
                for sub in attribute.graphs:
                    visit(sub)

    visit(model_proto.graph)
    return found


def read_metadata(metadata_props):
    """The metadata ``export_onnx`` stores, from a mapping of ``metadata_props``.

    Args:
        metadata_props: ``{key: value}`` strings, e.g. ONNX Runtime's
            ``session.get_modelmeta().custom_metadata_map``.

    Returns:
        Dict with ``class_names`` (list), ``input_size`` (int) and ``settings`` (dict),
        each ``None`` where the file lacks it.
    """

    def get(key, parse):
        return parse(metadata_props[key]) if key in metadata_props else None

    return {
        "class_names": get("class_names", json.loads),
        "input_size": get("input_size", int),
        "settings": get("inference_settings", json.loads),
    }


def export_onnx(model, path, batch_size=None, class_names=None, opset=ONNX_OPSET, **settings):
    """Converts an SSD model to an ONNX file with decoding and per-class NMS inside.

    Args:
        model: an SSD Keras model from ``cfsam_keras.models.SSD300``.
        path: the ``.onnx`` file to write (atomically: renamed into place when complete).
        batch_size: a fixed batch size, or ``None`` for a dynamic batch dimension.
        class_names: list of ``num_classes`` names; default: the model's own. Stored
            in the file's metadata.
        opset: the ONNX opset to target.
        **settings: the inference settings of ``cfsam_keras.models.postprocessor``
            (``score_threshold``, ``iou_threshold``, ``max_detections``,
            ``pre_nms_top_k``); SSD's when left out.

    Returns:
        ``path``.

    Example:

    >>> export_onnx(model, "exports/ssd300/ssd300.onnx")
    >>> session = onnxruntime.InferenceSession("exports/ssd300/ssd300.onnx")
    >>> boxes, classes, scores, num, raw = session.run(None, {"images": images})
    """
    check_tensorflow_backend("export_onnx")
    model = float32_model(model)
    positive_int(batch_size, "batch_size", allow_none=True)
    positive_int(opset, "opset")
    tf2onnx = _import_tf2onnx()
    config = model_config(model)
    input_size = config["input_size"]
    class_names = check_class_names(class_names, config["num_classes"]) or config["class_names"]
    spec = [tf.TensorSpec([batch_size, input_size, input_size, 3], tf.uint8, name="images")]
    function = tf.function(detection_function(model, **settings), input_signature=spec)
    model_proto, _ = tf2onnx.convert.from_function(
        function,
        input_signature=spec,
        opset=opset,
        custom_op_handlers={"Erfc": (_erfc_as_erf, ())},
    )
    foreign = sorted(d for d in operator_domains(model_proto) if d[0] not in STANDARD_DOMAINS)
    if foreign:
        raise RuntimeError(f"the ONNX graph uses non-standard operators {foreign}")
    metadata = {
        "class_names": json.dumps(list(class_names)),
        "input_size": str(input_size),
        "inference_settings": json.dumps(effective_settings(**settings), sort_keys=True),
    }
    for key, value in metadata.items():
        entry = model_proto.metadata_props.add()
        entry.key, entry.value = key, value

    write_file(path, model_proto.SerializeToString())
    return path
