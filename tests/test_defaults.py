"""SSD's published settings live in cfsam_keras/defaults.py, and nowhere else."""

import ast
import pathlib
import re

from cfsam_keras import defaults

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "cfsam_keras"
#: Arguments whose default is one of SSD's settings: it must name a constant.
SETTINGS = (
    "score_threshold",
    "iou_threshold",
    "max_detections",
    "pre_nms_top_k",
    "variances",
    "neg_pos_ratio",
)


def test_ssd_inference_and_training_settings():
    # Liu et al., 2016: detection_output_param and multibox_loss_param of the reference.
    assert defaults.SCORE_THRESHOLD == 0.01
    assert defaults.NMS_IOU_THRESHOLD == 0.45
    assert defaults.PRE_NMS_TOP_K == 400
    assert defaults.MAX_DETECTIONS == 200
    assert defaults.VARIANCES == (0.1, 0.2)
    assert defaults.MATCH_IOU_THRESHOLD == 0.5
    assert defaults.NEG_POS_RATIO == 3.0


def _literal_defaults(tree):
    """(line, name) of every function argument or flag in SETTINGS with a literal default."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            positional = args.posonlyargs + args.args
            pairs = list(zip(positional[len(positional) - len(args.defaults) :], args.defaults))
            pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
            for arg, default in pairs:
                if arg.arg in SETTINGS and not isinstance(default, (ast.Name, ast.Attribute)):
                    if not (isinstance(default, ast.Constant) and default.value is None):
                        found.append((node.lineno, arg.arg))
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            flags = [a.value for a in node.args if isinstance(a, ast.Constant)]
            names = {f.lstrip("-").replace("-", "_") for f in flags if isinstance(f, str)}
            for keyword in node.keywords:
                if keyword.arg == "default" and names & set(SETTINGS):
                    if isinstance(keyword.value, ast.Constant):
                        found.append((node.lineno, sorted(names & set(SETTINGS))[0]))
    return found


def test_nothing_else_restates_them():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "defaults.py":
            continue
        text = path.read_text(encoding="utf-8")
        for line, name in _literal_defaults(ast.parse(text)):
            offenders.append(f"{path.relative_to(PACKAGE)}:{line} {name}")
        for number, source_line in enumerate(text.splitlines(), 1):
            if re.search(r"(?<![\d.])0\.45(?!\d)", source_line):  # not 0.45882
                offenders.append(f"{path.relative_to(PACKAGE)}:{number} the literal 0.45")
    assert not offenders, "restated SSD settings: " + ", ".join(offenders)


def test_the_check_finds_a_restated_setting():
    tree = ast.parse(
        "def f(x, iou_threshold=0.45, *, max_detections=200): pass\n"
        "parser.add_argument('--score-threshold', default=0.01)\n"
        "def g(score_threshold=SCORE_THRESHOLD, variances=None): pass\n"
    )
    assert _literal_defaults(tree) == [
        (1, "iou_threshold"),
        (1, "max_detections"),
        (2, "score_threshold"),
    ]
