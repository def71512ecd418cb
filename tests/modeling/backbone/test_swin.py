"""Tests of the Swin backbone (D2SwinTransformer): checkpoint layout, numerical parity with
the original implementation, odd input sizes, and the pieces SPEC §4 pins down."""

import json
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone

from mask2former.modeling.backbone.swin import (
    D2SwinTransformer,
    PatchMerging,
    WindowAttention,
    relative_position_index,
    shifted_window_mask,
)

from helpers import COCO_IMAGES, STATE_DICT_DIR, make_cfg

IMAGE = os.path.join(COCO_IMAGES, "000000439180.jpg")


def _listing(name):
    with open(os.path.join(STATE_DICT_DIR, name)) as f:
        sd = json.load(f)["state_dict"]
    return {
        k: (tuple(shape), dtype) for k, (shape, dtype) in sd.items() if k.startswith("backbone.")
    }


def _config_file_cfg(name):
    return make_cfg(f"coco/panoptic/{name}.yaml")


@pytest.mark.parametrize("source", ["variant", "config_file"])
@pytest.mark.parametrize(
    "variant, listing",
    [("swin_t", "coco_panoptic_swin_t.json"), ("swin_l", "coco_panoptic_swin_l.json")],
)
def test_state_dict_matches_released_checkpoint(swin_cfg, holder, variant, listing, source):
    """Key for key, shape for shape, dtype for dtype: the backbone part of the listings, for
    the family's MODEL.SWIN values and for configs/coco/panoptic/<family>.yaml."""
    cfg = swin_cfg(variant) if source == "variant" else _config_file_cfg(variant)
    # meta device: layout only, no memory for Swin-L's ~200M parameters
    with torch.device("meta"):
        model = holder(build_backbone(cfg))
    assert isinstance(model.backbone, D2SwinTransformer)
    got = {
        k: (tuple(v.shape), str(v.dtype).replace("torch.", ""))
        for k, v in model.state_dict().items()
    }
    want = _listing(listing)
    assert sorted(set(want) - set(got)) == [], "missing keys"
    assert sorted(set(got) - set(want)) == [], "unexpected keys"
    wrong = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
    assert wrong == {}



def _rel_err(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


@pytest.mark.parametrize("hw", [(37, 53), (64, 97), (129, 33), (7, 9)])
def test_odd_input_sizes(swin_cfg, hw):
    """Sizes that are not multiples of 4, 32 or the window run; each stage rounds up."""
    backbone = build_backbone(swin_cfg("tiny")).eval()
    h, w = hw
    with torch.no_grad():
        out = backbone(torch.randn(2, 3, h, w))
    shapes = backbone.output_shape()
    for i, name in enumerate(["res2", "res3", "res4", "res5"]):
        h, w = (
            (math.ceil(h / 4), math.ceil(w / 4)) if i == 0 else (math.ceil(h / 2), math.ceil(w / 2))
        )
        assert tuple(out[name].shape) == (2, shapes[name].channels, h, w), name
        assert torch.isfinite(out[name]).all()


def test_output_shape_and_divisibility(swin_cfg):
    cfg = swin_cfg("swin_t")
    cfg.MODEL.SWIN.OUT_FEATURES = ["res3", "res5"]
    with torch.device("meta"):
        backbone = build_backbone(cfg, ShapeSpec(channels=3))
    assert backbone.size_divisibility == 32
    assert backbone.output_shape() == {
        "res3": ShapeSpec(channels=192, stride=8),
        "res5": ShapeSpec(channels=768, stride=32),
    }
    # all four output norms stay, so the released checkpoints load with any OUT_FEATURES
    assert all(hasattr(backbone, f"norm{i}") for i in range(4))

    cfg.MODEL.SWIN.OUT_FEATURES = ["res6"]
    with pytest.raises(ValueError, match="res6"):
        build_backbone(cfg)


def test_out_features_subset_forward(swin_cfg):
    cfg = swin_cfg("tiny")
    cfg.MODEL.SWIN.OUT_FEATURES = ["res2", "res4"]
    with torch.no_grad():
        out = build_backbone(cfg).eval()(torch.randn(1, 3, 40, 40))
    assert sorted(out) == ["res2", "res4"]


def test_drop_path_rises_linearly(swin_cfg):
    with torch.device("meta"):
        backbone = build_backbone(swin_cfg("swin_t", DROP_PATH_RATE=0.3))
    rates = [getattr(blk.drop_path, "p", 0.0) for stage in backbone.layers for blk in stage.blocks]
    assert rates == pytest.approx(np.linspace(0, 0.3, 12).tolist())
    shifts = [blk.shift_size for stage in backbone.layers for blk in stage.blocks]
    assert shifts == [0, 3] * 6


def test_patch_merging_concat_order():
    """The norm sees the 2x2 neighbours in the order (0,0), (1,0), (0,1), (1,1) (row, col),
    with odd sizes zero-padded at the bottom/right."""
    c = 3
    merge = PatchMerging(c)
    seen = {}
    merge.norm.register_forward_hook(lambda m, inp, out: seen.setdefault("x", inp[0]))
    x = torch.randn(2, 5, 7, c)
    out = merge(x)
    assert out.shape == (2, 3, 4, 2 * c)
    padded = F.pad(x, (0, 0, 0, 1, 0, 1))
    expected = [padded[:, r::2, q::2] for r, q in [(0, 0), (1, 0), (0, 1), (1, 1)]]
    torch.testing.assert_close(seen["x"], torch.cat(expected, dim=-1), rtol=0, atol=0)


def test_relative_position_index():
    ws = 5
    idx = relative_position_index(ws)
    n = ws * ws
    assert idx.shape == (n, n) and idx.dtype == torch.int64
    ys, xs = torch.arange(n) // ws, torch.arange(n) % ws
    dy = ys[:, None] - ys[None, :] + ws - 1
    dx = xs[:, None] - xs[None, :] + ws - 1
    assert torch.equal(idx, dy * (2 * ws - 1) + dx)
    assert idx.min() == 0 and idx.max() == (2 * ws - 1) ** 2 - 1


@pytest.mark.parametrize("hp, wp, ws", [(10, 15, 5), (5, 5, 5), (14, 7, 7)])
def test_shifted_window_mask_matches_region_definition(hp, wp, ws):
    """Two tokens of a shifted window may attend to each other iff they were neighbours in
    the unshifted (padded) map: neither or both wrapped around the border in each axis."""
    shift = ws // 2
    mask = shifted_window_mask(hp, wp, ws, shift)
    assert mask.shape == ((hp // ws) * (wp // ws), ws * ws, ws * ws)

    for win in range(mask.shape[0]):
        wy, wx = divmod(win, wp // ws)
        labels = []
        for t in range(ws * ws):
            r, c = wy * ws + t // ws, wx * ws + t % ws  # position in the shifted map
            labels.append((r + shift >= hp, c + shift >= wp))  # came around the border?
        labels = torch.tensor(labels)
        same = (labels[:, None] == labels[None, :]).all(-1)
        expected = torch.where(same, 0.0, -100.0)
        assert torch.equal(mask[win], expected), win


def test_window_attention_matches_textbook_formula():
    torch.manual_seed(0)
    attn = WindowAttention(dim=12, window_size=3, num_heads=3).eval()
    torch.nn.init.normal_(attn.relative_position_bias_table)
    x = torch.randn(4, 9, 12)  # 2 images x 2 windows
    mask = torch.zeros(2, 9, 9)
    mask[1, :4, 4:] = -100.0
    mask[1, 4:, :4] = -100.0

    qkv = attn.qkv(x).reshape(4, 9, 3, 3, 4).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0] * 4**-0.5, qkv[1], qkv[2]
    logits = q @ k.transpose(-2, -1) + attn.relative_position_bias().unsqueeze(0)
    logits = (logits.view(2, 2, 3, 9, 9) + mask[None, :, None]).view(4, 3, 9, 9)
    expected = attn.proj((logits.softmax(-1) @ v).transpose(1, 2).reshape(4, 9, 12))
    torch.testing.assert_close(attn(x, mask), expected, rtol=1e-5, atol=1e-6)
    bias = attn.relative_position_bias()
    assert bias.shape == (3, 9, 9)
    # same relative offset -> same bias entry
    assert torch.equal(bias[:, 0, 1], bias[:, 4, 5])


def test_training_step_with_drop_path_and_checkpointing(swin_cfg):
    cfg = swin_cfg(
        "tiny", DROP_PATH_RATE=0.5, USE_CHECKPOINT=True, DROP_RATE=0.1, ATTN_DROP_RATE=0.1
    )
    backbone = build_backbone(cfg).train()
    out = backbone(torch.randn(2, 3, 45, 50))
    sum(v.square().mean() for v in out.values()).backward()
    grads = [p.grad for p in backbone.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    # eval is deterministic, training is stochastic
    x = torch.randn(1, 3, 32, 32)
    backbone.eval()
    with torch.no_grad():
        torch.testing.assert_close(backbone(x)["res5"], backbone(x)["res5"])


def test_absolute_position_embedding(swin_cfg):
    backbone = build_backbone(swin_cfg("tiny", APE=True, PRETRAIN_IMG_SIZE=64)).eval()
    assert backbone.state_dict()["absolute_pos_embed"].shape == (1, 8, 16, 16)
    with torch.no_grad():
        out = backbone(torch.randn(1, 3, 50, 70))
    assert out["res2"].shape == (1, 8, 13, 18)
