"""``cfsam-keras train``: run a training recipe by name, file or JSON config."""

import argparse
import json
import os

from cfsam_keras.cli import CLIError

#: Recipe names and their files in the source checkout's ``recipes/`` folder.
RECIPES = {"demo": "demo.py", "voc": "ssd300_voc.py", "coco": "ssd300_coco.py"}

_EPILOG = """\
RECIPE is one of:
  demo   recipes/demo.py: the built-in shapes dataset on a CPU, end to end
  voc    recipes/ssd300_voc.py: SSD300 on VOC07+12 trainval, tested on VOC07 test
  coco   recipes/ssd300_coco.py: SSD300 on COCO train2017, tested on val2017
  a path to a recipe .py file (it defines main(argv))
  a path to a .json config: {"recipe": "demo", "epochs": 3, "out": "runs/x", ...}
    (keys are the recipe's flags with - written as _; flags after RECIPE win)

All flags after RECIPE go to the recipe; see them with:
  cfsam-keras train demo --help

Examples:
  cfsam-keras train demo --out runs/demo
  cfsam-keras train voc --data-dir ~/data/VOCdevkit --batch-size 32 --out runs/voc
  cfsam-keras train coco --tfds --strategy mirrored --mixed-precision --out runs/coco
A run killed part-way resumes from its last finished epoch when started again
with the same --out.
"""


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="train SSD with a recipe (demo, voc, coco, a recipe file or a JSON config)",
        description="Runs a training recipe with model.fit: strategy, data, model, optimizer, callbacks.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("recipe", metavar="RECIPE", help="demo | voc | coco | path/to/recipe.py | path/to/config.json")
    parser.add_argument("recipe_args", nargs=argparse.REMAINDER, metavar="...", help="flags passed to the recipe")
    parser.set_defaults(run=run)
    return parser


def recipes_dir():
    """The ``recipes/`` folder of the source checkout, or ``None``."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for candidate in (os.path.join(os.getcwd(), "recipes"), os.path.join(here, "recipes")):
        if os.path.isfile(os.path.join(candidate, RECIPES["demo"])):
            return candidate
    return None


def _recipe_file(name):
    if name in RECIPES:
        folder = recipes_dir()
        if folder is None:
            raise CLIError(
                f"recipe {name!r}: the recipes/ folder ships with the source checkout, not "
                "the package; run from the checkout or pass the path of the recipe file"
            )
        return os.path.join(folder, RECIPES[name])
    if name.endswith(".py"):
        if not os.path.isfile(name):
            raise CLIError(f"recipe file {name} does not exist")
        return name
    raise CLIError(f"unknown recipe {name!r}; expected {', '.join(RECIPES)}, a .py recipe file or a .json config")


def config_to_argv(path):
    """Reads a JSON config into ``(recipe, [flags])``."""
    try:
        with open(path) as f:
            config = json.load(f)
    except OSError as e:
        raise CLIError(f"cannot read config {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise CLIError(f"config {path} is not valid JSON: {e}") from None
    if not isinstance(config, dict) or "recipe" not in config:
        raise CLIError(f"config {path} must be a JSON object with a \"recipe\" key")
    recipe = config.pop("recipe")
    argv = []
    for key, value in config.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, list):
            argv += [flag] + [str(v) for v in value]
        else:
            argv += [flag, str(value)]
    return recipe, argv


def load_recipe(path):
    """Imports a recipe file as a module; it must define ``main(argv)``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"cfsam_keras_recipe_{os.path.basename(path)[:-3]}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise CLIError(f"recipe file {path} has a syntax error: {e}") from None
    if not callable(getattr(module, "main", None)):
        raise CLIError(f"recipe file {path} does not define main(argv)")
    return module


def run(args):
    recipe, argv = args.recipe, list(args.recipe_args)
    if recipe.endswith(".json"):
        recipe, config_argv = config_to_argv(recipe)
        argv = config_argv + argv
    module = load_recipe(_recipe_file(recipe))

    from cfsam_keras.training.callbacks import TrainingDivergedError

    try:
        return int(module.main(argv) or 0)
    except (TrainingDivergedError, ValueError) as e:
        raise CLIError(str(e)) from None
    except OSError as e:  # a missing dataset folder or file, an unwritable --out
        raise CLIError(str(e)) from None
