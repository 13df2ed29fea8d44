import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(REPO, "recipes", "demo.py")
#: Demo flags for a tiny, fast model and dataset.
TINY = [
    "--input-size", "96", "--image-size", "96", "--alpha", "0.35",
    "--train-images", "24", "--val-images", "8", "--batch-size", "4",
    "--predict-images", "2", "--skip-export",
]


def write_tiny_dataset(folder):
    """A tiny built-in dataset, written the way the demo writes (and reuses) it."""
    from cfsam_keras.cli.train import load_recipe

    load_recipe(DEMO).builtin_dataset(str(folder), 24, 8, 96, 0)
    return str(folder)


def subprocess_env(**extra):
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env
