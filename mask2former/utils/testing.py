"""Deterministic weights for tests and parity checks.

`deterministic_init_(model)` fills every floating-point tensor of a model's state_dict with values
that depend only on the tensor's name and shape. Two implementations with the same state_dict
layout (this project and the original Mask2Former / MaskFormer code) then hold the same weights
without sharing a checkpoint file: this is how the reference fixtures in ``tests/fixtures/`` were
made, so the rules below must not change.

Rules, per state_dict key (integer tensors and ``criterion.empty_weight`` are left alone):
  * a ``torch.Generator`` seeded with ``crc32(key) + seed`` draws the values, in float64;
  * keys ending in ``running_var``  -> ``0.5 + U(0, 1)``;
  * 1-D keys ending in ``.weight``  -> ``1 + 0.1 * N(0, 1)`` (normalisation scales);
  * other tensors of at most 1 dim -> ``0.1 * N(0, 1)``;
  * tensors of 2 or more dims      -> ``N(0, 1) / sqrt(prod(shape[1:]))`` (fan-in scaling);
  * keys containing ``class_embed`` are then multiplied by `CLASS_GAIN` (confident class scores,
    so that panoptic and instance post-processing keep segments);
  * keys of a residual branch's last layer (`RESIDUAL_KEYS`) by `RESIDUAL_GAIN` (queries keep
    their identity through the decoder instead of collapsing to one).
"""

import math
import zlib
from typing import Sequence

import torch
from torch import nn

__all__ = ["deterministic_values", "deterministic_init_", "CLASS_GAIN", "RESIDUAL_GAIN",
           "RESIDUAL_KEYS"]

CLASS_GAIN = 8.0
RESIDUAL_GAIN = 0.1
RESIDUAL_KEYS = ("out_proj.", "output_proj.", "linear2.")


def deterministic_values(key: str, shape: Sequence[int], dtype=torch.float32, seed: int = 0):
    """The tensor of the given ``shape`` and ``dtype`` that `deterministic_init_` gives ``key``."""
    gen = torch.Generator().manual_seed((zlib.crc32(key.encode()) + seed) % (2**63))
    shape = tuple(int(s) for s in shape)
    if key.endswith("running_var"):
        values = 0.5 + torch.rand(shape, generator=gen, dtype=torch.float64)
    elif len(shape) == 1 and key.endswith(".weight"):
        values = 1.0 + 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
    elif len(shape) <= 1:
        values = 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
    else:
        values = torch.randn(shape, generator=gen, dtype=torch.float64) / math.sqrt(
            math.prod(shape[1:]))
    if "class_embed" in key:
        values = values * CLASS_GAIN
    if any(k in key for k in RESIDUAL_KEYS):
        values = values * RESIDUAL_GAIN
    return values.to(dtype)


@torch.no_grad()
def deterministic_init_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Fill ``model``'s floating-point parameters and buffers in place; returns ``model``."""
    for key, tensor in model.state_dict(keep_vars=True).items():
        if not tensor.is_floating_point() or key == "criterion.empty_weight":
            continue
        tensor.copy_(deterministic_values(key, tensor.shape, tensor.dtype, seed))
    return model
