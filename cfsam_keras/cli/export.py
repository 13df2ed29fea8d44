"""``cfsam-keras export``: a trained ``.keras`` model to a SavedModel, TFLite or ONNX file."""

import os

from cfsam_keras.cli.common import CLIError
from cfsam_keras.cli.common import add_inference_flags
from cfsam_keras.cli.common import inference_settings
from cfsam_keras.cli.common import load_keras_model
from cfsam_keras.cli.common import read_class_names_arg
from cfsam_keras.validation import flag
from cfsam_keras.validation import positive_int

FORMATS = ("saved_model", "tflite", "onnx")
SUFFIXES = {"tflite": ".tflite", "onnx": ".onnx"}
QUANTIZATIONS = ("float16", "dynamic", "int8")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="export a .keras model for TF Serving (SavedModel), TFLite or ONNX",
        description=(
            "Export a trained SSD .keras model. saved_model: a TF Serving version folder "
            "OUT/<version>/ (next free version unless --version) with the signatures "
            "serving_default (uint8 images of any size) and serving_bytes (JPEG/PNG bytes). "
            "tflite: a batch-1 model with decoding and per-class NMS inside (uint8 RGB input "
            "[1, S, S, 3]), written to OUT if it ends in .tflite, else to OUT/<model name>"
            "[_<quantization>].tflite, with its class names in a .labels.txt beside it. "
            "onnx: the same detector for ONNX Runtime or TensorRT (uint8 RGB input "
            "[B, S, S, 3], B dynamic unless --batch-size), written to OUT if it ends in .onnx, "
            "else to OUT/<model name>.onnx, with the class names in its metadata. "
            "Class names come from the model unless --class-names is given."
        ),
    )
    parser.add_argument("--model", required=True, help="the trained model, a .keras file")
    parser.add_argument("--format", required=True, choices=FORMATS, help="what to write")
    parser.add_argument(
        "--out", required=True, help="export folder (tflite, onnx: or a .tflite / .onnx file)"
    )
    parser.add_argument(
        "--version",
        type=flag(positive_int),
        default=None,
        help="saved_model: version number (default: next free)",
    )
    parser.add_argument(
        "--batch-size",
        type=flag(positive_int),
        default=None,
        help="onnx: a fixed batch size (default: dynamic)",
    )
    parser.add_argument(
        "--quantization",
        choices=QUANTIZATIONS,
        default=None,
        help="tflite: quantize (default: none, float32); int8 needs --calibration-data and "
        "--calibration-images",
    )
    parser.add_argument("--calibration-data", help="tflite int8: COCO annotation file")
    parser.add_argument("--calibration-images", help="tflite int8: its image folder")
    parser.add_argument(
        "--num-calibration-images",
        type=flag(positive_int),
        default=100,
        help="tflite int8: images used (default %(default)s)",
    )
    parser.add_argument(
        "--class-names",
        help="override the model's class names: a text file (one a line) or a COCO annotation file",
    )
    add_inference_flags(parser)
    parser.set_defaults(run=run)
    return parser


def _check_args(args):
    if args.format != "tflite" and args.quantization:
        raise CLIError("--quantization applies to --format tflite only")
    if args.format != "onnx" and args.batch_size is not None:
        raise CLIError("--batch-size applies to --format onnx only")
    if args.quantization == "int8":
        if not args.calibration_data or not args.calibration_images:
            raise CLIError(
                "--quantization int8 needs --calibration-data and --calibration-images "
                "(images of the eval split calibrate the int8 ranges)"
            )
        for name, path, check in (
            ("--calibration-data", args.calibration_data, os.path.isfile),
            ("--calibration-images", args.calibration_images, os.path.isdir),
        ):
            if not check(path):
                raise CLIError(f"{name}: not found: {path}")


def _file_path(args):
    suffix = SUFFIXES[args.format]
    if args.out.endswith(suffix):
        return args.out
    stem = os.path.splitext(os.path.basename(args.model))[0]
    quantization = f"_{args.quantization}" if args.quantization else ""
    return os.path.join(args.out, f"{stem}{quantization}{suffix}")


def run(args):
    from cfsam_keras.data import coco
    from cfsam_keras.data import eval_pipeline
    from cfsam_keras.export import export_onnx
    from cfsam_keras.export import export_saved_model
    from cfsam_keras.export import export_tflite
    from cfsam_keras.models import model_config

    _check_args(args)
    class_names = read_class_names_arg(args.class_names)
    model = load_keras_model(args.model)
    settings = inference_settings(args)
    try:
        if args.format == "saved_model":
            path = export_saved_model(
                model, args.out, version=args.version, class_names=class_names, **settings
            )
        elif args.format == "onnx":
            path = export_onnx(
                model,
                _file_path(args),
                batch_size=args.batch_size,
                class_names=class_names,
                **settings,
            )
        else:
            path = _file_path(args)
            data = None
            if args.quantization == "int8":
                source = coco(args.calibration_data, args.calibration_images)
                data = eval_pipeline(source, model_config(model)["input_size"], batch_size=1)
            export_tflite(
                model,
                path,
                quantization=args.quantization,
                representative_data=data,
                class_names=class_names,
                num_calibration_images=args.num_calibration_images,
                **settings,
            )
    except (ValueError, FileExistsError, ImportError) as e:
        raise CLIError(str(e)) from None
    print(path)
    return 0
