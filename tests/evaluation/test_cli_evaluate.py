"""`cfsam-keras evaluate`: --help and one-line errors.

The full run is in test_evaluation_end_to_end.py.
"""

import pytest

from cfsam_keras import cli


@pytest.fixture(autouse=True)
def _only_evaluate(monkeypatch):
    # Parse with the evaluate sub-command alone, so these tests do not depend on
    # the other sub-command modules (each is tested in its own file).
    monkeypatch.setattr(cli, "SUBCOMMANDS", ("evaluate",))


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["evaluate", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--model",
        "--coco-annotations",
        "--image-dir",
        "--voc-devkit",
        "--year",
        "--tfds",
        "--split",
        "--data-dir",
        "--batch-size",
        "--score-threshold",
        "--iou-threshold",
        "--max-detections",
        "--max-images",
        "--out",
        "--verbose",
    ):
        assert flag in text, flag


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "m.keras"
    path.write_bytes(b"not really a model")
    return str(path)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "m.h5", "--tfds", "voc/2007"], "--model must be a .keras file"),
        (["--model", "absent.keras", "--tfds", "voc/2007"], "model file not found: absent.keras"),
        (["--model", "{model}"], "choose one dataset"),
        (
            ["--model", "{model}", "--tfds", "voc/2007", "--voc-devkit", "{tmp}"],
            "choose one dataset: --coco-annotations FILE --image-dir DIR, --voc-devkit DIR or "
            "--tfds NAME (got --voc-devkit and --tfds)",
        ),
        (["--model", "{model}", "--voc-devkit", "{tmp}/nope"], "VOC devkit folder not found"),
        (
            ["--model", "{model}", "--coco-annotations", "{tmp}/a.json"],
            "--coco-annotations needs --image-dir DIR",
        ),
        (
            ["--model", "{model}", "--coco-annotations", "{tmp}/a.json", "--image-dir", "{tmp}"],
            "COCO annotation file not found",
        ),
        (
            ["--model", "{model}", "--tfds", "voc/2007", "--batch-size", "0"],
            "argument --batch-size: must be a positive int, got 0",
        ),
        (
            ["--model", "{model}", "--tfds", "voc/2007", "--score-threshold", "1.5"],
            "argument --score-threshold: must be in [0.0, 1.0), got 1.5",
        ),
        (
            ["--model", "{model}", "--voc-devkit", "{tmp}", "--out", "{model}/results.json"],
            "--out: cannot write",  # checked before the model loads or anything is scored
        ),
        (["--model", "{model}", "--voc-devkit", "{tmp}", "--out", "{tmp}"], "--out: "),
        # Passes the argument checks, then the file does not load as a model.
        (["--model", "{model}", "--voc-devkit", "{tmp}"], "--model: cannot load"),
    ],
)
def test_bad_arguments_give_one_line(argv, message, model_file, tmp_path, capsys):
    argv = [a.format(model=model_file, tmp=tmp_path) for a in argv]
    try:
        code = cli.main(["evaluate", *argv])
    except SystemExit as e:  # a flag argparse refuses
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("cfsam-keras evaluate: error: ")
    assert message in err
    assert err.count("\n") == 1  # one line, no traceback


def test_missing_required_model_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["evaluate", "--tfds", "voc/2007"])
    assert exit_info.value.code == 2
    assert "--model" in capsys.readouterr().err


def test_classes_in_another_order_are_refused_other_names_warned(capsys):
    from cfsam_keras.cli import CLIError
    from cfsam_keras.cli.evaluate import _check_classes

    _check_classes(["cat", "dog"], ["cat", "dog"])
    _check_classes(["class_0", "class_1"], ["cat", "dog"])  # names never stored: no warning
    assert capsys.readouterr().err == ""
    with pytest.raises(CLIError, match="class 0 is 'dog' in the model, 'cat' in the dataset"):
        _check_classes(["dog", "cat"], ["cat", "dog"])
    with pytest.raises(CLIError, match="predicts 2 classes but the dataset has 3"):
        _check_classes(["cat", "dog"], ["cat", "dog", "cow"])
    _check_classes(["tvmonitor", "dog"], ["tv", "dog"])
    assert "warning: the model's class names ['tvmonitor', 'dog']" in capsys.readouterr().err
