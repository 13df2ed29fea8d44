"""``cfsam-keras convert-weights``: a peer's trained SSD300 as a ``.keras`` model of ours."""

import os

from cfsam_keras.cli.common import CLIError
from cfsam_keras.cli.common import read_class_names_arg

PEERS = ("torchvision", "ssd.pytorch")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "convert-weights",
        help="turn torchvision's or ssd.pytorch's trained SSD300 into a .keras model",
        description=(
            "Reads a state dict of torchvision's ssd300_vgg16 or of ssd.pytorch's SSD300 "
            "(.pth needs torch; .npz and .safetensors do not) and writes our SSD300-VGG16 "
            "with the same weights, its input convention and class names inside: the model "
            "takes RGB in [0, 255] like every model of ours."
        ),
    )
    parser.add_argument("weights", metavar="IN", help=".pth, .pt, .npz or .safetensors file")
    parser.add_argument("--from", dest="peer", required=True, choices=PEERS, help="its layout")
    parser.add_argument("--out", required=True, metavar="OUT.keras", help="the model to write")
    parser.add_argument(
        "--class-names",
        metavar="FILE",
        help="names of its object classes (one a line, or a COCO annotation file); "
        "default: COCO's for 91 torchvision slots or 81 ssd.pytorch outputs, VOC's for 21",
    )
    parser.add_argument(
        "--unused-slots",
        choices=("drop", "keep"),
        default="drop",
        help="torchvision's COCO model: drop its 10 unused slots (80 classes) or keep all 90",
    )
    parser.add_argument(
        "--anchor-preset",
        choices=("voc", "coco"),
        help="ssd.pytorch: the default boxes it was trained with (default: voc; coco for 81 "
        "outputs)",
    )
    parser.set_defaults(run=run)
    return parser


def run(args):
    from cfsam_keras.models import from_ssd_pytorch
    from cfsam_keras.models import from_torchvision
    from cfsam_keras.models import model_config
    from cfsam_keras.training.callbacks import atomic_save_model

    if not args.out.endswith(".keras"):
        raise CLIError(f"--out must end in .keras, got {args.out}")
    if os.path.exists(args.out):
        raise CLIError(f"--out {args.out} exists; pick a new name (nothing is overwritten)")
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        raise CLIError(f"--out: no such folder: {folder}")
    if args.peer == "ssd.pytorch" and args.unused_slots != "drop":
        raise CLIError("--unused-slots is for --from torchvision")
    if args.peer == "torchvision" and args.anchor_preset:
        raise CLIError("--anchor-preset is for --from ssd.pytorch (torchvision has one layout)")
    class_names = read_class_names_arg(args.class_names)
    try:
        if args.peer == "torchvision":
            model = from_torchvision(args.weights, class_names, unused_slots=args.unused_slots)
        else:
            model = from_ssd_pytorch(args.weights, class_names, anchor_preset=args.anchor_preset)
    except ValueError as e:
        raise CLIError(str(e)) from None
    atomic_save_model(model, args.out)
    config = model_config(model)
    preprocessing = model.get_layer("preprocessing").get_config()["mode"]
    print(
        f"wrote {args.out}: {model.name}, {config['num_classes']} classes "
        f"({', '.join(config['class_names'][:3])}, ...), input {config['input_size']} RGB "
        f"0..255, preprocessing {preprocessing!r} inside"
    )
    return 0
