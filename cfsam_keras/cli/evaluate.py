"""``cfsam-keras evaluate``: COCO and VOC metrics of a saved model on a dataset."""

import json
import math
import os
import sys

from cfsam_keras.cli.common import CLIError
from cfsam_keras.cli.common import add_inference_flags
from cfsam_keras.cli.common import inference_settings
from cfsam_keras.cli.common import load_keras_model
from cfsam_keras.validation import flag
from cfsam_keras.validation import positive_int

DESCRIPTION = """\
Evaluate a saved SSD model (.keras) on an unshuffled dataset: runs the detector
(per-class NMS), maps boxes back to each image's original size and category ids,
and reports the 12 COCO numbers (pycocotools) plus VOC mAP (devkit rules, VOC07
11-point and VOC2010+ area). Choose the dataset with exactly one of
--coco-annotations/--image-dir, --voc-devkit or --tfds.
"""


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "evaluate",
        help="COCO AP and VOC mAP of a .keras model on a dataset.",
        description=DESCRIPTION,
    )
    parser.add_argument(
        "--model",
        required=True,
        metavar="PATH.keras",
        help="model saved with model.save('....keras') (SSD300 or its detector)",
    )
    data = parser.add_argument_group("dataset (choose one)")
    data.add_argument(
        "--coco-annotations",
        metavar="FILE",
        help="COCO instances JSON (e.g. instances_val2017.json or the built-in "
        "dataset's instances_val.json); needs --image-dir",
    )
    data.add_argument("--image-dir", metavar="DIR", help="folder of the COCO images")
    data.add_argument(
        "--voc-devkit", metavar="DIR", help="VOCdevkit folder (holding VOC2007/, VOC2012/)"
    )
    data.add_argument("--year", default="2007", help="VOC year (default: %(default)s)")
    data.add_argument("--tfds", metavar="NAME", help="TensorFlow Datasets name, e.g. voc/2007")
    data.add_argument("--data-dir", metavar="DIR", help="TFDS data directory")
    data.add_argument(
        "--split",
        default=None,
        help="split to evaluate (default: 'test' for VOC, 'validation' for TFDS)",
    )
    opts = parser.add_argument_group("evaluation")
    opts.add_argument(
        "--batch-size", type=flag(positive_int), default=8, help="default: %(default)s"
    )
    opts.add_argument(
        "--max-images",
        type=flag(positive_int),
        default=None,
        help="evaluate only the first N images",
    )
    opts.add_argument("--out", metavar="FILE.json", help="write all results to this JSON file")
    opts.add_argument(
        "--verbose", action="store_true", help="print pycocotools' own progress and summary"
    )
    add_inference_flags(parser)
    parser.set_defaults(run=run)
    return parser


def _check_args(args):
    if not args.model.endswith(".keras"):
        raise CLIError(f"--model must be a .keras file (model.save('x.keras')), got {args.model}")
    if not os.path.isfile(args.model):
        raise CLIError(f"model file not found: {args.model}")
    chosen = [
        flag
        for flag, value in (
            ("--coco-annotations", args.coco_annotations),
            ("--voc-devkit", args.voc_devkit),
            ("--tfds", args.tfds),
        )
        if value
    ]
    if len(chosen) != 1:
        raise CLIError(
            "choose one dataset: --coco-annotations FILE --image-dir DIR, "
            "--voc-devkit DIR or --tfds NAME" + (f" (got {' and '.join(chosen)})" if chosen else "")
        )
    if args.coco_annotations:
        if not args.image_dir:
            raise CLIError("--coco-annotations needs --image-dir DIR")
        if not os.path.isfile(args.coco_annotations):
            raise CLIError(f"COCO annotation file not found: {args.coco_annotations}")
        if not os.path.isdir(args.image_dir):
            raise CLIError(f"image folder not found: {args.image_dir}")
    if args.voc_devkit and not os.path.isdir(args.voc_devkit):
        raise CLIError(f"VOC devkit folder not found: {args.voc_devkit}")
    if args.out:
        _check_writable(args.out)


def _check_writable(path):
    """Fails now, not after the evaluation, when ``--out`` cannot be written."""
    if os.path.isdir(path):
        raise CLIError(f"--out: {path} is a folder; name the JSON file to write")
    existed = os.path.exists(path)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as e:
        raise CLIError(f"--out: cannot write {path}: {e.strerror or e}") from None
    if not existed:
        os.remove(path)


def _first_line(error):
    text = str(error).strip().strip("'\"")
    return text.splitlines()[0] if text else type(error).__name__


def _source(args):
    from cfsam_keras import data

    try:
        if args.coco_annotations:
            return data.coco(args.coco_annotations, args.image_dir)
        if args.voc_devkit:
            return data.voc(args.voc_devkit, args.year, args.split or "test")
        return data.tfds_source(args.tfds, args.split or "validation", data_dir=args.data_dir)
    except (OSError, ValueError, KeyError) as e:
        raise CLIError(_first_line(e)) from e
    except Exception as e:  # TFDS raises its own types (unknown name, failed download)
        if not args.tfds:
            raise
        raise CLIError(f"cannot read TFDS dataset {args.tfds}: {_first_line(e)}") from e


def _json_ready(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


def _fmt(value):
    # COCOeval's -1 and VOC's NaN both mean "no ground truth to score against".
    undefined = value is None or math.isnan(value) or value < 0
    return "   n/a" if undefined else f"{value:6.4f}"


def _check_classes(model_names, dataset_names):
    """Refuses a dataset whose classes the model orders otherwise; warns on other names."""
    if len(dataset_names) != len(model_names):
        raise CLIError(
            f"the model predicts {len(model_names)} classes but the dataset has "
            f"{len(dataset_names)}"
        )
    if model_names == dataset_names:
        return
    if sorted(model_names) == sorted(dataset_names):
        i = next(i for i, (a, b) in enumerate(zip(model_names, dataset_names)) if a != b)
        raise CLIError(
            f"the model and the dataset order their classes differently (class {i} is "
            f"{model_names[i]!r} in the model, {dataset_names[i]!r} in the dataset)"
        )
    if not all(name == f"class_{i}" for i, name in enumerate(model_names)):
        print(
            f"cfsam-keras evaluate: warning: the model's class names {model_names[:3]}... "
            f"are not the dataset's {dataset_names[:3]}...; scoring class i as class i",
            file=sys.stderr,
        )


def format_table(results, class_names):
    """The results as a plain-text table."""
    from cfsam_keras.evaluation import COCO_METRIC_NAMES

    lines = [f"Images evaluated: {results['num_images']}"]
    lost = results.get("undecodable_images") or []
    if lost:
        lines.append(f"Images TensorFlow could not decode (not scored): {len(lost)}")
    lines += ["", "COCO (pycocotools)"]
    lines += [f"  {name:<10} {_fmt(results['coco'][name])}" for name in COCO_METRIC_NAMES]
    lines += [
        "",
        "PASCAL VOC (IoU 0.5)",
        f"  {'mAP VOC07 11-point':<22} {_fmt(results['voc_map'])}",
        f"  {'mAP VOC2010+ area':<22} {_fmt(results['voc_map_area'])}",
        "",
        f"  {'class':<20} {'AP07':>6} {'AP area':>8}",
    ]
    for name, ap07, ap in zip(
        class_names, results["voc_per_class_ap"], results["voc_per_class_ap_area"]
    ):
        lines.append(f"  {str(name)[:20]:<20} {_fmt(ap07)} {_fmt(ap):>8}")
    lines += ["", "n/a: no ground truth in that area range or class."]
    return "\n".join(lines)


def run(args):
    _check_args(args)
    import keras

    from cfsam_keras.evaluation import evaluate_detector
    from cfsam_keras.models import detector
    from cfsam_keras.models import model_config

    model = load_keras_model(args.model)
    try:
        config = model_config(model)
    except ValueError as e:
        raise CLIError(f"{args.model} is not a cfsam_keras SSD model: {e}") from None
    source = _source(args)
    class_names = list(source.class_names)
    _check_classes(config["class_names"], class_names)
    if isinstance(model, keras.Model) and isinstance(model.output, dict):
        det = model  # already a detector
    else:
        det = detector(model, **inference_settings(args))
    results = evaluate_detector(
        det,
        source,
        batch_size=args.batch_size,
        class_names=class_names,
        max_images=args.max_images,
        verbose=args.verbose,
        progress=True,
    )
    print(format_table(results, class_names))
    if args.out:
        report = dict(results, model=os.path.abspath(args.model), class_names=class_names)
        out_dir = os.path.dirname(os.path.abspath(args.out))
        os.makedirs(out_dir, exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(_json_ready(report), f, indent=2)
        print(f"\nWrote {args.out}")
    return 0
