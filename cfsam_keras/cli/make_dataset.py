"""``cfsam-keras make-dataset``: write the built-in shapes dataset as COCO files."""

from cfsam_keras.cli.common import CLIError


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "make-dataset",
        help="write the built-in multi-scale shapes dataset (COCO format)",
        description=(
            "Writes the built-in dataset to DIR as a standard COCO dataset: train/*.jpg, "
            "val/*.jpg, instances_train.json, instances_val.json. Deterministic given --seed."
        ),
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--train", type=int, default=1000, metavar="N", help="training images (default 1000)"
    )
    parser.add_argument(
        "--val", type=int, default=200, metavar="M", help="validation images (default 200)"
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="dataset seed (default 0)")
    parser.add_argument(
        "--image-size",
        type=int,
        default=320,
        metavar="PX",
        help="image side in pixels (default 320)",
    )
    parser.set_defaults(run=run)
    return parser


def run(args):
    import os
    import time

    from cfsam_keras.data.builtin import write_builtin_dataset

    if args.train < 0 or args.val < 0:
        raise CLIError(f"--train and --val must be >= 0 (got {args.train}, {args.val})")
    if args.image_size < 64:
        raise CLIError(f"--image-size must be >= 64 (got {args.image_size})")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CLIError(f"--out {args.out} exists and is not a folder")
    start = time.perf_counter()
    try:
        paths = write_builtin_dataset(
            args.out, args.train, args.val, args.seed, image_size=args.image_size
        )
    except FileExistsError as e:
        raise CLIError(f"--out: {e}") from None
    except OSError as e:
        raise CLIError(f"cannot write to {args.out}: {e}") from None
    seconds = time.perf_counter() - start
    for split, (annotation_file, image_dir) in paths.items():
        print(f"{split}: {annotation_file} ({image_dir})")
    print(f"wrote {args.train + args.val} images in {seconds:.1f} s")
    return 0
