"""The demo's report: curves from the history, tables, drawn predictions."""

import json

import numpy as np
from PIL import Image


def test_report_has_tables_curves_and_pictures(tmp_path):
    import run_report as report

    with open(tmp_path / "history.jsonl", "w") as f:
        f.write(json.dumps({"epoch": 1, "loss": 3.0}) + "\n")
        f.write(json.dumps({"epoch": 2, "loss": 2.0, "val_AP50": 0.4}) + "\n")
    image = np.zeros((64, 48, 3), np.uint8)
    detections = {
        "boxes": np.array([[0.1, 0.1, 0.6, 0.5]]),
        "scores": np.array([0.9]),
        "classes": np.array([1]),
    }
    picture = report.draw_prediction(image, detections, ["a", "b"], str(tmp_path / "p" / "x.png"))
    drawn = np.asarray(Image.open(picture))
    assert drawn.shape == (256, 192, 3)  # enlarged 4x to about 256 px
    assert drawn.any()  # the box and its label are drawn on the black image
    path = report.write_report(
        str(tmp_path), "Tiny", {"AP50": 0.5}, settings={"epochs": 2}, images=[picture]
    )
    text = open(path).read()
    assert "| AP50 | 0.5000 |" in text and "p/x.png" in text
    assert (tmp_path / "loss.png").stat().st_size > 1000
    assert (tmp_path / "map.png").stat().st_size > 1000
