"""PyTorch state dicts as NumPy arrays, and copying them into Keras layers by a key map.

A state dict is read from a ``.pth`` / ``.pt`` file (needs ``torch``: ``pip install
'cfsam-keras[torch]'``), a ``.npz`` or ``.safetensors`` file of the same keys (no
torch needed), or given as a dict of arrays or tensors.
"""

import collections.abc
import os

import numpy as np
import safetensors.numpy

#: File suffixes `read_state_dict` reads.
STATE_DICT_SUFFIXES = (".pth", ".pt", ".npz", ".safetensors")

# Keys that wrap a state dict in training checkpoints (torchvision's references save
# {"model": ..., "optimizer": ...}; others use "state_dict").
_WRAPPERS = ("model", "state_dict")


def torch_conv(kernel):
    """A PyTorch ``Conv2d`` kernel ``[out, in, kh, kw]`` as Keras' ``[kh, kw, in, out]``."""
    return np.transpose(kernel, (2, 3, 1, 0))


def _load_file(path):
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    if suffix == ".safetensors":
        return safetensors.numpy.load_file(path)
    try:
        import torch  # noqa: PLC0415 (optional: only .pth files need it)
    except ImportError:
        raise ValueError(
            f"{path}: reading a {suffix} file needs PyTorch (pip install 'cfsam-keras[torch]'); "
            "or save the state dict as .npz or .safetensors"
        ) from None
    return torch.load(path, map_location="cpu", weights_only=True)


def _as_array(value):
    if hasattr(value, "detach"):  # a torch.Tensor
        value = value.detach().cpu().float().numpy()
    return np.asarray(value, dtype=np.float32)


def read_state_dict(source):
    """A state dict as ``{key: np.float32 array}``.

    Args:
        source: a dict of arrays (NumPy or torch tensors), or the path of a ``.pth``,
            ``.pt``, ``.npz`` or ``.safetensors`` file. A checkpoint that wraps the state
            dict under ``"model"`` or ``"state_dict"`` is unwrapped, and the
            ``"module."`` prefix of ``DataParallel`` checkpoints is dropped.

    Returns:
        Dict of float32 arrays; entries that are not arrays (such as BatchNorm's
        ``num_batches_tracked``) are left out.

    Raises:
        ValueError: a missing or unreadable file, an unknown suffix, or no arrays.
    """
    name = "state dict"
    if not isinstance(source, collections.abc.Mapping):
        if not isinstance(source, (str, os.PathLike)):
            raise ValueError(
                f"expected a state dict or the path of a {'/'.join(STATE_DICT_SUFFIXES)} file; "
                f"got {type(source).__name__}"
            )
        name = os.fspath(source)
        if not name.lower().endswith(STATE_DICT_SUFFIXES):
            raise ValueError(f"{name}: expected a file ending in {', '.join(STATE_DICT_SUFFIXES)}")
        if not os.path.isfile(name):
            raise ValueError(f"{name}: no such file")
        try:
            source = _load_file(name)
        except ValueError:
            raise
        except Exception as e:  # pickle, zip and safetensors errors alike
            message = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ValueError(f"{name}: not a readable state dict ({message})") from None
    for wrapper in _WRAPPERS:
        if isinstance(source.get(wrapper), collections.abc.Mapping):
            source = source[wrapper]
    state = {}
    for key, value in source.items():
        if key.endswith("num_batches_tracked") or not hasattr(value, "shape"):
            continue
        state[key.removeprefix("module.")] = _as_array(value)
    if not state:
        raise ValueError(f"{name}: holds no arrays")
    return state


def assign_weights(model, state, layers, source, partial=False):
    """Sets layers of ``model`` from entries of a state dict.

    Rank-4 arrays are PyTorch convolution kernels and are transposed
    (`torch_conv`); the others are copied as they are.

    Args:
        model: the Keras model.
        state: dict from `read_state_dict`.
        layers: ``{layer name: [key, ...]}``, the keys in the order of the layer's
            ``get_weights()``.
        source: what ``state`` came from, for error messages.
        partial: when ``False``, every layer of ``model`` with weights must be in
            ``layers`` and every key of ``state`` must be used.

    Raises:
        ValueError: naming the missing or unexpected keys, or a key whose shape does
            not fit its layer.
    """
    missing = sorted(k for keys in layers.values() for k in keys if k not in state)
    if missing:
        raise ValueError(f"{source}: lacks {len(missing)} expected keys, e.g. {missing[:4]}")
    if not partial:
        used = {k for keys in layers.values() for k in keys}
        unexpected = sorted(set(state) - used)
        if unexpected:
            raise ValueError(
                f"{source}: has {len(unexpected)} keys this model has no place for, "
                f"e.g. {unexpected[:4]}"
            )
        unset = [layer.name for layer in model.layers if layer.weights and layer.name not in layers]
        if unset:
            raise ValueError(f"{source}: gives no weights for the layers {unset[:4]}")
    for name, keys in layers.items():
        arrays = [torch_conv(state[k]) if state[k].ndim == 4 else state[k] for k in keys]
        set_layer_weights(
            model.get_layer(name), arrays, f"{source}: {', '.join(keys)} (as Keras arrays)"
        )


def set_layer_weights(layer, arrays, what):
    """``layer.set_weights(arrays)`` once their shapes are checked.

    Raises:
        ValueError: ``"{what} have shapes ...; layer ... has ..."`` when they differ.
    """
    expected = [tuple(w.shape) for w in layer.weights]
    received = [tuple(np.shape(a)) for a in arrays]
    if expected != received:
        raise ValueError(f"{what} have shapes {received}; layer {layer.name!r} has {expected}")
    layer.set_weights(arrays)
