"""``cfsam-keras predict``: detect objects in image files, draw them, write JSON."""

import json
import os

from cfsam_keras.cli.common import CLIError
from cfsam_keras.cli.common import load_keras_model
from cfsam_keras.cli.common import read_class_names_arg
from cfsam_keras.validation import flag
from cfsam_keras.validation import number

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "predict",
        help="detect objects in images with a .keras model, a SavedModel, a TFLite or ONNX file",
        description=(
            "Run a detector on image files and/or folders of images. Writes, into --out, "
            "each image with its boxes and class names drawn (<name>.png) and "
            "detections.json (per image: boxes normalised and in pixels as "
            "[xmin, ymin, xmax, ymax], score, 0-based class id and class name). Pictures "
            "whose names would collide get _2, _3, ... in input order. An image that cannot "
            "be read is reported and listed with its error, the others are still done; the "
            "exit status is then 2."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a trained .keras model")
    source.add_argument("--saved-model", help="an exported SavedModel version folder")
    source.add_argument("--tflite", help="an exported .tflite file")
    source.add_argument("--onnx", help="an exported .onnx file (run with ONNX Runtime)")
    parser.add_argument("inputs", nargs="+", help="image files and/or folders of images")
    parser.add_argument(
        "--out", default=os.path.join("runs", "predict"), help="output folder (default %(default)s)"
    )
    parser.add_argument(
        "--min-score",
        type=flag(number, low=0.0, high=1.0),
        default=0.3,
        help="draw and list only detections scoring at least this (default %(default)s)",
    )
    parser.add_argument(
        "--class-names",
        help="override the stored class names: a file (one a line) or a COCO annotation file",
    )
    parser.set_defaults(run=run)
    return parser


def list_images(inputs):
    """Image paths from files and folders, in a stable order; one-line errors.

    In a folder, every entry with an image extension that is not a folder is listed
    (a dangling link too: it fails when read, and is reported then).
    """
    paths = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(
                os.path.join(item, n)
                for n in os.listdir(item)
                if n.lower().endswith(IMAGE_EXTENSIONS) and not os.path.isdir(os.path.join(item, n))
            )
            if not found:
                raise CLIError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in folder {item}")
            paths.extend(found)
        elif os.path.isfile(item):
            paths.append(item)
        else:
            raise CLIError(f"no such file or folder: {item}")
    return paths


def read_image(path):
    """An RGB uint8 array of an image file, EXIF orientation applied.

    16- and 32-bit grayscale images are scaled to 8 bits (Pillow's own conversion
    clips them, which turns most of them white).

    Raises:
        OSError: the file cannot be read as an image, with the reason.
    """
    import numpy as np
    from PIL import Image

    from cfsam_keras.data.orientation import upright

    try:
        with Image.open(path) as image:
            image = upright(image)
            if image.mode.startswith("I"):
                wide = np.asarray(image, dtype=np.float64)
                gray = np.clip(np.round(wide / 257.0), 0, 255).astype(np.uint8)
                return np.repeat(gray[..., None], 3, axis=-1)
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as e:  # Pillow's errors for bad files
        raise OSError(f"cannot read image {path}: {e}") from None


def output_names(paths):
    """Picture names for ``paths``: ``<stem>.png``, then ``<stem>_2.png``, ... on collisions."""
    names, used = [], set()
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        name, k = f"{stem}.png", 1
        while name in used:
            k += 1
            name = f"{stem}_{k}.png"
        used.add(name)
        names.append(name)
    return names


def _check_out(out):
    """Fails before any work when ``--out`` cannot be the output folder."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise CLIError(f"--out: {out} exists and is not a folder")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise CLIError(f"--out: cannot create {out}: {e.strerror or e}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise CLIError(f"--out: {out} is not writable")


def _load(args):
    from cfsam_keras.export import load_predictor

    if args.model:
        return load_predictor("keras", load_keras_model(args.model))
    kind, path = next(
        (kind, getattr(args, kind))
        for kind in ("saved_model", "tflite", "onnx")
        if getattr(args, kind)
    )
    name = "--" + kind.replace("_", "-")
    if kind == "saved_model" and not os.path.isdir(path):
        raise CLIError(f"{name}: no such folder: {path}")
    suffix = f".{kind}"
    if kind != "saved_model" and not (path.endswith(suffix) and os.path.isfile(path)):
        raise CLIError(f"{name} must be an existing {suffix} file, got {path}")
    try:
        return load_predictor(kind, path)
    except (OSError, ValueError, RuntimeError, ImportError) as e:
        raise CLIError(f"{name}: cannot load {path}: {e}") from None


def _record(path, image, detections, class_names):
    height, width = image.shape[:2]
    return {
        "file": path,
        "width": width,
        "height": height,
        "detections": [
            {
                "box": [round(float(v), 6) for v in box],
                "box_pixels": [round(float(v), 2) for v in box * [width, height, width, height]],
                "score": round(float(score), 6),
                "class_id": int(cls),
                "class_name": class_names[cls] if cls < len(class_names) else f"class_{cls}",
            }
            for box, score, cls in zip(
                detections["boxes"], detections["scores"], detections["classes"]
            )
        ],
    }


def run(args):
    import sys

    from PIL import Image

    from cfsam_keras.visualization import draw_detections

    paths = list_images(args.inputs)
    _check_out(args.out)
    predictor = _load(args)
    class_names = read_class_names_arg(args.class_names) or predictor.class_names or []
    records, failed = [], []
    for done, (path, picture_name) in enumerate(zip(paths, output_names(paths)), 1):
        try:
            image = read_image(path)
        except OSError as e:
            print(f"warning: {e}", file=sys.stderr)
            failed.append(path)
            records.append({"file": path, "error": str(e)})
            continue
        detections = predictor.predict(image)
        keep = detections["scores"] >= args.min_score
        detections = {k: v[keep] for k, v in detections.items()}
        record = _record(path, image, detections, class_names)
        record["picture"] = picture_name
        records.append(record)
        names = list(class_names) + [
            f"class_{c}"
            for c in range(len(class_names), int(detections["classes"].max(initial=0)) + 1)
        ]
        picture = draw_detections(image, detections, names)
        Image.fromarray(picture).save(os.path.join(args.out, picture_name))
        print(f"\r{done}/{len(paths)} images", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    with open(os.path.join(args.out, "detections.json"), "w", encoding="utf-8") as f:
        json.dump({"min_score": args.min_score, "images": records}, f, indent=1)
    count = sum(len(r.get("detections", ())) for r in records)
    print(f"{len(paths) - len(failed)} images, {count} detections -> {args.out}")
    if failed:
        raise CLIError(
            f"{len(failed)} of {len(paths)} images could not be read (first: {failed[0]}); "
            f"their errors are in {os.path.join(args.out, 'detections.json')}"
        )
    return 0
