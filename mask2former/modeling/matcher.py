"""Hungarian matching between predicted queries and ground-truth segments (SPEC §6).

The cost of assigning query ``q`` to ground-truth segment ``g`` of one image is::

    cost_class * (-p_q(class_g)) + cost_mask * BCE(mask_q, mask_g) + cost_dice * dice(mask_q, mask_g)

The two mask terms are evaluated on one shared set of ``num_points`` uniformly random points per
image (Mask2Former). With ``num_points=0`` they are evaluated densely as MaskFormer v1 does: on
every pixel of the predicted masks, the ground-truth masks resized to the prediction size
(nearest). ``mask_cost="focal"`` (MaskFormer v1) replaces BCE by the sigmoid focal loss (alpha
0.25, gamma 2). Costs are computed in fp32 with autocast disabled and sanitised (nan/inf
replaced by large finite numbers) so that ``scipy.optimize.linear_sum_assignment`` never fails.
"""

from typing import Dict, List, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn

from detectron2.projects.point_rend.point_features import point_sample

__all__ = [
    "HungarianMatcher",
    "VideoHungarianMatcher",
    "batch_dice_cost",
    "batch_sigmoid_ce_cost",
    "batch_sigmoid_focal_cost",
    "sanitize_cost",
]

# Replacement for non-finite costs: large enough to never be preferred, small enough that sums
# of a few of them stay finite in float64.
_LARGE_COST = 1e8


def batch_dice_cost(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Pairwise dice cost.

    Args:
        inputs: [N, P] mask logits.
        targets: [M, P] binary (0/1) float targets.

    Returns:
        [N, M] tensor, ``1 - (2 * |x ∩ t| + 1) / (|x| + |t| + 1)`` with ``x = sigmoid(inputs)``.
    """
    probs = inputs.sigmoid()
    numerator = 2 * probs @ targets.t()
    denominator = probs.sum(-1)[:, None] + targets.sum(-1)[None, :]
    return 1 - (numerator + 1) / (denominator + 1)


def batch_sigmoid_ce_cost(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Pairwise binary cross-entropy (with logits), averaged over points.

    Args:
        inputs: [N, P] mask logits.
        targets: [M, P] binary (0/1) float targets.

    Returns:
        [N, M] tensor with entry (n, m) = mean_p BCE(inputs[n, p], targets[m, p]).
    """
    num_points = inputs.shape[1]
    # BCE(x, t) = t * softplus(-x) + (1 - t) * softplus(x)
    pos = F.softplus(-inputs)
    neg = F.softplus(inputs)
    cost = pos @ targets.t() + neg @ (1 - targets).t()
    return cost / max(num_points, 1)


def batch_sigmoid_focal_cost(
    inputs: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Pairwise sigmoid focal loss (see `criterion.sigmoid_focal_loss`), averaged over points.

    Args:
        inputs: [N, P] mask logits; targets: [M, P] binary (0/1) float targets.
    Returns:
        [N, M] tensor with entry (n, m) = mean_p focal(inputs[n, p], targets[m, p]).
    """
    prob = inputs.sigmoid()
    pos = (1 - prob) ** gamma * F.softplus(-inputs)  # loss where the target is 1
    neg = prob**gamma * F.softplus(inputs)  # loss where the target is 0
    if alpha >= 0:
        pos, neg = pos * alpha, neg * (1 - alpha)
    cost = pos @ targets.t() + neg @ (1 - targets).t()
    return cost / max(inputs.shape[1], 1)


_MASK_COSTS = {"bce": batch_sigmoid_ce_cost, "focal": batch_sigmoid_focal_cost}


def sanitize_cost(cost: torch.Tensor) -> torch.Tensor:
    """Replace nan/+inf/-inf by large finite values (a nan counts as the worst possible cost)."""
    return torch.nan_to_num(cost, nan=_LARGE_COST, posinf=_LARGE_COST, neginf=-_LARGE_COST)


class HungarianMatcher(nn.Module):
    """One-to-one assignment of predictions to targets, independently for each image.

    Subclasses change what one prediction is by overriding `as_channels` (the video matcher:
    a query's T frame masks share the image's set of points).

    Args:
        cost_class: weight of the classification cost (-probability of the target class).
        cost_mask: weight of the per-pixel mask cost (sigmoid BCE, or focal).
        cost_dice: weight of the dice mask cost.
        num_points: number of uniformly random points shared by all pairs of an image;
            0 compares masks densely at the prediction resolution (targets resized, nearest).
        mask_cost: "bce" (Mask2Former) or "focal" (MaskFormer v1).
    """

    def __init__(
        self,
        cost_class: float = 1.0,
        cost_mask: float = 1.0,
        cost_dice: float = 1.0,
        num_points: int = 0,
        mask_cost: str = "bce",
    ):
        super().__init__()
        if mask_cost not in _MASK_COSTS:
            raise ValueError(
                f"HungarianMatcher: unknown mask_cost {mask_cost!r}; use one of "
                f"{sorted(_MASK_COSTS)}"
            )
        self.mask_cost = mask_cost
        if cost_class == 0 and cost_mask == 0 and cost_dice == 0:
            raise ValueError("HungarianMatcher: all costs are 0; set at least one cost weight > 0")
        if num_points < 0:
            raise ValueError(f"HungarianMatcher: num_points must be >= 0, got {num_points}")
        self.cost_class = cost_class
        self.cost_mask = cost_mask
        self.cost_dice = cost_dice
        self.num_points = num_points

    @staticmethod
    def as_channels(masks: torch.Tensor) -> torch.Tensor:
        """Masks [R, h, w] → [R, 1, h, w]: the channels that share one set of sampled points."""
        return masks[:, None]

    def _sample(self, pred_masks: torch.Tensor, tgt_masks: torch.Tensor):
        """Bring predictions [Q, ...] and targets [G, ...] to comparable [Q, P'] / [G, P']
        tensors: the same ``num_points`` random points in every channel of `as_channels`
        (P' = channels * num_points), or every pixel at the prediction resolution (targets resized
        with nearest neighbours: MaskFormer v1's dense matching)."""
        pred_masks, tgt_masks = self.as_channels(pred_masks), self.as_channels(tgt_masks)
        if self.num_points > 0:
            coords = torch.rand(1, self.num_points, 2, device=pred_masks.device)
            pred = point_sample(
                pred_masks, coords.expand(pred_masks.shape[0], -1, -1), align_corners=False
            ).flatten(1)
            tgt = point_sample(
                tgt_masks, coords.expand(tgt_masks.shape[0], -1, -1), align_corners=False
            ).flatten(1)
            return pred, tgt
        if pred_masks.shape[-2:] != tgt_masks.shape[-2:]:
            tgt_masks = F.interpolate(tgt_masks, size=pred_masks.shape[-2:], mode="nearest")
        return pred_masks.flatten(1), tgt_masks.flatten(1)

    def cost_matrix(
        self,
        logits: torch.Tensor,
        pred_masks: torch.Tensor,
        labels: torch.Tensor,
        tgt_masks: torch.Tensor,
    ) -> torch.Tensor:
        """Cost matrix of one image.

        Args:
            logits: [Q, K+1] class logits.
            pred_masks: [Q, h, w] mask logits.
            labels: [G] int64 target classes.
            tgt_masks: [G, H, W] binary target masks (any dtype).

        Returns:
            [Q, G] fp32 cost matrix with only finite entries.
        """
        device_type = logits.device.type
        with torch.autocast(device_type=device_type, enabled=False):
            prob = logits.float().softmax(-1)
            cost = -self.cost_class * prob[:, labels]
            if self.cost_mask != 0 or self.cost_dice != 0:
                pred, tgt = self._sample(pred_masks.float(), tgt_masks.to(torch.float32))
                if self.cost_mask != 0:
                    cost = cost + self.cost_mask * _MASK_COSTS[self.mask_cost](pred, tgt)
                if self.cost_dice != 0:
                    cost = cost + self.cost_dice * batch_dice_cost(pred, tgt)
        return sanitize_cost(cost)

    @torch.no_grad()
    def forward(
        self, outputs: Dict[str, torch.Tensor], targets: List[Dict[str, torch.Tensor]]
    ) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """
        Args:
            outputs: {"pred_logits": [B, Q, K+1], "pred_masks": [B, Q, h, w]} (other keys ignored).
            targets: B dicts with "labels" [G_b] int64 and "masks" [G_b, H, W].

        Returns:
            B pairs (index_i, index_j) of int64 tensors of equal length min(Q, G_b): query
            index_i[k] is matched to target index_j[k]. index_i is sorted increasingly.
        """
        logits = outputs["pred_logits"]
        pred_masks = outputs["pred_masks"]
        if len(targets) != logits.shape[0]:
            raise ValueError(
                f"HungarianMatcher: {logits.shape[0]} predictions but {len(targets)} targets"
            )
        indices = []
        for b, target in enumerate(targets):
            labels = target["labels"]
            if labels.numel() == 0:
                empty = torch.zeros(0, dtype=torch.int64)
                indices.append((empty, empty.clone()))
                continue
            cost = self.cost_matrix(logits[b], pred_masks[b], labels, target["masks"])
            rows, cols = linear_sum_assignment(cost.cpu().numpy().astype(np.float64))
            indices.append(
                (torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64))
            )
        return indices

    def extra_repr(self) -> str:
        return (
            f"cost_class={self.cost_class}, cost_mask={self.cost_mask}, "
            f"cost_dice={self.cost_dice}, num_points={self.num_points}, "
            f"mask_cost={self.mask_cost}"
        )


def _check_clip_masks(masks: torch.Tensor) -> torch.Tensor:
    if masks.dim() != 4:
        raise ValueError(
            f"VideoHungarianMatcher expects per-clip masks [R, T, H, W], got {tuple(masks.shape)}"
        )
    return masks


class VideoHungarianMatcher(HungarianMatcher):
    """Hungarian matching of clips (Mask2Former-VIS, SPEC §9).

    A prediction is a query's T frame masks [T, h, w] and a target an instance's [T, H, W]
    (empty in frames where it is absent). One set of ``num_points`` random points is shared by
    all frames and all masks of a clip, so each (query, instance) mask cost is computed over
    T * num_points values; the cost functions are the image matcher's.

    ``outputs["pred_masks"]`` is [B, Q, T, h, w]; ``targets[b]["masks"]`` is [G_b, T, H, W].
    """

    @staticmethod
    def as_channels(masks: torch.Tensor) -> torch.Tensor:
        """Clip masks [R, T, h, w]: the T frames are the channels sharing the points."""
        return _check_clip_masks(masks)

    def cost_matrix(self, logits, pred_masks, labels, tgt_masks):
        """See `HungarianMatcher.cost_matrix`; pred_masks [Q, T, h, w], tgt_masks [G, T, H, W]."""
        _check_clip_masks(pred_masks)
        _check_clip_masks(tgt_masks)
        if pred_masks.shape[1] != tgt_masks.shape[1]:
            raise ValueError(
                f"VideoHungarianMatcher: predictions have {pred_masks.shape[1]} frames but the "
                f"targets {tgt_masks.shape[1]}"
            )
        return super().cost_matrix(logits, pred_masks, labels, tgt_masks)
