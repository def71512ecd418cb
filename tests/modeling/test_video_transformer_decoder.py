"""VideoMultiScaleMaskedTransformerDecoder (SPEC §9): clip layout, frame-major memory, (t, h, w)
attention masks, output shapes."""

import pytest
import torch
import torch.nn.functional as F

from detectron2.modeling import build_model

from helpers import TINY_VIDEO_CONFIG, TINY_VIDEO_OPTS, make_cfg
from mask2former.modeling.transformer_decoder.mask2former_transformer_decoder import (
    MultiScaleMaskedTransformerDecoder,
    attention_mask_from_logits,
)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    cfg = make_cfg(TINY_VIDEO_CONFIG, *TINY_VIDEO_OPTS, "INPUT.SAMPLING_FRAME_NUM", "2")
    return build_model(cfg)


def _features(model, n, seed, h=64, w=96):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, h, w, generator=g)
    return model.backbone(x)


def test_eval_outputs_one_clip_of_all_frames(tiny):
    tiny.eval()
    with torch.no_grad():
        out = tiny.sem_seg_head(_features(tiny, 3, 0))
    assert out["pred_logits"].shape == (1, 4, 6)
    assert out["pred_masks"].shape == (1, 4, 3, 16, 24)
    assert out["pred_embds"].shape == (1, 4, 32)
    assert len(out["aux_outputs"]) == 2
    assert all(a["pred_masks"].shape == (1, 4, 3, 16, 24) for a in out["aux_outputs"])


def test_training_batches_clips_independently(tiny):
    """Two clips of 2 frames in one training batch give each clip's own outputs."""
    tiny.train()
    try:
        with torch.no_grad():
            feats = _features(tiny, 4, 1)
            both = tiny.sem_seg_head(feats)
            assert both["pred_masks"].shape == (2, 4, 2, 16, 24)
            for c in range(2):
                one = tiny.sem_seg_head({k: v[2 * c: 2 * c + 2] for k, v in feats.items()})
                torch.testing.assert_close(both["pred_masks"][c], one["pred_masks"][0],
                                           rtol=1e-4, atol=1e-4)
                torch.testing.assert_close(both["pred_logits"][c], one["pred_logits"][0],
                                           rtol=1e-4, atol=1e-4)
        with pytest.raises(ValueError, match="SAMPLING_FRAME_NUM=2"):
            tiny.sem_seg_head(_features(tiny, 3, 2))
    finally:
        tiny.eval()


def test_memory_is_frame_major():
    b, t, c, h, w = 2, 3, 4, 2, 5
    maps = torch.randn(b * t, c, h, w)
    seq = MultiScaleMaskedTransformerDecoder.memory_sequence(maps, b)
    assert seq.shape == (t * h * w, b, c)
    for bi in range(b):
        for ti in range(t):
            for p in range(h * w):
                assert torch.equal(seq[ti * h * w + p, bi], maps[bi * t + ti, :, p // w, p % w])


def test_clip_attention_mask_covers_every_frame():
    logits = torch.full((1, 3, 2, 4, 4), -5.0)
    logits[0, 0, 1, 2, 3] = 5.0  # query 0: foreground in frame 1 only
    logits[0, 1] = 5.0  # query 1: everywhere; query 2: nowhere (row opened)
    m = attention_mask_from_logits(logits, (4, 4), num_heads=2)
    assert m.shape == (2, 3, 2 * 16)
    open_q0 = (~m[0, 0]).nonzero().flatten().tolist()
    assert open_q0 == [1 * 16 + 2 * 4 + 3]  # frame-major (t, h, w) index
    assert not m[:, 1].any() and not m[:, 2].any()
    assert torch.equal(m[0], m[1])  # same for every head
    # resizing acts frame by frame
    small = attention_mask_from_logits(logits, (2, 2), num_heads=1)
    per_frame = F.interpolate(logits[0].flatten(0, 1)[:, None], size=(2, 2), mode="bilinear",
                              align_corners=False).view(3, 2 * 4).sigmoid() < 0.5
    per_frame &= ~per_frame.all(-1, keepdim=True)
    assert torch.equal(small[0], per_frame)
