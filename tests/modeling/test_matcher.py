"""HungarianMatcher: optimality vs brute force, cost terms, robustness (SPEC §6)."""

import itertools

import numpy as np
import pytest
import torch

from mask2former.modeling.matcher import (
    HungarianMatcher,
    batch_dice_cost,
    batch_sigmoid_ce_cost,
    sanitize_cost,
)


def _brute_force_min(cost: np.ndarray) -> float:
    q, g = cost.shape
    best = np.inf
    if q >= g:
        for perm in itertools.permutations(range(q), g):
            best = min(best, sum(cost[perm[j], j] for j in range(g)))
    else:
        for perm in itertools.permutations(range(g), q):
            best = min(best, sum(cost[i, perm[i]] for i in range(q)))
    return best


def _problem(seed, q, g, k=4, h=12, w=12):
    gen = torch.Generator().manual_seed(seed)
    outputs = {
        "pred_logits": torch.randn(1, q, k + 1, generator=gen),
        "pred_masks": torch.randn(1, q, h // 2, w // 2, generator=gen) * 3,
    }
    targets = [
        {
            "labels": torch.randint(0, k, (g,), generator=gen),
            "masks": torch.rand(g, h, w, generator=gen) > 0.5,
        }
    ]
    return outputs, targets


@pytest.mark.parametrize("seed,q,g", [(0, 5, 3), (1, 6, 6), (2, 3, 5), (3, 7, 4), (4, 4, 1)])
@pytest.mark.parametrize("num_points", [0, 64])
def test_matcher_is_optimal_vs_brute_force(seed, q, g, num_points):
    outputs, targets = _problem(seed, q, g)
    matcher = HungarianMatcher(cost_class=2.0, cost_mask=5.0, cost_dice=5.0, num_points=num_points)
    # same random points for the cost matrix and the assignment
    torch.manual_seed(seed)
    cost = matcher.cost_matrix(
        outputs["pred_logits"][0],
        outputs["pred_masks"][0],
        targets[0]["labels"],
        targets[0]["masks"],
    ).numpy()
    torch.manual_seed(seed)
    ((rows, cols),) = matcher(outputs, targets)
    assert len(rows) == len(cols) == min(q, g)
    assert rows.dtype == torch.int64 and cols.dtype == torch.int64
    assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
    got = cost[rows.numpy(), cols.numpy()].sum()
    assert got == pytest.approx(_brute_force_min(cost), rel=1e-6, abs=1e-6)


def test_cost_terms_match_definition():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 20, generator=gen)
    t = (torch.rand(2, 20, generator=gen) > 0.5).float()
    ce = batch_sigmoid_ce_cost(x, t)
    dice = batch_dice_cost(x, t)
    for n in range(3):
        for m in range(2):
            ref_ce = torch.nn.functional.binary_cross_entropy_with_logits(x[n], t[m])
            p = x[n].sigmoid()
            ref_dice = 1 - (2 * (p * t[m]).sum() + 1) / (p.sum() + t[m].sum() + 1)
            assert ce[n, m] == pytest.approx(ref_ce.item(), rel=1e-5)
            assert dice[n, m] == pytest.approx(ref_dice.item(), rel=1e-5)


def test_class_cost_only_matches_highest_probability():
    # query 2 predicts class 1 strongly, query 0 predicts class 0 strongly
    logits = torch.full((1, 3, 3), -10.0)
    logits[0, 2, 1] = 10.0
    logits[0, 0, 0] = 10.0
    logits[0, 1, 2] = 10.0
    outputs = {"pred_logits": logits, "pred_masks": torch.zeros(1, 3, 4, 4)}
    targets = [{"labels": torch.tensor([1, 0]), "masks": torch.zeros(2, 4, 4)}]
    ((rows, cols),) = HungarianMatcher(1.0, 0.0, 0.0)(outputs, targets)
    assert dict(zip(cols.tolist(), rows.tolist())) == {0: 2, 1: 0}


def test_perfect_masks_are_matched():
    gen = torch.Generator().manual_seed(3)
    gt = torch.rand(3, 16, 16, generator=gen) > 0.5
    order = torch.tensor([2, 0, 1])
    pred = torch.zeros(1, 4, 16, 16)
    pred[0, :3] = (gt[order].float() * 2 - 1) * 20  # query i predicts gt[order[i]]
    pred[0, 3] = -20
    outputs = {"pred_logits": torch.zeros(1, 4, 3), "pred_masks": pred}
    targets = [{"labels": torch.tensor([0, 1, 0]), "masks": gt}]
    ((rows, cols),) = HungarianMatcher(0.0, 1.0, 1.0, num_points=0)(outputs, targets)
    assert {r: c for r, c in zip(rows.tolist(), cols.tolist())} == {0: 2, 1: 0, 2: 1}


def test_non_finite_costs_never_break_assignment():
    outputs, targets = _problem(0, 4, 3)
    outputs["pred_masks"][0, 1] = float("nan")
    outputs["pred_masks"][0, 2, 0, 0] = float("inf")
    outputs["pred_logits"][0, 3] = float("nan")
    indices = HungarianMatcher(2.0, 5.0, 5.0, num_points=32)(outputs, targets)
    assert len(indices[0][0]) == 3
    c = sanitize_cost(torch.tensor([float("nan"), float("inf"), -float("inf"), 1.0]))
    assert torch.isfinite(c).all() and c[0] > 1 and c[3] == 1


def test_empty_targets_and_batch():
    outputs, targets = _problem(5, 4, 2)
    outputs = {k: torch.cat([v, v]) for k, v in outputs.items()}
    targets = targets + [
        {"labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 12, 12)}
    ]
    indices = HungarianMatcher(2.0, 5.0, 5.0, num_points=16)(outputs, targets)
    assert len(indices) == 2 and len(indices[0][0]) == 2 and len(indices[1][0]) == 0


def test_matcher_runs_in_fp32_under_autocast():
    outputs, targets = _problem(6, 5, 3)
    outputs = {k: v.bfloat16() for k, v in outputs.items()}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cost = HungarianMatcher(2.0, 5.0, 5.0, 32).cost_matrix(
            outputs["pred_logits"][0],
            outputs["pred_masks"][0],
            targets[0]["labels"],
            targets[0]["masks"],
        )
    assert cost.dtype == torch.float32


def test_invalid_arguments():
    with pytest.raises(ValueError):
        HungarianMatcher(0, 0, 0)
    with pytest.raises(ValueError):
        HungarianMatcher(1, 1, 1, num_points=-1)
    outputs, targets = _problem(0, 3, 2)
    with pytest.raises(ValueError, match="targets"):
        HungarianMatcher()(outputs, targets * 2)
