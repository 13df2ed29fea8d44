import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_and_clear():
    import keras

    keras.utils.set_random_seed(1234)
    np.random.seed(1234)
    yield
    keras.backend.clear_session()


def pytest_collection_modifyitems(config, items):
    """Files with the most slow tests run first.

    Under ``-n 2 --dist loadfile`` each worker takes whole files in this order; the
    long files then start early and the short ones fill the gaps, instead of two long
    files lining up at the end. The order within a file is kept.
    """
    slow = {}
    for item in items:
        slow[item.path] = slow.get(item.path, 0) + bool(item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.path])
