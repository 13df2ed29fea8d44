"""Input pipeline throughput: decode + resize only vs. the full SSD training pipeline.

Both read the same JPEG files (the built-in dataset, written to a temporary
folder unless --data is given) and produce 300x300 float32 batches; (b) adds
SSD augmentation and target encoding for the 8732 SSD300 default boxes. The
same two run on VOC-like images too (`voc_like`: the square images cut to
``--voc-size``, 500 x 375 as most of VOC, keeping the boxes mostly inside).
All are timed in alternating rounds (``harness.interleaved_rounds``; each
round starts a fresh iterator and pulls warm-up batches untimed, so tf.data's
autotuning has settled) and the median round is reported, both as images/s
(wall clock) and as CPU time per image (all threads of this process), which
is less sensitive to other jobs on a shared machine, with the images/s that
``--cores`` cores would feed at that CPU time. In the same rounds, target
encoding alone runs on each set's ground truths, (c) per example as the
training pipeline does and (d) after ``padded_batch``
(`batch_encoding.encode_batch`), checked equal bit for bit.

    python benchmarks/pipeline.py [--images 400] [--image-size 500] [--batch-size 32] [--rounds 3]
        [--voc-size 500x375] [--cores 16]
"""

import argparse
import functools
import glob
import json
import os
import statistics
import tempfile

import harness
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def warmed_iterator(dataset, warmup):
    """A fresh iterator of ``dataset`` after ``warmup`` batches."""
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    return iterator


def pull(batches):
    """A call pulling ``batches`` batches from the iterator it is given."""

    def call(iterator):
        for _ in range(batches):
            next(iterator)

    return call


def throughputs(pipelines, batch_size, batches, warmup, rounds):
    """Median (images/s wall clock, CPU ms per image) of each pipeline over its rounds.

    Every round times each pipeline on a fresh iterator, after ``warmup``
    untimed batches; the iterator is released after its timing, so only one
    pipeline runs at a time.
    """
    images = batches * batch_size
    prepare = {
        name: functools.partial(warmed_iterator, ds, warmup) for name, ds in pipelines.items()
    }
    timed = harness.interleaved_rounds(
        {name: pull(batches) for name in pipelines}, runs=rounds, warmup=0, prepare=prepare
    )
    return {
        name: (
            statistics.median(images / s for s in t["times_s"]),
            statistics.median(s / images * 1e3 for s in t["cpu_times_s"]),
        )
        for name, t in timed.items()
    }


#: Share of a box's area that must stay inside a VOC-like cut for the box to stay.
KEEP_AREA = 0.5


def voc_like(root, out, width, height):
    """The built-in dataset of ``root`` cut to ``width x height`` images, written to ``out``.

    Every image is cut at its top-left corner (JPEG quality 90, as the built-in
    dataset); a box stays, clipped, when at least `KEEP_AREA` of it is inside.

    Returns:
        ``(annotation file, image folder)`` of the VOC-like copy.
    """
    from PIL import Image

    with open(os.path.join(root, "instances_train.json"), encoding="utf-8") as f:
        coco = json.load(f)
    os.makedirs(os.path.join(out, "train"), exist_ok=True)
    for image in coco["images"]:
        with Image.open(os.path.join(root, "train", image["file_name"])) as im:
            if im.width < width or im.height < height:
                raise ValueError(f"--voc-size {width}x{height}: larger than {im.size}")
            im.crop((0, 0, width, height)).save(
                os.path.join(out, "train", image["file_name"]), quality=90
            )
        image.update(width=width, height=height)
    kept = []
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        x1, y1 = min(x + w, width), min(y + h, height)
        if (x1 - x) * (y1 - y) >= KEEP_AREA * w * h and x1 > x and y1 > y:
            kept.append(dict(a, bbox=[x, y, x1 - x, y1 - y], area=(x1 - x) * (y1 - y)))
    coco["annotations"] = kept
    path = os.path.join(out, "instances_train.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(coco, f)
    return path, os.path.join(out, "train")


def train_step_rates(results_dir):
    """``(file, {model: training images/s})`` of each train_step_*.json in ``results_dir``."""
    rates = []
    for path in sorted(glob.glob(os.path.join(results_dir, "train_step_*.json"))):
        with open(path, encoding="utf-8") as f:
            rows = json.load(f)["rows"]
        rates.append(
            (
                path,
                {n: r["train_images_per_s"] for n, r in rows.items() if "train_images_per_s" in r},
            )
        )
    return rates


def annotation_boxes(annotations):
    """``(boxes, classes)`` of every image of a COCO file, as lists of float32 ``[N, 4]``
    rel_xyxy arrays and int32 ``[N]`` arrays (category index by sorted id)."""

    with open(annotations, encoding="utf-8") as f:
        coco = json.load(f)
    categories = {c: i for i, c in enumerate(sorted(c["id"] for c in coco["categories"]))}
    per_image = {image["id"]: ([], []) for image in coco["images"]}
    sizes = {image["id"]: (image["width"], image["height"]) for image in coco["images"]}
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        width, height = sizes[a["image_id"]]
        per_image[a["image_id"]][0].append(
            [x / width, y / height, (x + w) / width, (y + h) / height]
        )
        per_image[a["image_id"]][1].append(categories[a["category_id"]])
    return (
        [np.asarray(b, np.float32).reshape(-1, 4) for b, _ in per_image.values()],
        [np.asarray(c, np.int32) for _, c in per_image.values()],
    )


def encoding_pipelines(boxes, classes, anchors, batch_size):
    """Target encoding alone on the same ground truths: per example, as `train_pipeline`
    does (``encode`` in the map, then ``batch``), and after ``padded_batch`` with
    `batch_encoding.encode_batch`."""
    import tensorflow as tf
    from batch_encoding import encode_batch

    from cfsam_keras.targets import encode

    counts = [len(c) for c in classes]
    padded = np.zeros((len(boxes), max(counts + [1]), 4), np.float32)
    labels = np.zeros(padded.shape[:2], np.int32)
    for i, (b, c) in enumerate(zip(boxes, classes)):
        padded[i, : len(c)], labels[i, : len(c)] = b, c
    examples = (
        tf.data.Dataset.from_tensor_slices((padded, labels, counts))
        .map(lambda b, c, n: (b[:n], c[:n]))
        .cache()
        .repeat()
    )
    per_example = (
        examples.map(lambda b, c: encode(b, c, anchors), num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    batched = (
        examples.padded_batch(batch_size, padding_values=(0.0, -1), drop_remainder=True)
        .map(lambda b, c: encode_batch(b, c, anchors), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    return per_example, batched


def _size(text):
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if width < 64 or height < 64:
        raise argparse.ArgumentTypeError(f"both sides must be >= 64, got {text!r}")
    return width, height


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", help="folder of an existing make-dataset output (default: write one)"
    )
    parser.add_argument("--images", type=int, default=400, help="images to write (default 400)")
    parser.add_argument(
        "--image-size",
        type=int,
        default=500,
        help="side of the written JPEGs (default 500, VOC-like)",
    )
    parser.add_argument("--input-size", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--batches", type=int, default=10, help="timed batches per pipeline and round"
    )
    parser.add_argument("--warmup", type=int, default=4, help="untimed batches before each timing")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating timing rounds (median reported)"
    )
    parser.add_argument(
        "--voc-size",
        type=_size,
        default=(500, 375),
        help="WIDTHxHEIGHT of the VOC-like images, cut from the square ones (default 500x375)",
    )
    parser.add_argument(
        "--cores", type=int, default=16, help="cores whose feeding rate is printed (default 16)"
    )
    parser.add_argument(
        "--results",
        default=os.path.join("docs", "results"),
        help="folder of the train_step_*.json whose training images/s are printed beside",
    )
    args = parser.parse_args()
    if args.cores < 1:
        parser.error(f"--cores must be >= 1; got {args.cores}")
    load_before = harness.load_average()

    import tensorflow as tf

    import cfsam_keras.data as data
    from cfsam_keras.anchors import ssd300_default_boxes

    size = args.input_size

    def decode_resize(record):
        image = data.decode_record(record)["image"]
        return tf.image.resize(tf.cast(image, tf.float32), [size, size])

    def pipelines(source):
        plain = (
            source.records()
            .shuffle(1024, seed=0)
            .repeat()
            .map(decode_resize, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(args.batch_size, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE)
        )
        full = data.train_pipeline(source, anchors, size, args.batch_size, seed=0)
        return plain, full

    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or os.path.join(tmp, "square")
        if not args.data:
            data.write_builtin_dataset(
                root, train=args.images, val=0, seed=0, image_size=args.image_size
            )
        files = {
            "--data" if args.data else f"{args.image_size}x{args.image_size}": (
                os.path.join(root, "instances_train.json"),
                os.path.join(root, "train"),
            ),
            "{}x{} (VOC-like)".format(*args.voc_size): voc_like(
                root, os.path.join(tmp, "voc_like"), *args.voc_size
            ),
        }
        anchors = ssd300_default_boxes("voc")
        timed, boxes, identical = {}, {}, {}
        for name, (annotations, folder) in files.items():
            source = data.coco(annotations, folder)
            timed[name, "plain"], timed[name, "full"] = pipelines(source)
            gt_boxes, gt_classes = annotation_boxes(annotations)
            boxes[name] = sum(map(len, gt_classes)) / len(gt_classes)
            timed[name, "encode"], timed[name, "encode batched"] = encoding_pipelines(
                gt_boxes, gt_classes, anchors, args.batch_size
            )
            identical[name] = all(
                np.array_equal(a.numpy(), b.numpy())
                for a, b in zip(
                    timed[name, "encode"].take(4), timed[name, "encode batched"].take(4)
                )
            )
        medians = throughputs(timed, args.batch_size, args.batches, args.warmup, args.rounds)
    m = harness.machine(load_before)
    load = harness.load_text(m)

    print(
        f"{len(source)} JPEGs per set, output {size}x{size}, batch {args.batch_size}, "
        f"{m['cores']} CPU cores ({m['cpu']}), TensorFlow {m['tensorflow']}, load average {load} "
        f"(before/after), median of {args.rounds} rounds of {args.batches} batches"
    )
    print(
        "| images | boxes / image | (a) decode + resize: images/s, CPU ms / image "
        "| (b) full training pipeline: images/s, CPU ms / image | b / a (CPU time) "
        f"| images/s {args.cores} cores feed at (b)'s CPU time |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name in files:
        (a, a_cpu), (b, b_cpu) = medians[name, "plain"], medians[name, "full"]
        print(
            f"| {name} | {boxes[name]:.1f} | {a:.1f}, {a_cpu:.2f} | {b:.1f}, {b_cpu:.2f} "
            f"| {b_cpu / a_cpu:.2f} | {args.cores * 1000 / b_cpu:.0f} |"
        )
    print(
        "\n| images | (c) target encoding alone, per example: CPU ms / image "
        "| (d) after padded_batch (`encode_batch`): CPU ms / image | d / c "
        "| (c) share of (b) | d == c, bit for bit |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for name in files:
        c_cpu, d_cpu = medians[name, "encode"][1], medians[name, "encode batched"][1]
        print(
            f"| {name} | {c_cpu:.2f} | {d_cpu:.2f} | {d_cpu / c_cpu:.2f} "
            f"| {c_cpu / medians[name, 'full'][1]:.0%} | {identical[name]} |"
        )
    for path, rates in train_step_rates(args.results):
        shown = ", ".join(f"{n} {r:.2f}" for n, r in rates.items())
        print(f"Training step, images/s ({path}): {shown}")


if __name__ == "__main__":
    main()
