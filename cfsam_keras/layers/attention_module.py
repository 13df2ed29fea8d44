"""Build a multi-level attention module by name."""

from cfsam_keras.layers.cbam import CBAM
from cfsam_keras.layers.cfsam import CFSAM
from cfsam_keras.layers.eca import ECA
from cfsam_keras.layers.squeeze_excitation import SqueezeExcitation

ATTENTION_MODULES = {
    "cfsam": CFSAM,
    "se": SqueezeExcitation,
    "cbam": CBAM,
    "eca": ECA,
}


def attention_module(name, **kwargs):
    """Returns a list-in, list-out attention layer, or None for no attention.

    Args:
        name: one of `"cfsam"`, `"se"`, `"cbam"`, `"eca"` (case-insensitive),
            or `"none"` / `None` for no module.
        **kwargs: passed to the layer's constructor (e.g. `embed_dim=128` for
            CFSAM, `reduction=8` for SE).

    Returns:
        a `CFSAM`, `SqueezeExcitation`, `CBAM` or `ECA` instance, or `None`.

    Example:
    >>> type(attention_module("se", reduction=8)).__name__
    'SqueezeExcitation'
    >>> attention_module("none") is None
    True
    """
    if name is None:
        key = "none"
    elif isinstance(name, str):
        key = name.lower()
    else:
        raise ValueError(f"`name` must be a string or None; received {type(name).__name__}.")
    if key == "none":
        if kwargs:
            raise ValueError(
                f"attention_module('none') takes no arguments; received {sorted(kwargs)}."
            )
        return None
    if key not in ATTENTION_MODULES:
        raise ValueError(
            f"Unknown attention module {name!r}; expected one of "
            f"{sorted(ATTENTION_MODULES) + ['none']}."
        )
    return ATTENTION_MODULES[key](**kwargs)
