"""Argument checks shared by the library and its command line.

Each check has one contract: it returns the value as the type it names or raises
``ValueError("<name> must be <requirement>; received <value>.")``. ``flag(check)``
turns a check into an ``argparse`` type, so a command-line flag is held to the same
contract as the argument of the function it feeds. Imports nothing heavy.
"""

import argparse
import math
import numbers


def _fail(name, requirement, value):
    raise ValueError(f"{name} must be {requirement}; received {value!r}.")


def _integer(value, name, allow_none):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        _fail(name, "an int", value)
    return int(value)


def positive_int(value, name, allow_none=False):
    """``value`` as an int >= 1 (``None`` passes through with ``allow_none``)."""
    value = _integer(value, name, allow_none)
    if value is not None and value < 1:
        _fail(name, "a positive int", value)
    return value


def non_negative_int(value, name, allow_none=False):
    """``value`` as an int >= 0 (``None`` passes through with ``allow_none``)."""
    value = _integer(value, name, allow_none)
    if value is not None and value < 0:
        _fail(name, "an int >= 0", value)
    return value


def number(value, name, low=None, high=None, low_open=False, high_open=False, allow_none=False):
    """``value`` as a finite float within the given bounds.

    Args:
        value: the number to check.
        name: how the argument is named in the error.
        low, high: the bounds (``None`` for none).
        low_open, high_open: exclude the bound itself.
        allow_none: let ``None`` pass through.

    Example:
    >>> number(0.3, "score_threshold", 0.0, 1.0, high_open=True)
    0.3
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        _fail(name, "a finite number", value)
    value = float(value)
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if below or above:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        interval = (
            f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        )
        _fail(name, f"in {interval}", value)
    return value


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` that reports a bad flag as one line.

    ``prog: error: message`` on stderr and exit status 2, without the usage text;
    its sub-command parsers do the same.
    """

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def flag(check, parse=None, **kwargs):
    """An ``argparse`` type that parses a flag's text and holds it to ``check``.

    Args:
        check: ``positive_int``, ``non_negative_int`` or ``number``.
        parse: how to read the text (default: ``int`` for the int checks,
            ``float`` for ``number``).
        **kwargs: more arguments of ``check`` (``low``, ``high``, ...).

    Example:
    >>> parser.add_argument("--epochs", type=flag(positive_int))
    """
    parse = parse or (float if check is number else int)

    def convert(text):
        try:
            return check(parse(text), "the value", **kwargs)
        except ValueError as e:
            message = str(e).removeprefix("the value ").split(";")[0]
            if not message.startswith("must"):
                message = f"must be {'a number' if parse is float else 'an int'}"
            raise argparse.ArgumentTypeError(f"{message}, got {text}") from None

    convert.__name__ = check.__name__
    return convert
