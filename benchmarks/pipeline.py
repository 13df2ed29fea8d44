"""Input pipeline throughput: decode + resize only vs. the full SSD training pipeline.

Both read the same JPEG files (the built-in dataset, written to a temporary
folder unless --data is given) and produce 300x300 float32 batches; (b) adds
SSD augmentation and target encoding for the 8732 SSD300 default boxes.
The two are timed in alternating rounds (``harness.interleaved_rounds``; each
round starts a fresh iterator and pulls warm-up batches untimed, so tf.data's
autotuning has settled) and the median round is reported, both as images/s
(wall clock) and as CPU time per image (all threads of this process), which
is less sensitive to other jobs on a shared machine.

    python benchmarks/pipeline.py [--images 400] [--image-size 500] [--batch-size 32] [--rounds 3]
"""

import argparse
import functools
import os
import statistics
import tempfile

import harness

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
    args = parser.parse_args()
    load_before = harness.load_average()

    import tensorflow as tf

    import cfsam_keras.data as data
    from cfsam_keras.anchors import ssd300_default_boxes

    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or tmp
        if not args.data:
            data.write_builtin_dataset(
                root, train=args.images, val=0, seed=0, image_size=args.image_size
            )
        source = data.coco(os.path.join(root, "instances_train.json"), os.path.join(root, "train"))
        size = args.input_size

        def decode_resize(record):
            image = data.decode_record(record)["image"]
            return tf.image.resize(tf.cast(image, tf.float32), [size, size])

        plain = (
            source.records()
            .shuffle(1024, seed=0)
            .repeat()
            .map(decode_resize, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(args.batch_size, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE)
        )
        full = data.train_pipeline(
            source, ssd300_default_boxes("voc"), size, args.batch_size, seed=0
        )
        medians = throughputs(
            {"plain": plain, "full": full}, args.batch_size, args.batches, args.warmup, args.rounds
        )
        (a, a_cpu), (b, b_cpu) = medians["plain"], medians["full"]
    m = harness.machine(load_before)
    load = "/".join(
        "n/a" if v is None else f"{v:.1f}"
        for v in (m["load_average_1min_before"], m["load_average_1min_after"])
    )

    print(
        f"{len(source)} JPEGs of {args.image_size}x{args.image_size}, output {size}x{size}, "
        f"batch {args.batch_size}, "
        f"{m['cores']} CPU cores ({m['cpu']}), TensorFlow {m['tensorflow']}, load average {load} "
        f"(before/after), median of {args.rounds} rounds of {args.batches} batches"
    )
    print("| pipeline | images/s | CPU ms / image |")
    print("|---|---|---|")
    print(f"| (a) decode + resize | {a:.1f} | {a_cpu:.2f} |")
    print(
        "| (b) full training pipeline (decode, SSD augmentation, target encoding) "
        f"| {b:.1f} | {b_cpu:.2f} |"
    )
    print(f"| ratio b / a (for CPU time: a / b) | {b / a:.2f} | {a_cpu / b_cpu:.2f} |")


if __name__ == "__main__":
    main()
