"""``cfsam-keras export``: a trained ``.keras`` model to a TF Serving SavedModel or TFLite."""

import json
import os

from cfsam_keras.cli import CLIError

FORMATS = ("saved_model", "tflite")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="export a .keras model for TF Serving (SavedModel) or TFLite",
        description=(
            "Export a trained SSD .keras model. saved_model: a TF Serving version folder "
            "OUT/<version>/ (next free version unless --version) with the signatures "
            "serving_default (uint8 images of any size) and serving_bytes (JPEG/PNG bytes). "
            "tflite: a batch-1 model with decoding and per-class NMS inside (uint8 RGB input "
            "[1, S, S, 3]), written to OUT if it ends in .tflite, else to OUT/<model name>"
            "[_<quantization>].tflite, with its class names in a .labels.txt beside it."
        ),
    )
    parser.add_argument("--model", required=True, help="the trained model, a .keras file")
    parser.add_argument("--format", required=True, choices=FORMATS, help="what to write")
    parser.add_argument("--out", required=True, help="export folder, e.g. exports/NAME (tflite: or a .tflite file)")
    parser.add_argument("--version", type=int, default=None, help="saved_model: version number (default: next free)")
    parser.add_argument(
        "--quantization", choices=("float16", "dynamic", "int8"), default=None,
        help="tflite: quantize (default: none, float32); int8 needs --calibration-data/--calibration-images",
    )
    parser.add_argument("--calibration-data", default=None, help="tflite int8: COCO annotation file of the eval split")
    parser.add_argument("--calibration-images", default=None, help="tflite int8: image folder of the eval split")
    parser.add_argument("--num-calibration-images", type=int, default=100, help="tflite int8: images used (default 100)")
    parser.add_argument(
        "--class-names", default=None,
        help="class names: a text file (one a line) or a COCO annotation file (default: the model's, else class_0, ...)",
    )
    parser.add_argument("--score-threshold", type=float, default=0.01, help="minimum detection score (default 0.01)")
    parser.add_argument("--iou-threshold", type=float, default=0.45, help="per-class NMS IoU (default 0.45)")
    parser.add_argument("--max-detections", type=int, default=200, help="detections per image (default 200)")
    parser.set_defaults(run=run)
    return parser


def read_class_names_arg(path):
    """Class names from a text file (one a line) or a COCO annotation file."""
    if path is None:
        return None
    if not os.path.isfile(path):
        raise CLIError(f"--class-names: no such file: {path}")
    if path.endswith(".json"):
        try:
            with open(path, encoding="utf-8") as f:
                categories = json.load(f)["categories"]
            return [c["name"] for c in sorted(categories, key=lambda c: c["id"])]
        except (ValueError, KeyError, TypeError) as e:
            raise CLIError(f"--class-names: {path} is not a COCO annotation file ({e})") from None
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def load_keras_model(path, flag="--model"):
    """Loads a ``.keras`` file or raises a one-line CLIError."""
    if not str(path).endswith(".keras"):
        raise CLIError(f"{flag} must be a .keras file, got {path}")
    if not os.path.isfile(path):
        raise CLIError(f"{flag}: no such file: {path}")
    import keras

    import cfsam_keras.layers  # noqa: F401  (registers the custom layers and the loss)
    import cfsam_keras.losses  # noqa: F401
    import cfsam_keras.models  # noqa: F401

    try:
        return keras.saving.load_model(path)
    except Exception as e:  # noqa: BLE001  (any load failure is a user error here)
        raise CLIError(f"{flag}: cannot load {path}: {type(e).__name__}: {e}") from None


def _calibration_data(args, input_size):
    if not args.calibration_data or not args.calibration_images:
        raise CLIError(
            "--quantization int8 needs --calibration-data and --calibration-images "
            "(the eval split: its images calibrate the int8 ranges)"
        )
    for flag, path, check in (
        ("--calibration-data", args.calibration_data, os.path.isfile),
        ("--calibration-images", args.calibration_images, os.path.isdir),
    ):
        if not check(path):
            raise CLIError(f"{flag}: not found: {path}")
    from cfsam_keras.data import coco
    from cfsam_keras.data import eval_pipeline

    source = coco(args.calibration_data, args.calibration_images)
    return eval_pipeline(source, input_size, batch_size=1).take(args.num_calibration_images)


def run(args):
    from cfsam_keras.export import export_saved_model
    from cfsam_keras.export import export_tflite
    from cfsam_keras.export.common import model_input_size

    class_names = read_class_names_arg(args.class_names)
    model = load_keras_model(args.model)
    try:
        if args.format == "saved_model":
            if args.quantization:
                raise CLIError("--quantization applies to --format tflite only")
            path = export_saved_model(
                model, args.out, version=args.version, class_names=class_names,
                score_threshold=args.score_threshold, iou_threshold=args.iou_threshold,
                max_detections=args.max_detections,
            )
        else:
            path = args.out
            if not path.endswith(".tflite"):
                stem = os.path.splitext(os.path.basename(args.model))[0]
                suffix = f"_{args.quantization}" if args.quantization else ""
                path = os.path.join(path, f"{stem}{suffix}.tflite")
            data = None
            if args.quantization == "int8":
                data = _calibration_data(args, model_input_size(model))
            export_tflite(
                model, path, quantization=args.quantization, representative_data=data,
                class_names=class_names, score_threshold=args.score_threshold,
                iou_threshold=args.iou_threshold, max_detections=args.max_detections,
                num_calibration_images=args.num_calibration_images,
            )
    except (ValueError, FileExistsError) as e:
        raise CLIError(str(e)) from None
    print(path)
    return 0
