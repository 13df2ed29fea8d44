"""Fixtures of the data tests; the datasets come from ``tests/fake_data.py``."""

import fake_data
import pytest


@pytest.fixture
def helpers():
    class H:
        pass

    h = H()
    for name in ("save_image", "rect_image", "write_coco", "write_voc", "voc_xml", "jpeg_bytes"):
        setattr(h, name, staticmethod(getattr(fake_data, name)))
    return h
