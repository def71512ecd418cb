"""VideoHungarianMatcher (SPEC §9): one set of random points shared by all frames and masks of a
clip; costs equal a brute-force computation on the same points."""

import math

import numpy as np
import pytest
import torch

from mask2former.modeling.matcher import HungarianMatcher, VideoHungarianMatcher


def _bilinear(mask: np.ndarray, x: float, y: float) -> float:
    """Value of ``mask`` [H, W] at normalised (x, y) in [0, 1]: bilinear, pixel centres at
    (i + 0.5) / size (align_corners=False), zero outside the image."""
    h, w = mask.shape
    px, py = x * w - 0.5, y * h - 0.5
    x0, y0 = math.floor(px), math.floor(py)
    value = 0.0
    for yy, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
        for xx, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                value += wy * wx * float(mask[yy, xx])
    return value


def _brute_force_cost(logits, pred, labels, tgt, coords, wc, wm, wd):
    """[Q, G] cost from per-(query, instance) loops over frames and points."""
    q, g = pred.shape[0], tgt.shape[0]
    prob = torch.softmax(logits.double(), -1).numpy()
    pred, tgt = pred.double().numpy(), tgt.double().numpy()
    cost = np.zeros((q, g))
    for i in range(q):
        pv = np.array([_bilinear(f, x, y) for f in pred[i] for x, y in coords])  # T*P values
        for j in range(g):
            tv = np.array([_bilinear(f, x, y) for f in tgt[j] for x, y in coords])
            bce = np.mean(np.logaddexp(0, -pv) * tv + np.logaddexp(0, pv) * (1 - tv))
            p = 1 / (1 + np.exp(-pv))
            dice = 1 - (2 * np.sum(p * tv) + 1) / (np.sum(p) + np.sum(tv) + 1)
            cost[i, j] = -wc * prob[i, labels[j]] + wm * bce + wd * dice
    return cost


def _clip_problem(seed, q=3, g=2, t=3, k=4, h=8, w=10):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(q, k + 1, generator=gen)
    pred = torch.randn(q, t, h // 2, w // 2, generator=gen) * 3
    labels = torch.randint(0, k, (g,), generator=gen)
    tgt = torch.rand(g, t, h, w, generator=gen) > 0.5
    return logits, pred, labels, tgt


@pytest.mark.parametrize("seed", [0, 1])
def test_costs_equal_brute_force_on_the_same_points(seed):
    logits, pred, labels, tgt = _clip_problem(seed)
    matcher = VideoHungarianMatcher(cost_class=2.0, cost_mask=5.0, cost_dice=5.0, num_points=7)
    torch.manual_seed(100 + seed)
    cost = matcher.cost_matrix(logits, pred, labels, tgt)
    torch.manual_seed(100 + seed)
    coords = torch.rand(1, 7, 2)[0].double().numpy()  # the points the matcher drew: (x, y)
    want = _brute_force_cost(logits, pred, labels.tolist(), tgt, coords, 2.0, 5.0, 5.0)
    assert cost.shape == (3, 2)
    np.testing.assert_allclose(cost.numpy(), want, rtol=1e-4, atol=1e-5)


def test_every_frame_uses_the_same_points():
    """With every frame alike, the clip's mask cost is the one-frame cost on the same draw: the
    frames share one set of points (independent draws per frame would change it)."""
    logits, pred, labels, tgt = _clip_problem(2, t=1)
    t = 4
    video = VideoHungarianMatcher(cost_class=0.0, cost_mask=1.0, cost_dice=0.0, num_points=5)
    image = HungarianMatcher(cost_class=0.0, cost_mask=1.0, cost_dice=0.0, num_points=5)
    torch.manual_seed(7)
    clip_cost = video.cost_matrix(logits, pred.expand(-1, t, -1, -1), labels,
                                  tgt.expand(-1, t, -1, -1))
    torch.manual_seed(7)
    frame_cost = image.cost_matrix(logits, pred[:, 0], labels, tgt[:, 0])
    torch.testing.assert_close(clip_cost, frame_cost, rtol=1e-6, atol=1e-6)
    # a frame that differs changes the clip cost by exactly its share of the points
    pred2 = pred.expand(-1, 2, -1, -1).clone()
    pred2[:, 1] = -pred2[:, 1]
    tgt2 = tgt.expand(-1, 2, -1, -1)
    torch.manual_seed(7)
    two = video.cost_matrix(logits, pred2, labels, tgt2)
    torch.manual_seed(7)
    flipped = image.cost_matrix(logits, -pred[:, 0], labels, tgt[:, 0])
    torch.testing.assert_close(two, (frame_cost + flipped) / 2, rtol=1e-5, atol=1e-6)


def test_matching_recovers_a_permutation():
    gen = torch.Generator().manual_seed(3)
    q, t, k = 5, 2, 6
    pred = torch.randn(1, q, t, 16, 16, generator=gen) * 8
    logits = torch.randn(1, q, k + 1, generator=gen)
    queries = torch.tensor([4, 0, 2])  # target j is query queries[j]'s prediction
    targets = [{"labels": logits[0, queries, :k].argmax(-1), "masks": pred[0, queries] > 0}]
    matcher = VideoHungarianMatcher(cost_class=1.0, cost_mask=1.0, cost_dice=1.0, num_points=64)
    (rows, cols), = matcher({"pred_logits": logits, "pred_masks": pred}, targets)
    assert dict(zip(cols.tolist(), rows.tolist())) == {j: int(i) for j, i in enumerate(queries)}


def test_dense_mode_and_shape_errors():
    logits, pred, labels, tgt = _clip_problem(4)
    matcher = VideoHungarianMatcher(cost_class=1.0, cost_mask=1.0, cost_dice=1.0, num_points=0)
    assert matcher.cost_matrix(logits, pred, labels, tgt).shape == (3, 2)
    with pytest.raises(ValueError, match="frames"):
        matcher.cost_matrix(logits, pred, labels, tgt[:, :2])
    with pytest.raises(ValueError, match=r"\[R, T, H, W\]"):
        matcher.cost_matrix(logits, pred[:, 0], labels, tgt[:, 0])
