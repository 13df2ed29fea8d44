"""Fine-tune a trained SSD with and without an attention module: the same detector, data,
seed and steps for both arms.

The ``--from`` model (a ``.keras`` SSD without attention: a recipe's checkpoint, or a
peer's detector from ``cfsam-keras convert-weights``) is trained on for the same steps
twice per seed: as it is ("none"), and with the module inserted before its heads
(``cfsam_keras.models.add_attention``; CFSAM starts as the identity, so both arms start
from the same outputs). Writes OUT/compare.json in the comparison recipe's format (every
run, every epoch, plus the starting detector's scores), one JSON per finished run in
OUT/runs/, and OUT/compare.md and OUT/convergence.png.

    python recipes/finetune_attention.py --from runs/demo_none/checkpoints/last.keras \\
        --out docs/results/finetune_builtin
    python recipes/finetune_attention.py --dataset voc --data-dir ~/data/VOCdevkit \\
        --from ssd300_voc.keras --out runs/finetune_voc

``--dataset builtin`` uses the demo's dataset and flags; ``voc`` / ``coco`` SSD300's
(configs.SSD300). Both with configs.FINETUNE's changes: a short, low-rate continuation.
"""

import argparse
import os
import sys

import common
import compare_attention
import configs
import keras

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))
import harness  # noqa: E402 (benchmarks/harness.py: the machine a run is on)
import report  # noqa: E402 (benchmarks/report.py: the comparison's table and plot)

from cfsam_keras import training
from cfsam_keras.evaluation import evaluate_detector
from cfsam_keras.evaluation.evaluation_callback import logged_metrics
from cfsam_keras.models import add_attention
from cfsam_keras.models import detector
from cfsam_keras.models import model_config
from cfsam_keras.training.callbacks import atomic_write_json


def dataset_defaults(name):
    defaults, *_ = compare_attention.dataset_settings(name)
    changes = configs.FINETUNE["builtin" if name == "builtin" else "ssd300"]
    return dict(defaults, **changes, out=f"runs/finetune_{name}")


def parser(argv):
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--dataset", choices=compare_attention.DATASETS, default="builtin")
    known, _ = pre.parse_known_args(argv)
    p = common.recipe_parser(
        __doc__.split("\n\n")[0], dataset_defaults(known.dataset), prog="finetune_attention"
    )
    g = p.add_argument_group("fine-tuning")
    g.add_argument(
        "--from",
        dest="weights",
        required=True,
        help=".keras file of a trained SSD without attention",
    )
    g.add_argument("--dataset", choices=compare_attention.DATASETS, default="builtin")
    g.add_argument("--seeds", default="0,1,2", help="comma-separated seeds, one run per arm each")
    compare_attention.add_builtin_flags(g)
    return p


def load_trained(path, class_names):
    """The ``--from`` model, checked: an SSD without attention, of the dataset's classes."""
    if not str(path).endswith(".keras") or not os.path.isfile(path):
        raise ValueError(f"--from {path}: expected an existing .keras file")
    model = keras.saving.load_model(path, compile=False)
    names = model_config(model)["class_names"]
    if names != list(class_names):
        raise ValueError(
            f"--from {path}: its classes {names[:3]}... are not the dataset's "
            f"{list(class_names)[:3]}..."
        )
    return model


def run_config(weights):
    """The flags of the recipe run that wrote ``weights`` (RUN/checkpoints/X.keras), or None."""
    run = training.RunDir(os.path.dirname(os.path.dirname(os.path.abspath(weights))))
    try:
        return run.read_config()
    except (OSError, ValueError):
        return None


def starting_scores(args, model, val_source):
    """COCO AP and VOC mAP of the detector both arms start from."""
    results = evaluate_detector(
        detector(model),
        val_source,
        batch_size=max(1, min(args.batch_size, 16)),
        **({"max_images": args.eval_images} if args.eval_images else {}),
    )
    return logged_metrics(results)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = common.parse_args(parser(argv), argv)
    if args.attention == "none":
        raise ValueError("--attention: pick the module to add (e.g. cfsam); 'none' is the baseline")
    settings = compare_attention.dataset_settings(args.dataset)
    attention_kwargs = {}
    if args.dataset == "builtin" and args.attention == "cfsam":
        attention_kwargs = dict(configs.DEMO_MODEL["attention_kwargs"])  # the demo's CFSAM
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]

    load_before = harness.load_average()
    strategy = common.start_runtime(args)
    sources = compare_attention.load_sources(args)
    trained = load_trained(args.weights, sources[0].class_names)
    args.input_size = model_config(trained)["input_size"]
    add_attention(trained, args.attention, **attention_kwargs)  # refuses early what it cannot do
    start = starting_scores(args, trained, sources[1])

    def make_model(run_args):
        model = load_trained(args.weights, sources[0].class_names)
        if run_args.attention == "none":
            return model
        return add_attention(model, run_args.attention, **attention_kwargs)

    runs_dir = os.path.join(args.out, "runs")
    os.makedirs(runs_dir, exist_ok=True)
    arms = {"none": ("none", {}), args.attention: (args.attention, attention_kwargs)}

    def train(name, seed):
        attention, kwargs = arms[name]
        return compare_attention.train_one(
            args, name, attention, kwargs, seed, sources, settings, strategy, make_model
        )

    grid = [(name, seed) for seed in seeds for name in arms]
    records = compare_attention.run_grid(
        runs_dir, grid, compare_attention.run_settings(args), train
    )
    config = {k: v for k, v in vars(args).items() if k != "config"}
    config.update(variants=list(arms), seeds=seeds, attention_kwargs=attention_kwargs)
    result = {
        "dataset": args.dataset,
        "settings": config,
        "start": start,
        "start_run": run_config(args.weights),
        "runs": records,
        "machine": harness.machine(load_before),
    }
    atomic_write_json(result, os.path.join(args.out, "compare.json"))
    report.write_comparison(args.out)
    print(f"wrote {os.path.join(args.out, 'compare.json')}, compare.md and convergence.png")
    return 0


if __name__ == "__main__":
    sys.exit(common.run(main))
