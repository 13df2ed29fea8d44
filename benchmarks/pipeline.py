"""Input pipeline throughput: decode + resize only vs. the full SSD training pipeline.

Both read the same JPEG files (the built-in dataset, written to a temporary
folder unless --data is given) and produce 300x300 float32 batches; (b) adds
SSD augmentation and target encoding for the 8732 SSD300 default boxes.
The two are timed in alternating rounds (after warm-up batches, so tf.data's
autotuning has settled) and the median round is reported, both as images/s
(wall clock) and as CPU time per image (all threads of this process), which
is less sensitive to other jobs on a shared machine.

    python benchmarks/pipeline.py [--images 400] [--image-size 500] [--batch-size 32] [--rounds 3]
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def throughput(dataset, batch_size, batches, warmup):
    """(images/s wall clock, CPU ms per image) over ``batches`` batches of a fresh
    iterator, after ``warmup`` batches; only this iterator runs meanwhile."""
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(iterator)
    images = batches * batch_size
    return images / (time.perf_counter() - start), (time.process_time() - cpu) / images * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="folder of an existing make-dataset output (default: write one)")
    parser.add_argument("--images", type=int, default=400, help="images to write (default 400)")
    parser.add_argument("--image-size", type=int, default=500, help="side of the written JPEGs (default 500, VOC-like)")
    parser.add_argument("--input-size", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=10, help="timed batches per pipeline and round")
    parser.add_argument("--warmup", type=int, default=4, help="untimed batches before each timing")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timing rounds (median reported)")
    args = parser.parse_args()

    import tensorflow as tf

    import cfsam_keras.data as data
    from cfsam_keras.anchors import ssd300_default_boxes

    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or tmp
        if not args.data:
            data.write_builtin_dataset(root, train=args.images, val=0, seed=0, image_size=args.image_size)
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
        full = data.train_pipeline(source, ssd300_default_boxes("voc"), size, args.batch_size, seed=0)
        rounds = [
            [throughput(ds, args.batch_size, args.batches, args.warmup) for ds in (plain, full)]
            for _ in range(args.rounds)
        ]
        (a, a_cpu), (b, b_cpu) = (
            (statistics.median(r[k][0] for r in rounds), statistics.median(r[k][1] for r in rounds)) for k in (0, 1)
        )
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    print(f"{len(source)} JPEGs of {args.image_size}x{args.image_size}, output {size}x{size}, batch {args.batch_size}, "
          f"{os.cpu_count()} CPU cores, TensorFlow {tf.__version__}, load average {load:.1f}, "
          f"median of {args.rounds} rounds of {args.batches} batches")
    print("| pipeline | images/s | CPU ms / image |")
    print("|---|---|---|")
    print(f"| (a) decode + resize | {a:.1f} | {a_cpu:.2f} |")
    print(f"| (b) full training pipeline (decode, SSD augmentation, target encoding) | {b:.1f} | {b_cpu:.2f} |")
    print(f"| ratio b / a (for CPU time: a / b) | {b / a:.2f} | {a_cpu / b_cpu:.2f} |")


if __name__ == "__main__":
    main()
