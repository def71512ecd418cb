"""Property tests (hypothesis) on random shapes: post-processing and deformable attention.

Post-processing results are compared with straightforward per-query loop implementations of
SPEC §5 written here, plus invariants that hold for any input. Inputs are drawn from a seeded
torch generator (hypothesis chooses shapes, seeds and thresholds) so that score ties, which
make the argmax ill-defined, have probability zero.
"""
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mask2former.layers import ms_deform_attn
from mask2former.modeling import postprocessing

SETTINGS = dict(max_examples=30, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


def _inputs(seed, q, k, h, w, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    mask_cls = torch.randn(q, k + 1, generator=g, dtype=torch.float64) * scale
    mask_pred = torch.randn(q, h, w, generator=g, dtype=torch.float64) * scale
    return mask_cls, mask_pred


shapes = st.tuples(st.integers(0, 2**31 - 1), st.integers(1, 12), st.integers(1, 6),
                   st.integers(1, 9), st.integers(1, 9))


# ----------------------------------------------------------------------------- semantic
@settings(**SETTINGS)
@given(shapes)
def test_semantic_inference_matches_loop_and_bounds(args):
    seed, q, k, h, w = args
    mask_cls, mask_pred = _inputs(seed, q, k, h, w)
    out = postprocessing.semantic_inference(mask_cls, mask_pred)
    assert out.shape == (k, h, w)
    ref = torch.zeros(k, h, w, dtype=torch.float64)
    for i in range(q):
        ref += F.softmax(mask_cls[i], -1)[:k, None, None] * mask_pred[i].sigmoid()[None]
    torch.testing.assert_close(out, ref)
    assert (out >= 0).all() and (out.sum(0) <= q + 1e-9).all()
    perm = torch.randperm(q, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(postprocessing.semantic_inference(mask_cls[perm], mask_pred[perm]),
                               out)


# ----------------------------------------------------------------------------- panoptic
def _panoptic_loop(mask_cls, mask_pred, k, obj_thr, overlap_thr, thing_ids):
    scores, labels = F.softmax(mask_cls, -1).max(-1)
    keep = (labels != k) & (scores > obj_thr)
    probs = mask_pred.sigmoid()
    h, w = probs.shape[-2:]
    seg = torch.zeros(h, w, dtype=torch.int32)
    info = []
    if not keep.any():
        return seg, info
    cs, cl, cm = scores[keep], labels[keep], probs[keep]
    owner = (cs[:, None, None] * cm).argmax(0)
    stuff_ids = {}
    cur = 0
    for i in range(len(cl)):
        c = int(cl[i])
        isthing = c in thing_ids
        mask = (owner == i) & (cm[i] >= 0.5)
        area = int((owner == i).sum())
        orig = int((cm[i] >= 0.5).sum())
        if area > 0 and orig > 0 and int(mask.sum()) > 0:
            if area / orig < overlap_thr:
                continue
            if not isthing and c in stuff_ids:
                seg[mask] = stuff_ids[c]
                continue
            cur += 1
            if not isthing:
                stuff_ids[c] = cur
            seg[mask] = cur
            info.append({"id": cur, "isthing": isthing, "category_id": c, "score": float(cs[i])})
    return seg, info


@settings(**SETTINGS)
@given(shapes, st.sampled_from([0.0, 0.3, 0.8]), st.sampled_from([0.0, 0.5, 0.8]),
       st.integers(0, 2**10))
def test_panoptic_inference_matches_loop_and_invariants(args, obj_thr, overlap_thr, thing_bits):
    seed, q, k, h, w = args
    mask_cls, mask_pred = _inputs(seed, q, k, h, w)
    thing_ids = [c for c in range(k) if thing_bits >> c & 1]
    seg, info = postprocessing.panoptic_inference(
        mask_cls, mask_pred, num_classes=k, object_mask_threshold=obj_thr,
        overlap_threshold=overlap_thr, thing_ids=thing_ids)
    ref_seg, ref_info = _panoptic_loop(mask_cls, mask_pred, k, obj_thr, overlap_thr,
                                       set(thing_ids))
    assert seg.dtype == torch.int32 and seg.shape == (h, w)
    assert torch.equal(seg, ref_seg)
    assert info == ref_info
    # invariants
    ids = [s["id"] for s in info]
    assert ids == list(range(1, len(info) + 1))
    present = set(torch.unique(seg).tolist()) - {0}
    assert present == set(ids)
    stuff = [s["category_id"] for s in info if not s["isthing"]]
    assert len(stuff) == len(set(stuff))
    for s in info:
        assert 0 <= s["category_id"] < k and s["isthing"] == (s["category_id"] in thing_ids)


def test_panoptic_inference_nothing_kept():
    mask_cls, mask_pred = _inputs(0, 5, 3, 4, 4)
    seg, info = postprocessing.panoptic_inference(
        mask_cls, mask_pred, num_classes=3, object_mask_threshold=1.0, overlap_threshold=0.8,
        thing_ids=[0])
    assert info == [] and not seg.any()


# ----------------------------------------------------------------------------- instance
@settings(**SETTINGS)
@given(shapes, st.integers(1, 30), st.booleans(), st.integers(0, 2**10))
def test_instance_inference_matches_loop(args, topk, panoptic_on, thing_bits):
    seed, q, k, h, w = args
    mask_cls, mask_pred = _inputs(seed, q, k, h, w)
    thing_ids = [c for c in range(k) if thing_bits >> c & 1]
    res = postprocessing.instance_inference(
        mask_cls, mask_pred, num_classes=k, test_topk_per_image=topk, panoptic_on=panoptic_on,
        thing_ids=thing_ids)
    probs = F.softmax(mask_cls, -1)[:, :k]
    pairs = sorted(((float(probs[i, c]), i, c) for i in range(q) for c in range(k)),
                   reverse=True)[:topk]
    if panoptic_on:
        pairs = [p for p in pairs if p[2] in thing_ids]
    def canon(rows):  # order-free comparison: by class and mask, then score
        return sorted(rows, key=lambda t: (t[1], t[2].flatten().tolist(), t[0]))

    got = canon(zip(res.scores.tolist(), res.pred_classes.tolist(), list(res.pred_masks)))
    assert len(res) == len(pairs)
    ref = []
    for p, i, c in pairs:
        m = mask_pred[i] > 0
        s = p * float((mask_pred[i].sigmoid() * m).sum() / (m.sum() + 1e-6))
        ref.append((s, c, m))
    ref = canon(ref)
    for (s, c, m), (rs, rc, rm) in zip(got, ref):
        # float32 sums over the pixels, in another order than the loop's: rounding-level
        assert abs(s - rs) <= 1e-6 * max(1.0, abs(rs)) and c == rc and torch.equal(m, rm)
    assert ((res.scores >= 0) & (res.scores <= 1)).all()
    assert res.pred_masks.shape == (len(pairs), h, w) and res.pred_masks.dtype == torch.bool
    for m, b in zip(res.pred_masks, res.pred_boxes.tensor):
        if m.any():
            ys, xs = torch.nonzero(m, as_tuple=True)
            assert b.tolist() == [xs.min().item(), ys.min().item(), xs.max().item() + 1,
                                  ys.max().item() + 1]
        else:
            assert not b.any()


# ----------------------------------------------------------------------------- ms_deform_attn
def _attn_inputs(seed, n, m, d, levels, lq, p, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    hw = torch.randint(1, 7, (levels, 2), generator=g)
    sizes = hw.prod(1)
    start = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    s = int(sizes.sum())
    value = torch.randn(n, s, m, d, generator=g, dtype=dtype)
    # locations partly outside [0, 1] to exercise zero padding
    loc = torch.rand(n, lq, m, levels, p, 2, generator=g, dtype=dtype) * 1.4 - 0.2
    w = torch.rand(n, lq, m, levels, p, generator=g, dtype=dtype)
    w = w / w.flatten(-2).sum(-1)[..., None, None]
    return value, hw, start, loc, w


attn_shapes = st.tuples(st.integers(0, 2**31 - 1), st.integers(1, 2), st.integers(1, 3),
                        st.integers(1, 4), st.integers(1, 3), st.integers(1, 5),
                        st.integers(1, 3))


@settings(**SETTINGS)
@given(attn_shapes)
def test_ms_deform_attn_shape_linearity_and_padding(args):
    value, hw, start, loc, w = _attn_inputs(*args)
    n, s, m, d = value.shape
    out = ms_deform_attn(value, hw, start, loc, w, backend="pytorch")
    assert out.shape == (n, loc.shape[1], m * d)
    g = torch.Generator().manual_seed(args[0] + 1)
    v2 = torch.randn(value.shape, generator=g, dtype=value.dtype)
    lin = ms_deform_attn(2 * value - 3 * v2, hw, start, loc, w, backend="pytorch")
    torch.testing.assert_close(lin, 2 * out - 3 * ms_deform_attn(v2, hw, start, loc, w,
                                                                   backend="pytorch"))
    far = torch.full_like(loc, 5.0)  # every sample far outside the maps -> zero padding
    assert ms_deform_attn(value, hw, start, far, w, backend="pytorch").abs().max() == 0
    # sampling exactly at a pixel centre with all weight there returns that pixel
    lvl, y, x = 0, int(hw[0, 0]) - 1, 0
    centre = torch.tensor([(x + 0.5) / int(hw[lvl, 1]), (y + 0.5) / int(hw[lvl, 0])],
                          dtype=value.dtype)
    loc1 = centre.expand(n, 1, m, hw.shape[0], 1, 2).contiguous()
    w1 = torch.zeros(n, 1, m, hw.shape[0], 1, dtype=value.dtype)
    w1[:, :, :, lvl] = 1
    got = ms_deform_attn(value, hw, start, loc1, w1, backend="pytorch").view(n, m, d)
    torch.testing.assert_close(got, value[:, int(start[lvl]) + y * int(hw[lvl, 1]) + x])


@settings(**SETTINGS)
@given(attn_shapes)
def test_ms_deform_attn_native_matches_pytorch(args):
    value, hw, start, loc, w = _attn_inputs(*args)
    ins = [t.clone().requires_grad_(True) for t in (value, loc, w)]
    ins_n = [t.clone().requires_grad_(True) for t in (value, loc, w)]
    ref = ms_deform_attn(ins[0], hw, start, ins[1], ins[2], backend="pytorch")
    nat = ms_deform_attn(ins_n[0], hw, start, ins_n[1], ins_n[2], backend="native")
    torch.testing.assert_close(nat, ref, rtol=1e-9, atol=1e-10)
    grad = torch.randn(ref.shape, generator=torch.Generator().manual_seed(args[0]),
                       dtype=ref.dtype)
    ref.backward(grad)
    nat.backward(grad)
    for a, b, name in zip(ins_n, ins, ["value", "sampling_locations", "attention_weights"]):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-7, atol=1e-8, msg=name)
