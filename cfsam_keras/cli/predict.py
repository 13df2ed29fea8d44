"""``cfsam-keras predict``: detect objects in image files, draw them, write JSON."""

import json
import os

from cfsam_keras.cli import CLIError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "predict",
        help="detect objects in images with a .keras model, a SavedModel or a TFLite file",
        description=(
            "Run a detector on image files and/or folders of images. Writes, into --out, "
            "each image with its boxes and class names drawn (<name>.png) and "
            "detections.json (per image: boxes normalised and in pixels as "
            "[xmin, ymin, xmax, ymax], score, 0-based class id and class name)."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a trained .keras model")
    source.add_argument("--saved-model", help="an exported SavedModel version folder, e.g. exports/NAME/1")
    source.add_argument("--tflite", help="an exported .tflite file")
    parser.add_argument("inputs", nargs="+", help="image files and/or folders of images (jpg, png, bmp, gif)")
    parser.add_argument("--out", default=os.path.join("runs", "predict"), help="output folder (default runs/predict)")
    parser.add_argument(
        "--min-score", type=float, default=0.3,
        help="draw and list only detections scoring at least this (default 0.3)",
    )
    parser.add_argument(
        "--class-names", default=None,
        help="class names file (one a line) or COCO annotation file; default: stored with the model",
    )
    parser.set_defaults(run=run)
    return parser


def list_images(inputs):
    """Image paths from files and folders, in a stable order; one-line errors."""
    paths = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(
                os.path.join(item, n) for n in os.listdir(item)
                if n.lower().endswith(IMAGE_EXTENSIONS)
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
    """An RGB uint8 array of an image file, EXIF orientation applied."""
    import numpy as np
    from PIL import Image
    from PIL import ImageOps
    from PIL import UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise CLIError(f"cannot read image {path}: {e}") from None


def draw(image, detections, class_names):
    """The image with its detections drawn by ``keras.visualization``."""
    import keras
    import numpy as np

    if len(detections["boxes"]) == 0:
        return image
    size = min(image.shape[:2])
    return keras.visualization.draw_bounding_boxes(
        image[None],
        {
            "boxes": detections["boxes"][None],
            "labels": detections["classes"][None],
            "confidences": detections["scores"][None],
        },
        bounding_box_format="rel_xyxy",
        class_mapping=dict(enumerate(class_names)),
        color=(255, 32, 32),
        line_thickness=max(1, size // 200),
        font_scale=max(0.35, size / 800),
    )[0].astype(np.uint8)


def _load(args):
    from cfsam_keras.export import load_predictor

    if args.model:
        from cfsam_keras.cli.export import load_keras_model

        return load_predictor("keras", load_keras_model(args.model))
    kind, path = ("saved_model", args.saved_model) if args.saved_model else ("tflite", args.tflite)
    flag = "--saved-model" if kind == "saved_model" else "--tflite"
    if kind == "saved_model" and not os.path.isdir(path):
        raise CLIError(f"{flag}: no such folder: {path}")
    if kind == "tflite" and not (path.endswith(".tflite") and os.path.isfile(path)):
        raise CLIError(f"{flag} must be an existing .tflite file, got {path}")
    try:
        return load_predictor(kind, path)
    except (OSError, ValueError, RuntimeError) as e:
        raise CLIError(f"{flag}: cannot load {path}: {e}") from None


def run(args):
    from PIL import Image

    from cfsam_keras.cli.export import read_class_names_arg

    if not 0.0 <= args.min_score <= 1.0:
        raise CLIError(f"--min-score must be in [0, 1], got {args.min_score}")
    paths = list_images(args.inputs)
    predictor = _load(args)
    class_names = read_class_names_arg(args.class_names) or predictor.class_names
    os.makedirs(args.out, exist_ok=True)
    records = []
    for path in paths:
        image = read_image(path)
        detections = predictor.predict(image)
        keep = detections["scores"] >= args.min_score
        detections = {k: v[keep] for k, v in detections.items()}
        names = class_names or [str(i) for i in range(int(detections["classes"].max(initial=0)) + 1)]
        height, width = image.shape[:2]
        records.append({
            "file": path,
            "width": width,
            "height": height,
            "detections": [
                {
                    "box": [round(float(v), 6) for v in box],
                    "box_pixels": [round(float(v), 2) for v in box * [width, height, width, height]],
                    "score": round(float(score), 6),
                    "class_id": int(cls),
                    "class_name": names[cls] if cls < len(names) else str(int(cls)),
                }
                for box, score, cls in zip(detections["boxes"], detections["scores"], detections["classes"])
            ],
        })
        stem = os.path.splitext(os.path.basename(path))[0]
        Image.fromarray(draw(image, detections, names)).save(os.path.join(args.out, f"{stem}.png"))
    with open(os.path.join(args.out, "detections.json"), "w", encoding="utf-8") as f:
        json.dump({"min_score": args.min_score, "images": records}, f, indent=1)
    print(f"{len(paths)} images, {sum(len(r['detections']) for r in records)} detections -> {args.out}")
    return 0
