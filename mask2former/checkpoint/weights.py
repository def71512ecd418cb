"""Safe loading and saving of model weights.

Formats, from safest to least safe:

* ``.safetensors`` — raw tensors plus a string->string metadata header. Loading cannot run code.
* ``.pth`` / ``.pt`` (``torch.save`` files, e.g. our training checkpoints) — loaded with
  ``torch.load(weights_only=True)``, which only rebuilds tensors and plain containers.
* ``.pkl`` (Detectron2 model-zoo pickles ``{"model": {name: ndarray}, "__author__": ...}``) —
  read with a restricted unpickler that only accepts numpy arrays and plain containers. A
  pickle that needs anything else is refused unless the user opts in with the environment
  variable ``MASK2FORMER_ALLOW_UNSAFE_PICKLE=1`` (pickles can execute arbitrary code).

``tools/convert_to_safetensors.py`` converts the last two kinds into the first.
"""
import io
import json
import logging
import os
import pickle
from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np
import torch

__all__ = [
    "UNSAFE_PICKLE_ENV",
    "UnsafeCheckpointError",
    "load_pickle_weights",
    "load_torch_weights",
    "load_safetensors_weights",
    "save_safetensors_weights",
    "load_weights_file",
]

logger = logging.getLogger(__name__)

UNSAFE_PICKLE_ENV = "MASK2FORMER_ALLOW_UNSAFE_PICKLE"

# Globals a pickle of numpy arrays in plain containers needs (numpy 1.x and 2.x module names).
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "slice"),
    ("builtins", "complex"),
    ("__builtin__", "set"),
}

# Our metadata keys in safetensors headers (all values are strings there).
_META_AUTHOR = "__author__"
_META_EXTRA = "mask2former.extra_json"


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A weights file needs code execution to load and the user did not opt in."""


def _allow_unsafe() -> bool:
    return os.environ.get(UNSAFE_PICKLE_ENV, "").strip().lower() in ("1", "true", "yes")


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals in ``_SAFE_GLOBALS``."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise UnsafeCheckpointError(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeCheckpointError(f"persistent id {pid!r}")


def load_pickle_weights(path: str) -> Dict[str, Any]:
    """Load a Detectron2-style ``.pkl`` file the user asked for.

    Returns the unpickled object (normally a dict). Plain numpy/containers are loaded with a
    restricted unpickler; anything else raises :class:`UnsafeCheckpointError` unless
    ``MASK2FORMER_ALLOW_UNSAFE_PICKLE=1`` is set.
    """
    logger.warning(
        "Loading pickle file %s. Pickle files can execute arbitrary code when loaded by an "
        "unrestricted loader; this one is read with a numpy-only unpickler. Convert it once "
        "with `python tools/convert_to_safetensors.py %s` to use a format that cannot run code.",
        path,
        path,
    )
    with open(path, "rb") as f:
        data = f.read()
    try:
        return _ArraysOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except UnsafeCheckpointError as e:
        if not _allow_unsafe():
            raise UnsafeCheckpointError(
                f"{path} is a pickle that needs '{e}' to load, i.e. it can run code beyond "
                f"rebuilding numpy arrays. If you trust where this file comes from, set "
                f"{UNSAFE_PICKLE_ENV}=1 (for example once, to run tools/convert_to_safetensors.py "
                f"on it), then use the .safetensors file."
            ) from None
        logger.warning(
            "%s=1: loading %s with the unrestricted pickle loader (it needs %s).",
            UNSAFE_PICKLE_ENV,
            path,
            e,
        )
        return pickle.loads(data, encoding="latin1")


def load_torch_weights(path_or_file: Any) -> Any:
    """``torch.load(..., weights_only=True)`` on CPU, with a clear error when it is refused."""
    name = getattr(path_or_file, "name", path_or_file)
    try:
        return torch.load(path_or_file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if not _allow_unsafe():
            raise UnsafeCheckpointError(
                f"{name} contains objects that torch.load(weights_only=True) refuses to rebuild "
                f"({str(e).splitlines()[0] if str(e) else type(e).__name__}). If you trust the "
                f"file, set {UNSAFE_PICKLE_ENV}=1 and convert it with "
                f"tools/convert_to_safetensors.py."
            ) from None
        if hasattr(path_or_file, "seek"):
            path_or_file.seek(0)
        logger.warning("%s=1: loading %s with torch.load(weights_only=False).",
                       UNSAFE_PICKLE_ENV, name)
        return torch.load(path_or_file, map_location="cpu", weights_only=False)


def load_safetensors_weights(path: str) -> Dict[str, Any]:
    """Load a ``.safetensors`` file written by :func:`save_safetensors_weights` (or any tool).

    Returns ``{"model": OrderedDict[name -> Tensor], "__author__": str, **extra}`` where
    ``extra`` are the JSON-decoded extra fields stored in the metadata (e.g.
    ``matching_heuristics``).
    """
    from safetensors import safe_open

    tensors: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    with safe_open(path, framework="pt", device="cpu") as f:
        metadata = f.metadata() or {}
        for k in f.keys():
            tensors[k] = f.get_tensor(k)
    out: Dict[str, Any] = {"model": tensors}
    if _META_AUTHOR in metadata:
        out["__author__"] = metadata[_META_AUTHOR]
    if _META_EXTRA in metadata:
        extra = json.loads(metadata[_META_EXTRA])
        if not isinstance(extra, dict):
            raise ValueError(f"{path}: metadata '{_META_EXTRA}' is not a JSON object")
        extra.pop("model", None)
        out.update(extra)
    return out


def _to_tensor(name: str, v: Any) -> torch.Tensor:
    if isinstance(v, torch.Tensor):
        t = v.detach().cpu()
    elif isinstance(v, np.ndarray):
        t = torch.from_numpy(np.array(v, order="C", copy=True))  # keeps 0-d shapes
    elif isinstance(v, (np.generic, int, float, bool)):
        t = torch.as_tensor(np.asarray(v))
    else:
        raise TypeError(f"weight '{name}' has type {type(v).__name__}; expected an array/tensor")
    # safetensors refuses tensors sharing storage and non-contiguous ones: give each its own.
    return t.contiguous().clone()


def save_safetensors_weights(
    state_dict: Mapping[str, Any],
    path: str,
    *,
    author: Optional[str] = None,
    extra: Optional[Mapping[str, Any]] = None,
) -> None:
    """Atomically write ``state_dict`` to ``path`` in safetensors format.

    Args:
        state_dict: name -> tensor or numpy array.
        author: stored as metadata ``__author__``.
        extra: JSON-serialisable fields (e.g. ``{"matching_heuristics": True}``) restored at
            load time by :func:`load_safetensors_weights`.
    """
    from safetensors.torch import save

    from .atomic_io import atomic_write_bytes

    tensors = {k: _to_tensor(k, v) for k, v in state_dict.items()}
    metadata = {"format": "pt"}
    if author is not None:
        metadata[_META_AUTHOR] = str(author)
    if extra:
        metadata[_META_EXTRA] = json.dumps(dict(extra), sort_keys=True)
    atomic_write_bytes(path, save(tensors, metadata=metadata))


def load_weights_file(path: str) -> Tuple[Dict[str, Any], str]:
    """Load any supported weights file into ``{"model": state_dict, ...}``.

    Returns:
        (checkpoint dict, format) with format one of "safetensors", "pkl", "torch".
    """
    if path.endswith(".safetensors"):
        return load_safetensors_weights(path), "safetensors"
    if path.endswith(".pkl"):
        data = load_pickle_weights(path)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a dict in the pickle, got {type(data).__name__}")
        if "model" not in data:
            if "blobs" in data:
                data = data["blobs"]
            data = {"model": {k: v for k, v in data.items() if not k.endswith("_momentum")},
                    "__author__": "Caffe2", "matching_heuristics": True}
        return data, "pkl"
    data = load_torch_weights(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict, got {type(data).__name__}")
    if "model" not in data:
        data = {"model": data}
    return data, "torch"
