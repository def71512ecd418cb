"""Checkpoints: safe loading of released and trained weights, crash-safe saving.

- `Mask2FormerCheckpointer`: Detectron2's checkpointer with atomic saves, intact-file checks on
  resume, shape errors that name the config key to change, key mismatches refused when loading
  for inference (``strict_shapes=True``), and the safe loaders below;
- `weights`: ``.pkl`` (numpy-only unpickler), ``.pth`` (weights-only) and ``.safetensors`` readers;
- `atomic_io`: write-to-temporary, fsync, rename;
- `variants`: which model variant (Mask2Former, MaskFormer v1, ...) a state_dict holds, so that
  loading one into the other fails with one clear error.
"""
from .checkpointer import (  # noqa: F401
    CheckpointKeysError,
    CheckpointShapeError,
    Mask2FormerCheckpointer,
    NonFiniteWeightsError,
    is_intact_checkpoint,
    shape_mismatch_hints,
)
from .variants import CheckpointVariantError, check_same_variant, detect_variant  # noqa: F401
