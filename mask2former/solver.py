"""Optimizer, gradient clipping and LR schedule of Mask2Former training (SPEC §6, §3).

- Parameter groups: backbone parameters get ``BASE_LR * SOLVER.BACKBONE_MULTIPLIER``; weight
  decay is ``SOLVER.WEIGHT_DECAY_NORM`` for normalisation layers, ``SOLVER.WEIGHT_DECAY_EMBED``
  for ``nn.Embedding`` weights (queries, level embeddings) and 0 for Swin's
  ``relative_position_bias_table`` / ``absolute_pos_embed``.
- ``SOLVER.OPTIMIZER``: "ADAMW" or "SGD".
- Gradient clipping: ``CLIP_TYPE "full_model"`` clips the norm of *all* gradients together;
  it runs inside ``optimizer.step()``, so under AMP the grad scaler has already unscaled the
  gradients when the clipping happens (``GradScaler.step`` unscales, then calls ``step``).
  Other clip types ("value", "norm") use Detectron2's per-parameter clipping.
- LR schedule: ``SOLVER.LR_SCHEDULER_NAME "WarmupPolyLR"`` (DeepLab) or any of Detectron2's.
"""

import itertools
import logging
from typing import Any, Dict, List, Set, Type

import torch
from torch import nn

from detectron2.config import CfgNode
from detectron2.projects.deeplab import build_lr_scheduler as build_deeplab_lr_scheduler
from detectron2.solver.build import maybe_add_gradient_clipping

__all__ = [
    "NORM_MODULE_TYPES",
    "NO_DECAY_PARAM_NAMES",
    "get_param_groups",
    "add_full_model_gradient_clipping",
    "build_optimizer",
    "build_lr_scheduler",
]

logger = logging.getLogger(__name__)

NORM_MODULE_TYPES = (
    nn.modules.batchnorm._BatchNorm,  # BatchNorm*d, SyncBatchNorm, Detectron2's NaiveSyncBatchNorm
    nn.GroupNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)
# Parameters (by name) that never get weight decay (Swin position parameters).
NO_DECAY_PARAM_NAMES = ("relative_position_bias_table", "absolute_pos_embed")


def _is_norm(module: nn.Module) -> bool:
    from detectron2.layers import FrozenBatchNorm2d

    return isinstance(module, NORM_MODULE_TYPES + (FrozenBatchNorm2d,))


def get_param_groups(
    model: nn.Module,
    *,
    base_lr: float,
    weight_decay: float,
    weight_decay_norm: float,
    weight_decay_embed: float,
    backbone_multiplier: float,
) -> List[Dict[str, Any]]:
    """One parameter group per trainable parameter with its lr / weight_decay.

    Backbone = parameters of modules whose qualified name contains "backbone".
    """
    groups: List[Dict[str, Any]] = []
    seen: Set[torch.nn.parameter.Parameter] = set()
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or param in seen:
                continue
            seen.add(param)
            lr = base_lr
            wd = weight_decay
            if "backbone" in module_name:
                lr = base_lr * backbone_multiplier
            if param_name in NO_DECAY_PARAM_NAMES:
                wd = 0.0
            if _is_norm(module):
                wd = weight_decay_norm
            if isinstance(module, nn.Embedding):
                wd = weight_decay_embed
            groups.append({"params": [param], "lr": lr, "weight_decay": wd})
    return groups


def add_full_model_gradient_clipping(
    optimizer_type: Type[torch.optim.Optimizer], clip_norm_val: float
) -> Type[torch.optim.Optimizer]:
    """Subclass of ``optimizer_type`` whose ``step`` first clips the global gradient norm.

    The clipping sees the same gradients ``step`` would use: under ``GradScaler.step`` these
    are already unscaled.
    """
    if clip_norm_val <= 0:
        raise ValueError(f"full-model gradient clipping needs CLIP_VALUE > 0, got {clip_norm_val}")

    class FullModelGradientClippingOptimizer(optimizer_type):
        def step(self, closure=None):
            all_params = itertools.chain(*[g["params"] for g in self.param_groups])
            torch.nn.utils.clip_grad_norm_(all_params, clip_norm_val)
            return super().step(closure=closure)

    FullModelGradientClippingOptimizer.__name__ = (
        f"FullModelGradientClipping{optimizer_type.__name__}"
    )
    FullModelGradientClippingOptimizer.__qualname__ = FullModelGradientClippingOptimizer.__name__
    return FullModelGradientClippingOptimizer


def build_optimizer(cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
    """AdamW / SGD over :func:`get_param_groups` with the configured gradient clipping."""
    solver = cfg.SOLVER
    groups = get_param_groups(
        model,
        base_lr=solver.BASE_LR,
        weight_decay=solver.WEIGHT_DECAY,
        weight_decay_norm=solver.WEIGHT_DECAY_NORM,
        weight_decay_embed=solver.WEIGHT_DECAY_EMBED,
        backbone_multiplier=solver.BACKBONE_MULTIPLIER,
    )
    clip = solver.CLIP_GRADIENTS
    full_model = clip.ENABLED and clip.CLIP_TYPE == "full_model"
    if full_model and clip.CLIP_VALUE <= 0:
        raise ValueError("SOLVER.CLIP_GRADIENTS.CLIP_TYPE full_model needs CLIP_VALUE > 0")

    name = solver.OPTIMIZER.upper()
    if name == "SGD":
        opt_type, kwargs = torch.optim.SGD, {
            "momentum": solver.MOMENTUM,
            "nesterov": solver.NESTEROV,
        }
    elif name == "ADAMW":
        opt_type, kwargs = torch.optim.AdamW, {}
    else:
        raise ValueError(f"SOLVER.OPTIMIZER must be ADAMW or SGD, got {solver.OPTIMIZER!r}")
    if full_model:
        opt_type = add_full_model_gradient_clipping(opt_type, clip.CLIP_VALUE)
    else:
        # "value" / "norm": Detectron2's per-parameter clipping (no-op when disabled)
        opt_type = maybe_add_gradient_clipping(cfg, opt_type)
    return opt_type(groups, solver.BASE_LR, **kwargs)


def build_lr_scheduler(cfg: CfgNode, optimizer: torch.optim.Optimizer):
    """WarmupPolyLR (DeepLab) when SOLVER.LR_SCHEDULER_NAME says so, else Detectron2's."""
    return build_deeplab_lr_scheduler(cfg, optimizer)
