"""Crash-safe checkpointing and safe weight loading for Detectron2 trainers.

:class:`Mask2FormerCheckpointer` is a drop-in :class:`DetectionCheckpointer` that

* writes every checkpoint atomically (temporary file in the same directory, fsync,
  ``os.replace``) and rewrites ``last_checkpoint`` the same way only after the checkpoint file is
  complete, so a process killed at any moment (SIGKILL during ``torch.save`` included) leaves
  the previous complete checkpoint as the one ``--resume`` uses;
* refuses to save weights containing NaN/Inf (the last good checkpoint is never replaced by a
  diverged model) and can be blocked entirely after a fatal training error;
* on resume, verifies the file named by ``last_checkpoint`` (zip CRC) and falls back to the
  newest intact ``*.pth`` with a warning if it is damaged (e.g. written by a non-atomic writer);
* loads ``.safetensors`` (MODEL.WEIGHTS ending in ``.safetensors``), ``.pth`` with
  ``torch.load(weights_only=True)``, and ``.pkl`` model-zoo files with a numpy-only unpickler
  (see :mod:`mask2former.checkpoint.weights`);
* refuses a checkpoint of another model variant (MaskFormer v1 vs Mask2Former, see
  :mod:`mask2former.checkpoint.variants`) with an error naming both;
* explains shape mismatches in terms of the config key to change (e.g. NUM_CLASSES), turns
  them into an error when resuming (or when ``strict_shapes=True``), and logs a one-line summary
  of every partial load;
* with ``strict_shapes=True`` (how evaluation, the demo and the ONNX export load MODEL.WEIGHTS)
  also refuses a checkpoint whose keys differ from the model's (missing, unexpected or renamed
  tensors): inference with partly initialised weights is meaningless. Fine-tuning
  (``strict_shapes=False``, the default) keeps partial loads.
"""
import logging
import os
import pickle
import re
import zipfile
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qs

import torch
from detectron2.checkpoint import DetectionCheckpointer

from .atomic_io import atomic_open, atomic_write_bytes, remove_stale_temp_files
from .variants import check_same_variant
from .weights import load_pickle_weights, load_safetensors_weights, load_torch_weights

__all__ = ["Mask2FormerCheckpointer", "CheckpointShapeError", "CheckpointKeysError",
           "NonFiniteWeightsError", "is_intact_checkpoint", "shape_mismatch_hints"]

logger = logging.getLogger(__name__)


class CheckpointShapeError(ValueError):
    """Some checkpoint tensors do not fit the model and skipping them is not allowed."""


class CheckpointKeysError(ValueError):
    """The checkpoint's tensor names differ from the model's and a partial load is not allowed."""


class NonFiniteWeightsError(FloatingPointError):
    """The model holds NaN/Inf weights; saving them would replace a good checkpoint."""


def is_intact_checkpoint(path: str) -> bool:
    """True if ``path`` is a complete ``torch.save`` file.

    Zip-format files (the default since torch 1.6) are checked member by member against their
    CRCs; legacy-format files are loaded (weights only).
    """
    try:
        if not zipfile.is_zipfile(path):
            if not os.path.isfile(path) or os.path.getsize(path) == 0:
                return False
            load_torch_weights(path)
            return True
        with zipfile.ZipFile(path) as z:
            return z.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError, RuntimeError,
            pickle.UnpicklingError):
        return False


# (key regex, config key, how the config value follows from the checkpoint shape)
_SHAPE_HINTS = [
    (r"(class_embed\.(weight|bias)|(^|\.)empty_weight)$", "MODEL.SEM_SEG_HEAD.NUM_CLASSES",
     lambda shape: shape[0] - 1),
    (r"(query_feat|query_embed)\.weight$", "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES",
     lambda shape: shape[0]),
    (r"relative_position_bias_table$", "MODEL.SWIN.WINDOW_SIZE",
     lambda shape: int(round(((shape[0]) ** 0.5 + 1) / 2))),
]


def shape_mismatch_hints(incorrect_shapes: List[Tuple[str, tuple, tuple]],
                         fine_tune: bool = True) -> List[str]:
    """Turn ``(key, shape_in_checkpoint, shape_in_model)`` triples into "what to change" hints."""
    hints: Dict[str, str] = {}
    unexplained = []
    for key, s_ckpt, s_model in incorrect_shapes:
        for pattern, cfg_key, fn in _SHAPE_HINTS:
            if re.search(pattern, key):
                want, have = fn(s_ckpt), fn(s_model)
                hints.setdefault(
                    cfg_key,
                    f"the checkpoint was trained with {cfg_key} = {want} but the config has "
                    f"{have} (from '{key}': {tuple(s_ckpt)} vs {tuple(s_model)}); set "
                    f"{cfg_key} {want} to use all its weights" + (
                        f", or keep {have} to fine-tune (those layers then start from random "
                        f"initialisation)" if fine_tune else ""),
                )
                break
        else:
            unexplained.append(key)
    if unexplained:
        hints["_"] = (f"{len(unexplained)} other tensor(s) differ (e.g. '{unexplained[0]}'): the "
                      f"model architecture differs from the checkpoint's; use the config file the "
                      f"checkpoint was trained with (backbone, HIDDEN_DIM, DEC_LAYERS, ...)")
    return list(hints.values())


def _examples(keys: List[str], n: int = 5) -> str:
    return f" ({', '.join(keys[:n])}{', ...' if len(keys) > n else ''})" if keys else ""


class Mask2FormerCheckpointer(DetectionCheckpointer):
    """Atomic, validating :class:`DetectionCheckpointer` (see the module docstring).

    Args:
        model, save_dir, save_to_disk, checkpointables: as for DetectionCheckpointer.
        strict_shapes: raise :class:`CheckpointShapeError` when a checkpoint tensor does not fit
            the model instead of skipping it (always on when resuming a training run).
        strict_keys: raise :class:`CheckpointKeysError` when model tensors are missing from the
            checkpoint (other than `CONFIG_DERIVED_KEYS`) or it holds tensors the model does
            not have. Default: as ``strict_shapes`` (loading for inference); fine-tuning loads
            partially.
        check_finite: refuse to save weights that contain NaN/Inf.
    """

    # buffers computed from the config, not learned (the no-object class weight of the loss):
    # a checkpoint without them still holds every weight inference needs
    CONFIG_DERIVED_KEYS = ("criterion.empty_weight",)

    def __init__(self, model, save_dir="", *, save_to_disk=None, strict_shapes=False,
                 strict_keys: Optional[bool] = None, check_finite=True, **checkpointables):
        super().__init__(model, save_dir, save_to_disk=save_to_disk, **checkpointables)
        self.strict_shapes = strict_shapes
        self.strict_keys = strict_shapes if strict_keys is None else strict_keys
        self.check_finite = check_finite
        self._blocked_reason: Optional[str] = None
        self._resuming = False

    # ------------------------------------------------------------------ saving
    def block_saves(self, reason: str) -> None:
        """Make every later :meth:`save` a logged no-op (used after a fatal training error)."""
        self._blocked_reason = reason

    def _non_finite_weights(self) -> List[str]:
        """Names of floating-point state tensors holding NaN/Inf (one device sync in total)."""
        with torch.no_grad():
            items = [(k, v) for k, v in self.model.state_dict().items()
                     if torch.is_tensor(v) and v.is_floating_point()]
            if not items:
                return []
            flags = [torch.isfinite(v).all() for _, v in items]
            ok = torch.stack([f.to(flags[0].device) for f in flags]).tolist()
        return [k for (k, _), good in zip(items, ok) if not good]

    def save(self, name: str, **kwargs: Any) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        basename = f"{name}.pth"
        if self._blocked_reason is not None:
            self.logger.error("Not saving %s: %s. The last complete checkpoint is %s.",
                              basename, self._blocked_reason, self._last_tag() or "none")
            return
        if self.check_finite:
            bad = self._non_finite_weights()
            if bad:
                msg = (f"refusing to save {basename}: {len(bad)} weight tensor(s) contain NaN/Inf "
                       f"(e.g. {', '.join(bad[:5])}). The last complete checkpoint "
                       f"({self._last_tag() or 'none'}) is kept; lower the learning rate or enable "
                       f"gradient clipping and resume from it.")
                self.block_saves("the model weights became non-finite")
                raise NonFiniteWeightsError(msg)

        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)

        save_file = os.path.join(self.save_dir, basename)
        local = self._local_dir()
        if local is None:  # a non-local PathManager backend: no atomicity guarantee there
            self.logger.warning("%s is not a local directory: saving without atomic rename.",
                                self.save_dir)
            return super().save(name, **kwargs)
        self.logger.info("Saving checkpoint to %s", save_file)
        with atomic_open(os.path.join(local, basename), "wb") as f:
            torch.save(data, f)
        self.tag_last_checkpoint(basename)

    def _local_dir(self) -> Optional[str]:
        if "://" in self.save_dir:
            return None
        os.makedirs(self.save_dir, exist_ok=True)
        return self.save_dir

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        local = self._local_dir()
        if local is None:
            return super().tag_last_checkpoint(last_filename_basename)
        atomic_write_bytes(os.path.join(local, "last_checkpoint"),
                           last_filename_basename.encode("utf-8"))

    def _last_tag(self) -> str:
        try:
            with open(os.path.join(self.save_dir, "last_checkpoint")) as f:
                return f.read().strip()
        except OSError:
            return ""

    # ------------------------------------------------------------------ resuming
    def get_checkpoint_file(self) -> str:
        path = super().get_checkpoint_file()
        if not path or "://" in path:
            return path
        if is_intact_checkpoint(path):
            return path
        candidates = sorted(
            (p for p in self.get_all_checkpoint_files() if os.path.abspath(p) != os.path.abspath(
                path)),
            key=os.path.getmtime, reverse=True)
        for cand in candidates:
            if is_intact_checkpoint(cand):
                self.logger.warning(
                    "last_checkpoint names %s, which is missing or incomplete; resuming from the "
                    "newest intact checkpoint %s instead.", path, cand)
                return cand
        raise RuntimeError(
            f"last_checkpoint in {self.save_dir} names {path}, which is missing or incomplete, "
            f"and no other intact *.pth checkpoint exists there. Start without --resume (or "
            f"point MODEL.WEIGHTS at a good file).")

    def resume_or_load(self, path: str, *, resume: bool = True) -> Dict[str, Any]:
        if self.save_to_disk and self.save_dir and "://" not in self.save_dir:
            remove_stale_temp_files(self.save_dir)
        self._resuming = bool(resume and self.has_checkpoint())
        try:
            return super().resume_or_load(path, resume=resume)
        finally:
            self._resuming = False

    # ------------------------------------------------------------------ loading
    def _load_file(self, filename: str) -> Dict[str, Any]:
        if filename.endswith(".pkl"):
            data = load_pickle_weights(filename)
            if isinstance(data, dict) and "model" in data and "__author__" in data:
                self.logger.info("Reading a file from '%s'", data["__author__"])
                return data
            if not isinstance(data, dict):
                raise ValueError(f"{filename}: expected a dict, got {type(data).__name__}")
            if "blobs" in data:
                data = data["blobs"]
            data = {k: v for k, v in data.items() if not k.endswith("_momentum")}
            return {"model": data, "__author__": "Caffe2", "matching_heuristics": True}
        if filename.endswith(".safetensors"):
            loaded = load_safetensors_weights(filename)
            parsed = self._parsed_url_during_load
            queries = parse_qs(parsed.query) if parsed is not None else {}
            if queries.pop("matching_heuristics", "False") == ["True"]:
                loaded["matching_heuristics"] = True
            if queries:
                raise ValueError(f"Unsupported query {queries} in {filename}")
            return loaded
        return super()._load_file(filename)

    def _torch_load(self, f: str) -> Any:
        return load_torch_weights(f)

    def _load_model(self, checkpoint: Any):
        # a MaskFormer v1 checkpoint in a Mask2Former config (or the reverse): one clear error
        # instead of hundreds of missing/unexpected keys
        check_same_variant(self.model.state_dict().keys(), checkpoint["model"].keys())
        incompatible = super()._load_model(checkpoint)
        if incompatible is not None and incompatible.incorrect_shapes and (
                self.strict_shapes or self._resuming):
            hints = shape_mismatch_hints(incompatible.incorrect_shapes, fine_tune=False)
            listing = "; ".join(f"{k}: checkpoint {tuple(a)} vs model {tuple(b)}"
                                for k, a, b in incompatible.incorrect_shapes[:10])
            why = ("resuming a training run from a checkpoint of a different model"
                   if self._resuming else "loading with strict shapes")
            raise CheckpointShapeError(
                f"{len(incompatible.incorrect_shapes)} checkpoint tensor(s) do not fit the model "
                f"({why}): {listing}. " + (" ".join(h[0].upper() + h[1:] + "." for h in hints)))
        missing = [k for k in (incompatible.missing_keys if incompatible is not None else [])
                   if k not in self.CONFIG_DERIVED_KEYS]
        unexpected = incompatible.unexpected_keys if incompatible is not None else []
        if self.strict_keys and (missing or unexpected):
            raise CheckpointKeysError(
                f"the checkpoint does not hold exactly this model's weights: {len(missing)} model "
                f"tensor(s) missing from it{_examples(missing)}, {len(unexpected)} checkpoint "
                f"tensor(s) the model does not have{_examples(unexpected)} (a renamed tensor is "
                f"in both lists). Loading for inference needs every weight: use the config the "
                f"checkpoint was made for (or convert its names); partial loads are for "
                f"fine-tuning only (train_net.py without --eval-only).")
        return incompatible

    def _log_incompatible_keys(self, incompatible) -> None:
        super()._log_incompatible_keys(incompatible)
        n_shape = len(incompatible.incorrect_shapes)
        n_missing = len(incompatible.missing_keys)
        n_unexpected = len(incompatible.unexpected_keys)
        if not (n_shape or n_missing or n_unexpected):
            self.logger.info("All model weights were loaded from the checkpoint.")
            return
        msg = (f"Partial load: {n_shape} tensor(s) skipped for shape mismatch, {n_missing} model "
               f"tensor(s) not in the checkpoint (left at initialisation), {n_unexpected} "
               f"checkpoint tensor(s) unused.")
        for h in shape_mismatch_hints(incompatible.incorrect_shapes):
            msg += "\n  Hint: " + h
        self.logger.warning(msg)
