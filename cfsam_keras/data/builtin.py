"""The built-in multi-scale shapes dataset (no download), written as COCO files.

Each image holds 0-6 objects of five shape classes on a textured, cluttered
background. Object sizes are log-uniform between 3% and 90% of the image side,
so small, medium and large objects are equally common per octave; every object
gets a random colour (kept apart from the background around it), so colour
alone never tells the class. Distractors (random jagged polygons and lines)
and pixel noise make the background non-trivial. Generation is deterministic
given ``seed``: image ``i`` of a split depends only on (seed, split, i).
"""

import json
import math
import os
import shutil

import numpy as np
from PIL import Image
from PIL import ImageDraw

#: Object classes of the built-in dataset.
BUILTIN_CLASSES = ("circle", "square", "triangle", "cross", "ring")

MIN_SIZE, MAX_SIZE = 0.03, 0.9  # object size (sqrt(w*h)) as a fraction of the image side
MAX_OBJECTS = 6
_SPLIT_KEYS = {"train": 1, "val": 2}


def _shape_mask(cls, w, h, rng):
    """An ``L`` mask (w x h) of one object of class ``cls`` filling its box."""
    mask = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(mask)
    name = BUILTIN_CLASSES[cls]
    if name == "circle":
        d.ellipse([0, 0, w - 1, h - 1], fill=255)
    elif name == "square":
        d.rectangle([0, 0, w - 1, h - 1], fill=255)
    elif name == "triangle":
        if rng.random() < 0.5:  # apex up or down
            d.polygon([(0, h - 1), (w - 1, h - 1), ((w - 1) / 2, 0)], fill=255)
        else:
            d.polygon([(0, 0), (w - 1, 0), ((w - 1) / 2, h - 1)], fill=255)
    elif name == "cross":
        tx, ty = max(1, round(w * 0.3)), max(1, round(h * 0.3))
        d.rectangle([(w - tx) // 2, 0, (w - tx) // 2 + tx - 1, h - 1], fill=255)
        d.rectangle([0, (h - ty) // 2, w - 1, (h - ty) // 2 + ty - 1], fill=255)
    elif name == "ring":
        d.ellipse([0, 0, w - 1, h - 1], outline=255, width=max(2, round(min(w, h) * 0.18)))
    return mask


_TILES = {}


def _tiles(size):
    """Per-size texture and noise tiles (2x the image side), made once, fixed seed."""
    if size not in _TILES:
        rng = np.random.default_rng(12345)
        fine = rng.uniform(0, 255, (size // 4, size // 4, 3)).astype(np.uint8)
        texture = Image.fromarray(fine).resize((2 * size, 2 * size), Image.BICUBIC)
        noise = rng.standard_normal((2 * size, 2 * size, 3), dtype=np.float32)
        _TILES[size] = (np.asarray(texture, np.float32) - 128.0, noise)
    return _TILES[size]


def _crop(rng, tile, size):
    y, x = rng.integers(0, tile.shape[0] - size + 1, 2)
    return tile[y : y + size, x : x + size]


def _background(rng, size):
    """Smooth random colour field + texture, uint8 [size, size, 3]."""
    cells = int(rng.integers(2, 7))
    low = rng.uniform(0, 255, (cells, cells, 3)).astype(np.uint8)
    field = np.asarray(Image.fromarray(low).resize((size, size), Image.BILINEAR))
    texture = _crop(rng, _tiles(size)[0], size) * np.float32(rng.uniform(0.2, 0.6))
    texture += field
    return np.clip(texture, 0, 255, out=texture).astype(np.uint8)


def _contrasting_colour(rng, reference):
    for _ in range(20):
        colour = rng.integers(0, 256, 3)
        if np.linalg.norm(colour - reference) > 90:
            break
    return tuple(int(c) for c in colour)


def _clutter(draw, rng, size):
    """Distractors: lines and jagged polygons that are none of the classes."""
    for _ in range(rng.integers(3, 12)):
        p = rng.uniform(0, size, 4)
        draw.line(
            list(p),
            fill=tuple(int(c) for c in rng.integers(0, 256, 3)),
            width=int(rng.integers(1, 3)),
        )
    for _ in range(rng.integers(0, 4)):
        r = size * math.exp(rng.uniform(math.log(0.02), math.log(0.15)))
        cx, cy = rng.uniform(0, size, 2)
        k = int(rng.integers(7, 12))
        angles = np.sort(rng.uniform(0, 2 * math.pi, k))
        radii = r * rng.uniform(0.3, 1.0, k)
        points = [(cx + rr * math.cos(a), cy + rr * math.sin(a)) for a, rr in zip(angles, radii)]
        draw.polygon(points, fill=tuple(int(c) for c in rng.integers(0, 256, 3)))


def _fits(box, placed):
    """Overlap allowed, but no placed object loses more than 25% of its box."""
    x0, y0, x1, y1 = box
    for p in placed:
        iw = min(x1, p[2]) - max(x0, p[0])
        ih = min(y1, p[3]) - max(y0, p[1])
        if iw > 0 and ih > 0:
            inter = iw * ih
            if inter > 0.25 * (p[2] - p[0]) * (p[3] - p[1]) or inter > 0.5 * (x1 - x0) * (y1 - y0):
                return False
    return True


def generate_image(seed, index, image_size=320, split="train"):
    """One image of the built-in dataset.

    Args:
        seed: dataset seed.
        index: image index within the split.
        image_size: side of the square image in pixels.
        split: "train" or "val" (they never share images).

    Returns:
        (uint8 [S, S, 3] RGB image, int [N, 4] pixel-edge xyxy boxes, int [N] classes).

    Example:
    >>> image, boxes, classes = generate_image(seed=0, index=0)
    """
    rng = np.random.default_rng([int(seed), _SPLIT_KEYS[split], int(index)])
    size = int(image_size)
    canvas = _background(rng, size)
    img = Image.fromarray(canvas)
    _clutter(ImageDraw.Draw(img), rng, size)

    n = int(rng.integers(0, MAX_OBJECTS + 1)) if rng.random() < 0.97 else 0
    sides = size * np.exp(rng.uniform(math.log(MIN_SIZE), math.log(MAX_SIZE), n))
    placed, boxes, classes = [], [], []
    for side in sorted(sides, reverse=True):  # large first: small ones stay visible on top
        aspect = math.exp(rng.uniform(math.log(0.75), math.log(1.33)))
        w = int(np.clip(round(side * math.sqrt(aspect)), 4, size))
        h = int(np.clip(round(side / math.sqrt(aspect)), 4, size))
        for _ in range(20):
            x0, y0 = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
            if _fits((x0, y0, x0 + w, y0 + h), placed):
                break
        else:
            continue
        cls = int(rng.integers(0, len(BUILTIN_CLASSES)))
        mask = _shape_mask(cls, w, h, rng)
        bx0, by0, bx1, by1 = mask.getbbox()
        local = canvas[y0 : y0 + h : 4, x0 : x0 + w : 4].reshape(-1, 3).mean(0)
        img.paste(_contrasting_colour(rng, local), (x0, y0, x0 + w, y0 + h), mask)
        placed.append((x0, y0, x0 + w, y0 + h))
        boxes.append((x0 + bx0, y0 + by0, x0 + bx1, y0 + by1))
        classes.append(cls)
    pixels = _crop(rng, _tiles(size)[1], size) * np.float32(rng.uniform(3, 12))
    pixels += np.asarray(img)
    image = np.clip(pixels, 0, 255, out=pixels).astype(np.uint8)
    return image, np.asarray(boxes, np.int64).reshape(-1, 4), np.asarray(classes, np.int64)


def _write_split(out_dir, split, count, seed, image_size, jpeg_quality):
    folder = os.path.join(out_dir, split)
    os.makedirs(folder, exist_ok=True)
    images, annotations = [], []
    for i in range(count):
        image, boxes, classes = generate_image(seed, i, image_size, split)
        file_name = f"{i + 1:06d}.jpg"
        Image.fromarray(image).save(os.path.join(folder, file_name), quality=jpeg_quality)
        images.append(
            {"id": i + 1, "file_name": file_name, "width": image_size, "height": image_size}
        )
        for (x0, y0, x1, y1), c in zip(boxes.tolist(), classes.tolist()):
            w, h = x1 - x0, y1 - y0
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": c + 1,
                    "bbox": [x0, y0, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    coco = {
        "info": {"description": f"cfsam-keras built-in shapes dataset, seed {seed}, {split}"},
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": i + 1, "name": n, "supercategory": "shape"}
            for i, n in enumerate(BUILTIN_CLASSES)
        ],
    }
    path = os.path.join(out_dir, f"instances_{split}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(coco, f)
    return path


#: The file in which `write_builtin_dataset` records what it wrote.
MANIFEST = "builtin-dataset.json"
#: What the demo recorded before the manifest existed (the demo reads it; it is ours).
LEGACY_DEMO_STAMP = "demo-dataset.json"
_WRITTEN = (
    "train",
    "val",
    "instances_train.json",
    "instances_val.json",
    MANIFEST,
    LEGACY_DEMO_STAMP,
)


def builtin_manifest(out_dir):
    """The settings of the complete built-in dataset in ``out_dir``, or ``None``.

    Returns:
        Dict of `write_builtin_dataset`'s arguments (``train``, ``val``, ``seed``,
        ``image_size``, ``jpeg_quality``, ``owner``) when ``out_dir`` holds a dataset
        it finished writing; ``None`` otherwise.
    """
    try:
        with open(os.path.join(out_dir, MANIFEST), encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or not manifest.get("complete"):
        return None
    return manifest.get("settings")


def write_builtin_dataset(
    out_dir, train=1000, val=200, seed=0, image_size=320, jpeg_quality=90, owner=None
):
    """Writes the built-in dataset as a standard COCO dataset.

    Files: ``train/*.jpg``, ``val/*.jpg``, ``instances_train.json`` and
    ``instances_val.json`` (category ids 1..5 in `BUILTIN_CLASSES` order), and
    ``builtin-dataset.json`` (`MANIFEST`: the settings). Read it back with
    ``coco(out_dir/instances_train.json, out_dir/train)``.

    It writes only into a new or empty folder, or over a built-in dataset it wrote
    before (whose files it removes first, so no stale image stays): a folder that
    holds anything else raises ``FileExistsError``, and nothing is written.

    Args:
        out_dir: output folder (created).
        train: number of training images.
        val: number of validation images.
        seed: the dataset seed; same seed, same files.
        image_size: side of the square images.
        jpeg_quality: JPEG quality.
        owner: who writes it, recorded in the manifest (a caller may then rewrite
            only its own datasets); default ``"write_builtin_dataset"``.

    Returns:
        dict: split -> (annotation file, image folder).

    Example:
    >>> paths = write_builtin_dataset("data/shapes", train=1000, val=200, seed=0)
    >>> source = coco(*paths["train"])
    """
    for name, value in (("train", train), ("val", val)):
        if int(value) < 0:
            raise ValueError(f"{name} must be >= 0; received {value}.")
    if int(image_size) < 64:
        raise ValueError(f"image_size must be >= 64; received {image_size}.")
    out_dir = os.fspath(out_dir)
    present = os.listdir(out_dir) if os.path.isdir(out_dir) else []
    if present:
        if MANIFEST not in present and LEGACY_DEMO_STAMP not in present:
            raise FileExistsError(
                f"{out_dir} is not empty and holds no built-in dataset ({MANIFEST}); "
                "the built-in dataset is written only to a new or empty folder"
            )
        foreign = sorted(set(present) - set(_WRITTEN))
        if foreign:
            raise FileExistsError(
                f"{out_dir} holds files the built-in dataset did not write "
                f"({', '.join(foreign[:3])})"
            )
        for name in present:
            path = os.path.join(out_dir, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    os.makedirs(out_dir, exist_ok=True)
    settings = {
        "train": int(train),
        "val": int(val),
        "seed": int(seed),
        "image_size": int(image_size),
        "jpeg_quality": int(jpeg_quality),
        "owner": owner or "write_builtin_dataset",
    }
    # Written first (incomplete) and last (complete): a killed write is rewritten, not reused.
    _write_manifest(out_dir, settings, complete=False)
    out = {}
    for split, count in (("train", int(train)), ("val", int(val))):
        ann = _write_split(out_dir, split, count, seed, int(image_size), jpeg_quality)
        out[split] = (ann, os.path.join(out_dir, split))
    _write_manifest(out_dir, settings, complete=True)
    return out


def _write_manifest(out_dir, settings, complete):
    with open(os.path.join(out_dir, MANIFEST), "w", encoding="utf-8") as f:
        json.dump({"complete": complete, "settings": settings}, f, indent=1)
