"""SavedModel and TFLite exports: signatures, errors, parity with Keras, CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from export_helpers import NUM_CLASSES
from export_helpers import SIZE
from export_helpers import assert_matched
from export_helpers import box_iou
from export_helpers import cli
from export_helpers import keras_detections
from export_helpers import random_images
from export_helpers import saved_model_cli

from cfsam_keras.data import BUILTIN_CLASSES
from cfsam_keras.models import model_config

# --- quick tests ---------------------------------------------------------------------------


def test_next_version(tmp_path):
    from cfsam_keras.export import next_version

    assert next_version(str(tmp_path / "missing")) == 1
    for name in ("1", "3", ".tmp-4-x", "notes"):
        (tmp_path / name).mkdir()
    assert next_version(str(tmp_path)) == 4


def test_box_iou():
    iou = box_iou(
        np.array([[0, 0, 1, 1]]), np.array([[0, 0, 1, 1], [0.5, 0, 1.5, 1], [2, 2, 3, 3]])
    )
    np.testing.assert_allclose(iou[0], [1.0, 1 / 3, 0.0])


def test_representative_images_validates_and_resizes():
    from cfsam_keras.export.tflite import _representative_images

    images = list(_representative_images([np.zeros((2, 40, 50, 3))], 32, limit=5))
    assert len(images) == 2 and images[0][0].shape == (1, 32, 32, 3)
    assert images[0][0].dtype == np.uint8
    with pytest.raises(ValueError, match="RGB images"):
        list(_representative_images([np.zeros((4, 4))], 32, limit=5))
    with pytest.raises(ValueError, match="no images"):
        list(_representative_images([], 32, limit=5))


def test_cli_one_line_errors(tmp_path):
    code, message = cli(
        "export", "--model", "model.h5", "--format", "tflite", "--out", str(tmp_path)
    )
    assert code == 2 and "must be a .keras file" in message
    code, message = cli(
        "export", "--model", str(tmp_path / "x.keras"), "--format", "tflite", "--out", str(tmp_path)
    )
    assert code == 2 and "no such file" in message
    code, message = cli("predict", "--tflite", "m.tflite", str(tmp_path / "missing"))
    assert code == 2 and "no such file or folder" in message and "missing" in message
    code, message = cli("predict", "--tflite", "m.tflite", str(tmp_path))
    assert code == 2 and "no images" in message
    (tmp_path / "a.png").write_bytes(b"not a png")
    code, message = cli("predict", "--tflite", str(tmp_path / "none.tflite"), str(tmp_path))
    assert code == 2 and "existing .tflite file" in message


def test_predict_request_proto():
    """The gRPC client of docs/export.md builds a valid PredictRequest."""
    pytest.importorskip("tensorflow_serving")
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "ssd300_cfsam"
    request.model_spec.signature_name = "serving_default"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(np.zeros((1, 4, 5, 3), np.uint8)))
    parsed = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    assert tf.make_ndarray(parsed.inputs["images"]).shape == (1, 4, 5, 3)


# --- SavedModel ----------------------------------------------------------------------------


@pytest.mark.slow
def test_saved_model_layout_and_cli(saved_model_dir, tmp_path):
    base = os.path.dirname(saved_model_dir)
    assert os.path.basename(saved_model_dir) == "1"
    assert sorted(os.listdir(base)) == ["1"]  # no temporary folder left behind
    for name in ("saved_model.pb", "variables", "assets.extra/class_names.txt"):
        assert os.path.exists(os.path.join(saved_model_dir, name))
    cli = saved_model_cli()
    shown = subprocess.run(
        [cli, "show", "--dir", saved_model_dir, "--all"], capture_output=True, text=True, check=True
    ).stdout
    assert "signature_def['serving_default']" in shown and "signature_def['serving_bytes']" in shown
    assert "detection_boxes" in shown and "DT_UINT8" in shown and "DT_STRING" in shown
    np.save(tmp_path / "images.npy", np.zeros((1, 50, 70, 3), np.uint8))
    ran = subprocess.run(
        [
            cli,
            "run",
            "--dir",
            saved_model_dir,
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--inputs",
            f"images={tmp_path / 'images.npy'}",
        ],
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "num_detections" in ran.stdout and "detection_boxes" in ran.stdout


@pytest.mark.slow
def test_saved_model_matches_keras_detector(trained_model, saved_model_dir):
    import tensorflow as tf

    model, _, train_images = trained_model
    serve = tf.saved_model.load(saved_model_dir).signatures["serving_default"]
    for images in (train_images, random_images(3)):
        out = serve(images=tf.constant(images))
        expected = keras_detections(model, images)
        for i, ref in enumerate(expected):
            n = int(out["num_detections"][i])
            assert n == len(ref["boxes"])
            boxes = out["detection_boxes"].numpy()[i, :n][:, [1, 0, 3, 2]]  # yxyx -> xyxy
            np.testing.assert_allclose(boxes, ref["boxes"], atol=1e-4)
            np.testing.assert_array_equal(out["detection_classes"].numpy()[i, :n], ref["classes"])
            names = out["detection_class_names"].numpy()[i, :n].astype(str)
            assert list(names) == [model_config(model)["class_names"][c] for c in ref["classes"]]
    assert (
        sum(len(r["boxes"]) for r in keras_detections(model, train_images, score_threshold=0.3)) > 0
    )


@pytest.mark.slow
def test_saved_model_any_size_bytes_and_errors(saved_model_dir):
    import tensorflow as tf

    loaded = tf.saved_model.load(saved_model_dir)
    serve, serve_bytes = loaded.signatures["serving_default"], loaded.signatures["serving_bytes"]
    image = random_images(1, seed=5)[0]
    big = (
        tf.image.resize(image[None], [2 * SIZE, 3 * SIZE], method="nearest")
        .numpy()
        .astype(np.uint8)
    )
    # Boxes are normalised to the original image, so a stretched copy finds the same boxes.
    a, b = serve(images=tf.constant(image[None])), serve(images=tf.constant(big))
    assert int(a["num_detections"][0]) > 0
    png = tf.io.encode_png(image).numpy()
    c = serve_bytes(images=tf.constant([png, png]))
    for key in ("detection_boxes", "detection_scores", "detection_classes", "num_detections"):
        np.testing.assert_allclose(c[key].numpy()[1], a[key].numpy()[0], atol=1e-5)
    assert (
        np.abs(b["detection_scores"].numpy()[0, :5] - a["detection_scores"].numpy()[0, :5]).max()
        < 0.1
    )

    with pytest.raises(tf.errors.InvalidArgumentError, match="not a JPEG or PNG image"):
        serve_bytes(images=tf.constant([png, b"garbage"]))
    with pytest.raises((tf.errors.InvalidArgumentError, TypeError, ValueError), match="uint8"):
        serve(images=tf.constant(image[None].astype(np.float32)))
    # The signature's declared rank is not enforced when it runs: the graph checks it.
    for wrong_rank in (image, image[None, None]):
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"must be uint8 \[B, H, W, 3\]"):
            serve(images=tf.constant(wrong_rank))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"must be a string vector \[B\]"):
        serve_bytes(images=tf.constant(png))
    with pytest.raises(tf.errors.InvalidArgumentError, match="RGB"):
        serve(images=tf.constant(np.zeros((1, 8, 8, 4), np.uint8)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one image"):
        serve(images=tf.constant(np.zeros((0, 8, 8, 3), np.uint8)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one image"):
        serve_bytes(images=tf.constant([], tf.string))


def test_serving_bytes_and_predict_see_exif_oriented_images_upright(
    trained_model, saved_model_dir, tmp_path
):
    import tensorflow as tf
    from fake_data import oriented_bytes

    _, keras_path, images = trained_model
    shown = np.ascontiguousarray(images[0][:, 8:88])  # not square: a 90-degree turn shows
    serve = tf.saved_model.load(saved_model_dir).signatures
    want = serve["serving_default"](images=tf.constant(shown[None]))
    assert int(want["num_detections"][0]) > 0
    tags = (1, 3, 6, 8)
    got = serve["serving_bytes"](images=tf.constant([oriented_bytes(shown, t) for t in tags]))
    for key in ("detection_boxes", "detection_scores", "detection_classes", "num_detections"):
        for i, tag in enumerate(tags):
            np.testing.assert_allclose(
                got[key].numpy()[i], want[key].numpy()[0], atol=1e-5, err_msg=f"{key}, tag {tag}"
            )
    for tag in tags:
        (tmp_path / "in" / f"tag{tag}.png").parent.mkdir(exist_ok=True)
        (tmp_path / "in" / f"tag{tag}.png").write_bytes(oriented_bytes(shown, tag))
    out = tmp_path / "out"
    assert cli("predict", "--model", keras_path, str(tmp_path / "in"), "--out", str(out))[0] == 0
    with open(tmp_path / "out" / "detections.json") as f:
        records = json.load(f)["images"]
    assert records[0]["detections"]
    for record in records[1:]:
        assert (record["width"], record["height"]) == (80, 96)
        assert record["detections"] == records[0]["detections"], record["file"]


@pytest.mark.slow
def test_saved_model_loads_without_cfsam_keras(saved_model_dir):
    code = (
        "import sys, numpy as np, tensorflow as tf\n"
        f"m = tf.saved_model.load({saved_model_dir!r})\n"
        "out = m.signatures['serving_default'](images=tf.zeros([1, 40, 60, 3], tf.uint8))\n"
        "assert out['detection_boxes'].shape[-1] == 4\n"
        "assert not any(k.startswith('cfsam_keras') for k in sys.modules), 'cfsam_keras imported'\n"
        "print('ok')\n"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="/"
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]


@pytest.mark.slow
def test_saved_model_refuses_existing_version(trained_model, saved_model_dir):
    from cfsam_keras.export import export_saved_model

    with pytest.raises(FileExistsError, match="immutable"):
        export_saved_model(trained_model[0], os.path.dirname(saved_model_dir), version=1)


# --- TFLite --------------------------------------------------------------------------------


def _tflite_detections(path, images):
    from cfsam_keras.export import load_predictor

    predictor = load_predictor("tflite", path)
    return predictor, [predictor.predict(image) for image in images]


def _file_ops(path):
    """Names of the operators a .tflite file uses, read from its flatbuffer (not from
    an interpreter, where a delegate such as XNNPACK replaces them by DELEGATE nodes)."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if k.isupper()}
    with open(path, "rb") as f:
        model = schema.Model.GetRootAsModel(f.read(), 0)
    ops = set()
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        ops.add(
            code.CustomCode().decode()
            if builtin == schema.BuiltinOperator.CUSTOM
            else names[builtin]
        )
    return ops


def _builtin_ops_only(path):
    """Decoding and NMS are in the graph, with TFLite's builtin ops only."""
    from ai_edge_litert import schema_py_generated as schema

    builtin = {n for n in dir(schema.BuiltinOperator) if n.isupper()} - {"CUSTOM", "DELEGATE"}
    ops = _file_ops(path)
    assert {"NON_MAX_SUPPRESSION_V5", "EXP", "SOFTMAX"} <= ops, ops
    assert ops <= builtin, ops - builtin  # no Flex (Select TF) or custom op


@pytest.mark.slow
def test_tflite_float32_matches_keras(trained_model, tflite_float32):
    model, _, train_images = trained_model
    images = np.concatenate([train_images, random_images(2)])
    predictor, detections = _tflite_detections(tflite_float32, images)
    _builtin_ops_only(tflite_float32)
    assert predictor.input_size == SIZE
    assert predictor.class_names == model_config(model)["class_names"]
    raw = np.concatenate([predictor.run(image[None])["raw_predictions"] for image in images])
    expected = model.predict_on_batch(images.astype(np.float32))
    assert raw.shape == (len(images), expected.shape[1], 4 + NUM_CLASSES + 1)
    assert np.abs(raw - expected).max() <= 1e-3
    checked = assert_matched(keras_detections(model, images), detections, 0.3, 0.95)
    assert checked >= 5  # the trained model finds objects


@pytest.mark.slow
@pytest.mark.parametrize("quantization", ["float16", "dynamic"])
def test_tflite_quantized_detections_match(trained_model, tmp_path, quantization):
    from cfsam_keras.export import export_tflite

    model, _, train_images = trained_model
    path = export_tflite(
        model, str(tmp_path / f"m_{quantization}.tflite"), quantization=quantization
    )
    predictor, detections = _tflite_detections(path, train_images)
    _builtin_ops_only(path)
    assert assert_matched(keras_detections(model, train_images), detections, 0.3, 0.9) >= 5


@pytest.mark.slow
def test_tflite_int8_ap50_close_to_float(trained_model, shapes_dataset, tflite_float32, tmp_path):
    """int8 (calibrated on the eval pipeline's images) against float32: COCO AP50 within
    2 points. The demo measures the same on its val split with a fully trained model."""
    from cfsam_keras.data import coco
    from cfsam_keras.data import eval_pipeline
    from cfsam_keras.evaluation.detector_eval import evaluate_detector
    from cfsam_keras.export import batch_detector
    from cfsam_keras.export import export_tflite
    from cfsam_keras.export import load_predictor

    model, _, _ = trained_model
    # The model was fitted to the train split; score it there so AP50 is far from 0.
    source = coco(*shapes_dataset["train"])
    path = export_tflite(
        model,
        str(tmp_path / "m_int8.tflite"),
        quantization="int8",
        representative_data=eval_pipeline(source, SIZE, 1),
    )

    ap = {}
    for name, file in (("float", tflite_float32), ("int8", path)):
        result = evaluate_detector(
            batch_detector(load_predictor("tflite", file)), source, input_size=SIZE
        )
        ap[name] = result["coco"]["AP50"]
    assert ap["float"] > 0.3, ap
    assert abs(ap["int8"] - ap["float"]) <= 0.02, ap


# --- CLI: export, predict ---------------------------------------------------------------


@pytest.mark.slow
def test_cli_export_then_predict_draws_same_boxes(trained_model, shapes_dataset, tmp_path):
    _, keras_path, _ = trained_model
    # No --class-names: the names travel in the .keras file.
    code, _ = cli(
        "export", "--model", keras_path, "--format", "saved_model", "--out", str(tmp_path / "exp")
    )
    assert code == 0 and os.path.isdir(tmp_path / "exp" / "1")
    code, _ = cli(
        "export", "--model", keras_path, "--format", "tflite", "--out", str(tmp_path / "exp")
    )
    tflite = tmp_path / "exp" / "small.tflite"
    assert code == 0 and tflite.is_file()
    images = shapes_dataset["train"][1]
    results = {}
    for flag, value in (
        ("--model", keras_path),
        ("--saved-model", str(tmp_path / "exp" / "1")),
        ("--tflite", str(tflite)),
    ):
        out = tmp_path / flag.strip("-")
        assert cli("predict", flag, value, images, "--out", str(out))[0] == 0
        with open(out / "detections.json") as f:
            results[flag] = json.load(f)["images"]
        assert len(list(out.glob("*.png"))) == len(results[flag]) == 8
    total = sum(len(r["detections"]) for r in results["--model"])
    assert total > 0
    for flag in ("--saved-model", "--tflite"):
        for ref, got in zip(results["--model"], results[flag]):
            ref_d = {
                "boxes": np.array([d["box"] for d in ref["detections"]]).reshape(-1, 4),
                "scores": np.array([d["score"] for d in ref["detections"]]),
                "classes": np.array([d["class_id"] for d in ref["detections"]]),
            }
            got_d = {
                "boxes": np.array([d["box"] for d in got["detections"]]).reshape(-1, 4),
                "classes": np.array([d["class_id"] for d in got["detections"]]),
            }
            # Scores near the 0.3 drawing cut-off may fall either side of it.
            assert_matched([ref_d], [got_d], 0.35, 0.95)
            assert [d["class_name"] for d in got["detections"]] == [
                BUILTIN_CLASSES[d["class_id"]] for d in got["detections"]
            ]


# --- SSD300-VGG16 with CFSAM ----------------------------------------------------------------


@pytest.mark.slow
def test_vgg16_cfsam_exports_match_keras(tmp_path, vgg16_cfsam):
    import tensorflow as tf

    from cfsam_keras.export import export_saved_model
    from cfsam_keras.export import export_tflite
    from cfsam_keras.export import load_predictor
    from cfsam_keras.models import DecodePredictions
    from cfsam_keras.models import PerClassNMS

    model, images = vgg16_cfsam
    expected = model.predict_on_batch(images.astype(np.float32))

    export_dir = export_saved_model(model, str(tmp_path / "sm"))
    out = tf.saved_model.load(export_dir).signatures["serving_default"](images=tf.constant(images))
    reference = keras_detections(model, images)
    for i, ref in enumerate(reference):
        n = int(out["num_detections"][i])
        assert n == len(ref["boxes"])
        np.testing.assert_allclose(
            out["detection_boxes"].numpy()[i, :n][:, [1, 0, 3, 2]], ref["boxes"], atol=1e-4
        )
        np.testing.assert_array_equal(out["detection_classes"].numpy()[i, :n], ref["classes"])

    path = export_tflite(model, str(tmp_path / "vgg.tflite"))
    predictor = load_predictor("tflite", path)
    _builtin_ops_only(path)
    assert "TOPK_V2" in _file_ops(path)  # 8,732 boxes: each class keeps its 400 best
    raw = np.concatenate([predictor.run(image[None])["raw_predictions"] for image in images])
    assert np.abs(raw - expected).max() <= 1e-3
    tflite_detections = [predictor.predict(i) for i in images]
    # The post-processing inside the TFLite file is the detector's: on TFLite's own raw
    # outputs, Keras' decoding and NMS give the TFLite detections.
    config = model_config(model)
    boxes, scores = DecodePredictions(config["anchor_config"])(raw)
    boxes, scores, classes, num = [np.asarray(t) for t in PerClassNMS()(boxes, scores)]
    for i, got in enumerate(tflite_detections):
        assert int(num[i]) == len(got["scores"])
        np.testing.assert_allclose(got["scores"], scores[i, : num[i]], atol=1e-5)
        np.testing.assert_array_equal(got["classes"], classes[i, : num[i]])
        np.testing.assert_allclose(got["boxes"], boxes[i, : num[i]], atol=1e-5)
    checked = assert_matched(reference, tflite_detections, 0.3, 0.95)
    assert checked >= 10
