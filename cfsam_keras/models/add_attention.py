"""An attention module inserted into a trained SSD detector, between its maps and heads."""

import keras

from cfsam_keras.layers import ATTENTION_MODULES
from cfsam_keras.layers import attention_module
from cfsam_keras.models.ssd import model_config


def add_attention(model, attention="cfsam", **attention_kwargs):
    """A copy of an SSD model without attention, with ``attention`` before its heads.

    Every weight of ``model`` is copied, so the new model is the trained detector plus
    a freshly initialised module. CFSAM with its default ``fusion="residual"`` starts
    as the identity (its per-level scales start at zero), so the new model's outputs
    equal ``model``'s exactly until it is trained: fine-tuning it against the same
    detector fine-tuned without the module is the cheapest honest test of the module
    (``recipes/finetune_attention.py``). SE, CBAM and ECA do not start as the identity.

    Args:
        model: an SSD model from ``SSD300(attention="none")`` (or a converter, or a
            reloaded ``.keras`` file of one).
        attention: ``"cfsam"``, ``"se"``, ``"cbam"`` or ``"eca"``.
        **attention_kwargs: arguments of the module (e.g. ``embed_dim=64``).

    Returns:
        A new functional ``keras.Model`` with ``model``'s input, preprocessing,
        backbone, heads, default boxes and class names, named
        ``f"{model.name}_{attention}"``. ``model`` itself is left unchanged.

    Raises:
        ValueError: if ``model`` is not an SSD model or already has an attention module.

    Example:
    >>> base = SSD300(num_classes=3, attention="none", input_size=300)
    >>> with_cfsam = add_attention(base, "cfsam", embed_dim=64)
    >>> x = np.random.uniform(0, 255, (1, 300, 300, 3)).astype("float32")
    >>> bool(np.array_equal(with_cfsam(x), base(x)))
    True
    """
    levels = len(model_config(model)["anchor_config"]["feature_sizes"])
    modules = tuple(ATTENTION_MODULES.values())
    present = [layer.name for layer in model.layers if isinstance(layer, modules)]
    if present:
        raise ValueError(
            f"model {model.name!r} already has the attention module {present[0]!r}; "
            "add_attention takes a model built with attention='none'"
        )
    module = attention_module(attention, **attention_kwargs)
    if module is None:
        raise ValueError("add_attention needs a module: 'cfsam', 'se', 'cbam' or 'eca'")
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    box_heads = [copy.get_layer(f"box_head_{level}") for level in range(levels)]
    class_heads = [copy.get_layer(f"class_head_{level}") for level in range(levels)]
    sources = [head.input for head in box_heads]
    enhanced = module(sources)
    maps = [head(x) for head, x in zip(box_heads, enhanced)]
    maps += [head(x) for head, x in zip(class_heads, enhanced)]
    outputs = copy.get_layer("predictions")(maps)
    return keras.Model(copy.input, outputs, name=f"{model.name}_{attention}")
