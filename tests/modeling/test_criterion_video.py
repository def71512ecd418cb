"""VideoSetCriterion (SPEC §9): per-(instance, frame) mask losses, divided by the number of
*instances*."""

import math

import pytest
import torch
import torch.nn.functional as F

from mask2former.modeling.criterion import VideoSetCriterion
from mask2former.modeling.matcher import VideoHungarianMatcher


def _criterion(num_points, k=4):
    matcher = VideoHungarianMatcher(cost_class=1.0, cost_mask=1.0, cost_dice=1.0,
                                    num_points=num_points)
    return VideoSetCriterion(k, matcher=matcher, weight_dict={"loss_ce": 1.0}, eos_coef=0.1,
                             losses=["labels", "masks"], num_points=num_points,
                             oversample_ratio=3.0, importance_sample_ratio=0.75)


@pytest.mark.parametrize("t", [1, 3])
def test_point_losses_sum_over_frames_and_divide_by_instances(t):
    """Logits 0 make every point's BCE log 2 and, with empty targets, every row's dice
    1 - 1 / (P/2 + 1), whichever points are sampled: the losses are exact."""
    q, g, p = 2, 3, 50  # 2 queries for 3 instances: 2 matched rows, normaliser 3
    outputs = {"pred_logits": torch.zeros(1, q, 5), "pred_masks": torch.zeros(1, q, t, 8, 8)}
    targets = [{"labels": torch.tensor([0, 1, 2]), "masks": torch.zeros(g, t, 16, 16)}]
    losses = _criterion(p)(outputs, targets)
    matched = min(q, g)
    assert losses["loss_mask"].item() == pytest.approx(matched * t * math.log(2) / g, rel=1e-6)
    assert losses["loss_dice"].item() == pytest.approx(
        matched * t * (1 - 1 / (p / 2 + 1)) / g, rel=1e-6)


def test_dense_losses_equal_per_instance_frame_loops():
    gen = torch.Generator().manual_seed(0)
    t, h, w = 3, 6, 7
    pred = torch.randn(2, 4, t, h, w, generator=gen)
    masks = [torch.rand(g, t, h, w, generator=gen) > 0.5 for g in (2, 1)]
    targets = [{"labels": torch.tensor([1, 2]), "masks": masks[0]},
               {"labels": torch.tensor([3]), "masks": masks[1]}]
    indices = [(torch.tensor([3, 0]), torch.tensor([1, 0])), (torch.tensor([2]), torch.tensor([0]))]
    out = _criterion(0).loss_masks({"pred_masks": pred}, targets, indices, num_masks=3.0)
    bce = dice = 0.0
    for b, (src, tgt) in enumerate(indices):
        for i, j in zip(src.tolist(), tgt.tolist()):
            for f in range(t):
                x, y = pred[b, i, f].flatten(), masks[b][j, f].float().flatten()
                bce += F.binary_cross_entropy_with_logits(x, y).item()
                s = x.sigmoid()
                dice += 1 - (2 * (s * y).sum().item() + 1) / (s.sum().item() + y.sum().item() + 1)
    assert out["loss_mask"].item() == pytest.approx(bce / 3, rel=1e-5)
    assert out["loss_dice"].item() == pytest.approx(dice / 3, rel=1e-5)


def test_forward_with_aux_outputs_backward():
    gen = torch.Generator().manual_seed(1)
    t = 2
    pred = torch.randn(2, 4, t, 8, 8, generator=gen, requires_grad=True)
    logits = torch.randn(2, 4, 5, generator=gen, requires_grad=True)
    outputs = {"pred_logits": logits, "pred_masks": pred,
               "aux_outputs": [{"pred_logits": logits * 0.5, "pred_masks": pred * 0.5}]}
    mask = torch.rand(1, t, 16, 16, generator=gen) > 0.5
    targets = [{"labels": torch.tensor([1]), "masks": mask},
               {"labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, t, 16, 16)}]
    losses = _criterion(64)(outputs, targets)
    assert set(losses) == {"loss_ce", "loss_mask", "loss_dice",
                           "loss_ce_0", "loss_mask_0", "loss_dice_0"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert pred.grad is not None and logits.grad is not None


def test_rejects_image_masks():
    outputs = {"pred_logits": torch.zeros(1, 2, 5), "pred_masks": torch.zeros(1, 2, 8, 8)}
    indices = [(torch.tensor([0]), torch.tensor([0]))]
    targets = [{"labels": torch.tensor([0]), "masks": torch.zeros(1, 8, 8)}]
    with pytest.raises(ValueError, match=r"\[N, T, h, w\]"):
        _criterion(16).loss_masks(outputs, targets, indices, num_masks=1.0)
