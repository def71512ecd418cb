"""Post-processing (SPEC §5) against straightforward loop implementations of the same rules."""

import pytest
import torch
import torch.nn.functional as F

from detectron2.structures import BitMasks

from mask2former.modeling.postprocessing import (
    crop_and_resize,
    instance_inference,
    masks_to_boxes,
    panoptic_inference,
    semantic_inference,
)

K = 7
THINGS = [0, 1, 2, 3]  # classes 4..6 are stuff


def reference_panoptic(mask_cls, mask_pred, num_classes, obj_thr, overlap_thr, thing_ids):
    """The walk over kept queries, written as plainly as possible."""
    scores, labels = F.softmax(mask_cls, -1).max(-1)
    keep = labels.ne(num_classes) & (scores > obj_thr)
    masks = mask_pred.sigmoid()[keep]
    cur_scores, cur_classes = scores[keep], labels[keep]
    seg = torch.zeros(mask_pred.shape[-2:], dtype=torch.int32)
    info = []
    if masks.shape[0] == 0:
        return seg, info
    ids = (cur_scores[:, None, None] * masks).argmax(0)
    stuff_seen = {}
    current = 0
    for k in range(cur_classes.shape[0]):
        c = int(cur_classes[k])
        isthing = c in thing_ids
        area = int((ids == k).sum())
        orig = int((masks[k] >= 0.5).sum())
        m = (ids == k) & (masks[k] >= 0.5)
        if area > 0 and orig > 0 and int(m.sum()) > 0:
            if area / orig < overlap_thr:
                continue
            if not isthing:
                if c in stuff_seen:
                    seg[m] = stuff_seen[c]
                    continue
                stuff_seen[c] = current + 1
            current += 1
            seg[m] = current
            info.append(
                {"id": current, "isthing": isthing, "category_id": c, "score": float(cur_scores[k])}
            )
    return seg, info


def random_case(seed, q=30, h=24, w=20, confident=True):
    g = torch.Generator().manual_seed(seed)
    mask_cls = torch.randn(q, K + 1, generator=g) * (6.0 if confident else 1.0)
    # blobby masks so that queries overlap and compete
    mask_pred = F.interpolate(
        torch.randn(1, q, h // 4, w // 4, generator=g) * 4,
        size=(h, w),
        mode="bilinear",
        align_corners=False,
    )[0]
    return mask_cls, mask_pred


def test_semantic_matches_einsum():
    mask_cls, mask_pred = random_case(0)
    got = semantic_inference(mask_cls, mask_pred)
    want = torch.einsum("qc,qhw->chw", F.softmax(mask_cls, -1)[:, :-1], mask_pred.sigmoid())
    assert got.shape == (K, *mask_pred.shape[-2:])
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("obj_thr,overlap_thr", [(0.0, 0.0), (0.5, 0.3), (0.3, 0.2), (0.3, 0.35)])
def test_panoptic_matches_reference_walk(seed, obj_thr, overlap_thr):
    mask_cls, mask_pred = random_case(seed)
    got_seg, got_info = panoptic_inference(
        mask_cls,
        mask_pred,
        num_classes=K,
        object_mask_threshold=obj_thr,
        overlap_threshold=overlap_thr,
        thing_ids=THINGS,
    )
    want_seg, want_info = reference_panoptic(mask_cls, mask_pred, K, obj_thr, overlap_thr, THINGS)
    assert got_seg.dtype == torch.int32
    assert torch.equal(got_seg, want_seg)
    assert got_info == want_info


def test_panoptic_stuff_segments_are_merged():
    # two queries of stuff class 5 in separate halves, one thing query
    q, h, w = 3, 8, 8
    mask_cls = torch.full((q, K + 1), -10.0)
    mask_cls[0, 5] = mask_cls[1, 5] = mask_cls[2, 1] = 10.0
    mask_pred = torch.full((q, h, w), -10.0)
    mask_pred[0, :, :3] = 10
    mask_pred[1, :, 3:6] = 10
    mask_pred[2, :, 6:] = 10
    seg, info = panoptic_inference(
        mask_cls,
        mask_pred,
        num_classes=K,
        object_mask_threshold=0.5,
        overlap_threshold=0.5,
        thing_ids=THINGS,
    )
    assert [{k: v for k, v in d.items() if k != "score"} for d in info] == [
        {"id": 1, "isthing": False, "category_id": 5},
        {"id": 2, "isthing": True, "category_id": 1},
    ]
    probs = mask_cls.softmax(-1).max(-1).values
    assert [d["score"] for d in info] == [float(probs[0]), float(probs[2])]
    assert (seg[:, :6] == 1).all() and (seg[:, 6:] == 2).all()


def test_panoptic_nothing_kept():
    mask_cls = torch.zeros(4, K + 1)
    mask_cls[:, K] = 10.0  # every query predicts no-object
    seg, info = panoptic_inference(
        mask_cls,
        torch.randn(4, 5, 6),
        num_classes=K,
        object_mask_threshold=0.8,
        overlap_threshold=0.8,
        thing_ids=THINGS,
    )
    assert info == [] and seg.shape == (5, 6) and not seg.any()


@pytest.mark.parametrize("panoptic_on", [False, True])
def test_instance_matches_reference(panoptic_on):
    mask_cls, mask_pred = random_case(3, q=20)
    topk = 25
    res = instance_inference(
        mask_cls,
        mask_pred,
        num_classes=K,
        test_topk_per_image=topk,
        panoptic_on=panoptic_on,
        thing_ids=THINGS,
    )
    scores = F.softmax(mask_cls, -1)[:, :-1]
    want = []
    for flat in scores.flatten().topk(topk).indices.tolist():
        qi, c = divmod(flat, K)
        if panoptic_on and c not in THINGS:
            continue
        m = mask_pred[qi] > 0
        mscore = (mask_pred[qi].sigmoid() * m).sum() / (m.sum() + 1e-6)
        want.append((float(scores[qi, c] * mscore), c, m))
    assert len(res) == len(want)
    order = torch.argsort(res.scores, descending=True)
    want.sort(key=lambda t: -t[0])
    for i, (s, c, m) in zip(order.tolist(), want):
        assert res.scores[i].item() == pytest.approx(s, rel=1e-5)
        assert res.pred_classes[i].item() == c
        assert torch.equal(res.pred_masks[i], m)
    assert res.image_size == tuple(mask_pred.shape[-2:])
    boxes = BitMasks(res.pred_masks).get_bounding_boxes().tensor
    torch.testing.assert_close(res.pred_boxes.tensor, boxes)
    if panoptic_on:
        assert all(c in THINGS for c in res.pred_classes.tolist())


def test_masks_to_boxes_matches_detectron2_and_handles_empty():
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(6, 9, 11, generator=g) > 0.9
    masks[2] = False
    masks[3] = False
    masks[3, 4, 7] = True
    want = BitMasks(masks).get_bounding_boxes().tensor
    got = masks_to_boxes(masks)
    torch.testing.assert_close(got, want)
    assert got[2].tolist() == [0, 0, 0, 0]
    assert got[3].tolist() == [7, 4, 8, 5]
    assert masks_to_boxes(torch.zeros(0, 4, 4, dtype=torch.bool)).shape == (0, 4)


def test_instance_precomputed_prob_and_empty_masks():
    mask_cls, mask_pred = random_case(5, q=12)
    mask_pred[3] = -1.0  # a query with an empty mask: zero box, zero mask score
    mask_cls[3, 0] = 20.0  # make sure it is among the top pairs
    kwargs = dict(num_classes=K, test_topk_per_image=30, panoptic_on=False, thing_ids=THINGS)
    a = instance_inference(mask_cls, mask_pred, **kwargs)
    b = instance_inference(mask_cls, mask_pred, mask_prob=mask_pred.sigmoid(), **kwargs)
    for name in ("pred_masks", "scores", "pred_classes"):
        assert torch.equal(a.get(name), b.get(name)), name
    assert torch.equal(a.pred_boxes.tensor, b.pred_boxes.tensor)
    empty = ~a.pred_masks.flatten(1).any(1)
    assert empty.any()
    assert not a.pred_boxes.tensor[empty].any() and not a.scores[empty].any()


def test_panoptic_tie_goes_to_first_query():
    h, w = 6, 5
    mask_pred = torch.full((3, h, w), -5.0)
    mask_pred[0, :, :3] = 5.0
    mask_pred[1] = mask_pred[0]  # same score * sigmoid as query 0 everywhere
    mask_pred[2, :, 3:] = 5.0
    mask_cls = torch.full((3, K + 1), -10.0)
    mask_cls[0, 1] = mask_cls[1, 3] = mask_cls[2, 2] = 10.0  # equal scores, other class
    seg, info = panoptic_inference(
        mask_cls,
        mask_pred,
        num_classes=K,
        object_mask_threshold=0.5,
        overlap_threshold=0.8,
        thing_ids=THINGS,
    )
    want = reference_panoptic(mask_cls, mask_pred, K, 0.5, 0.8, THINGS)
    assert torch.equal(seg, want[0]) and info == want[1]
    assert [d["category_id"] for d in info] == [1, 2]
    assert (seg[:, :3] == 1).all() and (seg[:, 3:] == 2).all()


def _pixel_major(x):
    """Same values, pixel-major storage (as the meta-architecture produces)."""
    return x.permute(1, 2, 0).contiguous().permute(2, 0, 1)


@pytest.mark.parametrize("layout", ["pixel_major", "padded_crop"])
def test_results_do_not_depend_on_memory_layout(layout):
    mask_cls, mask_pred = random_case(9, q=25, h=32, w=28)
    if layout == "pixel_major":
        other = _pixel_major(mask_pred)
        assert other.stride(0) == 1
    else:  # a pixel-major crop of a padded map: not compact
        padded = torch.full((25, 40, 36), 7.0)
        padded[:, :32, :28] = mask_pred
        other = _pixel_major(padded)[:, :32, :28]
    kwargs = dict(num_classes=K, thing_ids=THINGS)
    sem_a, sem_b = semantic_inference(mask_cls, mask_pred), semantic_inference(mask_cls, other)
    torch.testing.assert_close(sem_b, sem_a, rtol=1e-5, atol=1e-6)
    pan = dict(object_mask_threshold=0.4, overlap_threshold=0.3, **kwargs)
    seg_a, info_a = panoptic_inference(mask_cls, mask_pred, **pan)
    seg_b, info_b = panoptic_inference(mask_cls, other, **pan)
    assert info_a and info_b == info_a and torch.equal(seg_a, seg_b)
    inst = dict(test_topk_per_image=40, panoptic_on=True, **kwargs)
    a = instance_inference(mask_cls, mask_pred, **inst)
    b = instance_inference(mask_cls, other, mask_prob=other.sigmoid(), **inst)
    assert len(a) > 0 and torch.equal(a.pred_masks, b.pred_masks)
    assert torch.equal(a.pred_classes, b.pred_classes)
    torch.testing.assert_close(a.scores, b.scores, rtol=1e-6, atol=0)
    assert torch.equal(a.pred_boxes.tensor, b.pred_boxes.tensor)


def test_crop_and_resize_keeps_pixel_major_layout():
    x = torch.randn(5, 12, 10)
    pm = _pixel_major(x)
    out = crop_and_resize(pm, (9, 7), 9, 7)
    assert torch.equal(out, x[:, :9, :7]) and out.permute(1, 2, 0).is_contiguous()
    resized = crop_and_resize(pm, (9, 7), 18, 14)
    torch.testing.assert_close(resized, crop_and_resize(x, (9, 7), 18, 14), rtol=1e-5, atol=1e-5)
    assert torch.equal(crop_and_resize(x, (9, 7), 9, 7), x[:, :9, :7])
