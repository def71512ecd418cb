"""Set criterion of Mask2Former (SPEC §6).

For each output (the final one and every auxiliary one) predictions are matched to the ground
truth with the Hungarian matcher, then:

- ``loss_ce``: cross-entropy over all queries; unmatched queries target the no-object class
  ``K``, whose weight is ``eos_coef`` (persistent buffer ``empty_weight`` [K+1]).
- ``loss_mask`` / ``loss_dice``: sigmoid BCE and dice between matched predicted masks and their
  targets on ``num_points`` points per mask chosen by uncertainty (PointRend importance sampling:
  ``oversample_ratio`` x candidates, the ``importance_sample_ratio`` most uncertain by |logit|,
  the rest uniform). ``num_points=0`` computes the dense per-pixel loss at the target resolution
  instead (predictions upsampled bilinearly; memory-hungry).
- ``mask_loss="focal"`` (MaskFormer v1, with ``num_points=0``): ``loss_mask`` is the sigmoid
  focal loss (alpha 0.25, gamma 2) instead of BCE (SPEC §10).

Mask losses are normalised by the number of ground-truth masks averaged over all workers
(clamped to >= 1). Auxiliary outputs give ``loss_ce_{i}``, ``loss_mask_{i}``, ``loss_dice_{i}``.
The criterion returns unweighted losses; the meta-architecture applies ``weight_dict``.
"""

from typing import Dict, List, Sequence, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from detectron2.projects.point_rend.point_features import (
    get_uncertain_point_coords_with_randomness,
    point_sample,
)
from detectron2.utils import comm

__all__ = [
    "SetCriterion",
    "VideoSetCriterion",
    "dice_loss",
    "sigmoid_ce_loss",
    "sigmoid_focal_loss",
    "MASK_LOSSES",
    "calculate_uncertainty",
    "average_num_masks",
]


def dice_loss(inputs: torch.Tensor, targets: torch.Tensor, num_masks: float) -> torch.Tensor:
    """Dice loss summed over masks and divided by ``num_masks``.

    Args:
        inputs: [N, P] mask logits.
        targets: [N, P] binary (0/1) float targets.
        num_masks: normaliser.

    Returns:
        scalar: sum_n (1 - (2 |x_n ∩ t_n| + 1) / (|x_n| + |t_n| + 1)) / num_masks.
    """
    probs = inputs.sigmoid()
    numerator = 2 * (probs * targets).sum(-1)
    denominator = probs.sum(-1) + targets.sum(-1)
    loss = 1 - (numerator + 1) / (denominator + 1)
    return loss.sum() / num_masks


def sigmoid_ce_loss(inputs: torch.Tensor, targets: torch.Tensor, num_masks: float) -> torch.Tensor:
    """Binary cross-entropy with logits, averaged over points, summed over masks / ``num_masks``.

    Args:
        inputs: [N, P] mask logits.
        targets: [N, P] binary (0/1) float targets.
        num_masks: normaliser.
    """
    loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    return loss.mean(1).sum() / num_masks


def sigmoid_focal_loss(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    num_masks: float,
    alpha: float = 0.25,
    gamma: float = 2.0,
) -> torch.Tensor:
    """Sigmoid focal loss (RetinaNet), averaged over points, summed over masks / ``num_masks``.

    Per point: ``alpha_t * (1 - p_t) ** gamma * BCE(x, t)`` with ``p_t = p t + (1 - p)(1 - t)``,
    ``alpha_t = alpha t + (1 - alpha)(1 - t)`` (no alpha weighting when ``alpha < 0``).

    Args:
        inputs: [N, P] mask logits; targets: [N, P] binary (0/1) float targets.
        num_masks: normaliser.
    """
    prob = inputs.sigmoid()
    ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.mean(1).sum() / num_masks


# SetCriterion(mask_loss=...) -> per-point mask loss (dice is always added)
MASK_LOSSES = {"bce": sigmoid_ce_loss, "focal": sigmoid_focal_loss}


def calculate_uncertainty(logits: torch.Tensor) -> torch.Tensor:
    """Uncertainty of class-agnostic mask logits [R, 1, ...]: ``-|logit|`` (0 = most uncertain)."""
    if logits.shape[1] != 1:
        raise ValueError(
            f"calculate_uncertainty expects [R, 1, ...] logits, got {tuple(logits.shape)}"
        )
    return -torch.abs(logits)


def average_num_masks(num_masks: int, device: torch.device) -> float:
    """Number of ground-truth masks averaged over all workers, clamped to >= 1."""
    num = torch.as_tensor([float(num_masks)], dtype=torch.float32, device=device)
    world_size = comm.get_world_size()
    if world_size > 1 and dist.is_available() and dist.is_initialized():
        dist.all_reduce(num)
    return torch.clamp(num / world_size, min=1).item()


def _stack_target_masks(masks: Sequence[torch.Tensor], device: torch.device) -> torch.Tensor:
    """Concatenate per-image [G_b, H_b, W_b] masks into [sum G_b, H, W] (zero-pad bottom/right).

    The meta-architecture already pads the targets to the padded image size of the batch, so the
    padding here only matters for callers that pass unpadded targets of different sizes.
    """
    h = max(m.shape[-2] for m in masks)
    w = max(m.shape[-1] for m in masks)
    padded = [
        F.pad(m.to(device=device, dtype=torch.float32), (0, w - m.shape[-1], 0, h - m.shape[-2]))
        for m in masks
    ]
    return torch.cat(padded, dim=0)


class SetCriterion(nn.Module):
    """Losses of Mask2Former for one batch (see module docstring).

    Args:
        num_classes: number of object classes K (no-object excluded).
        matcher: module returning per-image (query indices, target indices), e.g.
            :class:`mask2former.modeling.matcher.HungarianMatcher`.
        weight_dict: loss name -> weight; kept for the meta-architecture, not applied here.
        eos_coef: classification weight of the no-object class.
        losses: subset of ("labels", "masks").
        num_points: points per mask for the mask losses; 0 = dense per-pixel loss.
        oversample_ratio: PointRend oversampling (>= 1).
        importance_sample_ratio: fraction of points chosen by uncertainty, in [0, 1].
        mask_loss: "bce" (Mask2Former) or "focal" (MaskFormer v1) for ``loss_mask``.
    """

    def __init__(
        self,
        num_classes: int,
        matcher: nn.Module,
        weight_dict: Dict[str, float],
        eos_coef: float,
        losses: Sequence[str],
        num_points: int,
        oversample_ratio: float,
        importance_sample_ratio: float,
        mask_loss: str = "bce",
    ):
        super().__init__()
        if mask_loss not in MASK_LOSSES:
            raise ValueError(
                f"SetCriterion: unknown mask_loss {mask_loss!r}; use one of {sorted(MASK_LOSSES)} "
                "(MODEL.MASK_FORMER.MASK_LOSS_TYPE)"
            )
        unknown = set(losses) - {"labels", "masks"}
        if unknown:
            raise ValueError(
                f"SetCriterion: unknown losses {sorted(unknown)}; use 'labels'/'masks'"
            )
        if num_points < 0:
            raise ValueError(f"SetCriterion: num_points must be >= 0, got {num_points}")
        if oversample_ratio < 1:
            raise ValueError(f"SetCriterion: oversample_ratio must be >= 1, got {oversample_ratio}")
        if not 0 <= importance_sample_ratio <= 1:
            raise ValueError(
                f"SetCriterion: importance_sample_ratio must be in [0, 1], got {importance_sample_ratio}"
            )
        self.num_classes = num_classes
        self.matcher = matcher
        self.weight_dict = dict(weight_dict)
        self.eos_coef = eos_coef
        self.losses = list(losses)
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.mask_loss = mask_loss
        empty_weight = torch.ones(num_classes + 1)
        empty_weight[-1] = eos_coef
        self.register_buffer("empty_weight", empty_weight)  # persistent: in the checkpoints

    # --- individual losses -------------------------------------------------------------------
    def loss_labels(self, outputs, targets, indices, num_masks) -> Dict[str, torch.Tensor]:
        """Cross-entropy over all queries; unmatched queries target no-object (class K)."""
        logits = outputs["pred_logits"].float()  # [B, Q, K+1]
        target_classes = torch.full(
            logits.shape[:2], self.num_classes, dtype=torch.int64, device=logits.device
        )
        batch_idx, src_idx = self._src_permutation(indices)
        matched = torch.cat([t["labels"][j] for t, (_, j) in zip(targets, indices)]).to(
            device=logits.device, dtype=torch.int64
        )
        target_classes[batch_idx, src_idx] = matched
        loss = F.cross_entropy(logits.transpose(1, 2), target_classes, self.empty_weight)
        return {"loss_ce": loss}

    def loss_masks(self, outputs, targets, indices, num_masks) -> Dict[str, torch.Tensor]:
        """BCE or focal + dice of matched masks (point-sampled, or dense if num_points == 0)."""
        pred_masks = outputs["pred_masks"]  # [B, Q, h, w]
        batch_idx, src_idx = self._src_permutation(indices)
        src = pred_masks[batch_idx, src_idx].float()  # [N, h, w]
        if src.shape[0] == 0:
            # No ground truth in the whole batch: zero loss that still reaches the graph, so that
            # DDP sees a gradient for every parameter.
            zero = pred_masks.sum() * 0.0
            return {"loss_mask": zero, "loss_dice": zero.clone()}
        tgt = _stack_target_masks(
            [t["masks"][j] for t, (_, j) in zip(targets, indices)], device=src.device
        )  # [N, H, W]
        src, tgt = self.mask_rows(src, tgt)
        if self.num_points > 0:
            with torch.no_grad():
                coords = get_uncertain_point_coords_with_randomness(
                    src[:, None],
                    calculate_uncertainty,
                    self.num_points,
                    self.oversample_ratio,
                    self.importance_sample_ratio,
                )
                labels = point_sample(tgt[:, None], coords, align_corners=False).squeeze(1)
            logits = point_sample(src[:, None], coords, align_corners=False).squeeze(1)
        else:
            logits = F.interpolate(
                src[:, None], size=tgt.shape[-2:], mode="bilinear", align_corners=False
            ).flatten(1)
            labels = tgt.flatten(1)
        return {
            "loss_mask": MASK_LOSSES[self.mask_loss](logits, labels, num_masks),
            "loss_dice": dice_loss(logits, labels, num_masks),
        }

    # --- helpers ------------------------------------------------------------------------------
    @staticmethod
    def mask_rows(src: torch.Tensor, tgt: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Matched predictions [N, h, w] and targets [N, H, W] as the rows the mask losses score
        (unchanged here; the video criterion makes one row per (instance, frame))."""
        return src, tgt

    @staticmethod
    def _src_permutation(indices) -> Tuple[torch.Tensor, torch.Tensor]:
        batch_idx = torch.cat(
            [torch.full_like(src, i, dtype=torch.int64) for i, (src, _) in enumerate(indices)]
        )
        src_idx = torch.cat([src.to(torch.int64) for src, _ in indices])
        return batch_idx, src_idx

    def get_loss(self, loss, outputs, targets, indices, num_masks):
        fn = {"labels": self.loss_labels, "masks": self.loss_masks}[loss]
        return fn(outputs, targets, indices, num_masks)

    def _losses_of(self, outputs, targets, num_masks, suffix="") -> Dict[str, torch.Tensor]:
        indices = self.matcher(outputs, targets)
        out = {}
        for loss in self.losses:
            for k, v in self.get_loss(loss, outputs, targets, indices, num_masks).items():
                out[k + suffix] = v
        return out

    def forward(
        self, outputs: Dict[str, object], targets: List[Dict[str, torch.Tensor]]
    ) -> Dict[str, torch.Tensor]:
        """
        Args:
            outputs: {"pred_logits": [B,Q,K+1], "pred_masks": [B,Q,h,w],
                "aux_outputs" (optional): list of dicts with the same two keys}.
            targets: B dicts with "labels" [G_b] int64 and "masks" [G_b,H,W] (binary, in the
                padded image frame of the batch).

        Returns:
            dict of unweighted scalar losses: loss_ce, loss_mask, loss_dice (for the selected
            ``losses``) and the same names suffixed ``_{i}`` for auxiliary output i.
        """
        device = outputs["pred_logits"].device
        num_masks = average_num_masks(sum(len(t["labels"]) for t in targets), device)
        final = {k: v for k, v in outputs.items() if k != "aux_outputs"}
        losses = self._losses_of(final, targets, num_masks)
        for i, aux in enumerate(outputs.get("aux_outputs", []) or []):
            losses.update(self._losses_of(aux, targets, num_masks, suffix=f"_{i}"))
        return losses

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, eos_coef={self.eos_coef}, losses={self.losses}, "
            f"mask_loss={self.mask_loss}, num_points={self.num_points}, oversample_ratio={self.oversample_ratio}, "
            f"importance_sample_ratio={self.importance_sample_ratio}, weight_dict={self.weight_dict}"
        )


class VideoSetCriterion(SetCriterion):
    """Losses of Mask2Former-VIS (SPEC §9): the image losses on clips.

    ``outputs["pred_masks"]`` is [B, Q, T, h, w] and ``targets[b]["masks"]`` [G_b, T, H, W]
    (use `mask2former.modeling.matcher.VideoHungarianMatcher`). The mask losses score every
    (instance, frame) pair as one row with its own importance-sampled points, but are still
    divided by the number of *instances*: a clip's loss is summed over its frames.
    """

    @staticmethod
    def mask_rows(src, tgt):
        """[N, T, h, w] / [N, T, H, W] → [N*T, h, w] / [N*T, H, W] (instance-major)."""
        if src.dim() != 4 or tgt.dim() != 4 or src.shape[1] != tgt.shape[1]:
            raise ValueError(
                "VideoSetCriterion expects matched masks [N, T, h, w] and targets [N, T, H, W] "
                f"with the same T, got {tuple(src.shape)} and {tuple(tgt.shape)}"
            )
        return src.flatten(0, 1), tgt.flatten(0, 1)
