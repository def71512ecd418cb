"""MaskFormer v1 (SPEC §10): the DETR layers against PyTorch's own transformer layers, the
predictor, the pixel decoders, the per-pixel baselines, the focal loss/cost, the v1 panoptic rule,
the v1 config family and a few training steps. (State-dict listings: test_state_dict.py.)"""

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss as tv_sigmoid_focal_loss

from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_model

from helpers import CONFIGS, build_on_meta, load_listing, make_cfg
from mask2former.layers.transformer import DetrDecoderLayer, DetrEncoderLayer
from mask2former.modeling.criterion import sigmoid_focal_loss
from mask2former.modeling.matcher import (
    HungarianMatcher,
    batch_dice_cost,
    batch_sigmoid_focal_cost,
)
from mask2former.modeling.pixel_decoder.fpn import (
    BasePixelDecoder,
    TransformerEncoderPixelDecoder,
)
from mask2former.modeling.postprocessing import panoptic_inference
from mask2former.modeling.transformer_decoder import (
    TRANSFORMER_DECODER_REGISTRY,
    StandardTransformerDecoder,
    TransformerPredictor,
)

# every released MaskFormer v1 model this project has a config for (see MODEL_ZOO.md)
V1_CONFIGS = [
    *(f"ade20k/semantic/maskformer_{b}.yaml"
      for b in ("r50", "r101", "r101c", "swin_t", "swin_s", "swin_b_in21k", "swin_l")),
    "ade20k/semantic/per_pixel_baseline_r50.yaml",
    "ade20k/semantic/per_pixel_baseline_plus_r50.yaml",
    *(f"ade20k_full/semantic/{m}.yaml" for m in ("maskformer_r50", "maskformer_r101",
      "maskformer_r101c", "per_pixel_baseline_r50", "per_pixel_baseline_plus_r50")),
    *(f"coco_stuff_10k/semantic/{m}.yaml" for m in ("maskformer_r50", "maskformer_r101",
      "maskformer_r101c", "per_pixel_baseline_r50", "per_pixel_baseline_plus_r50")),
    *(f"cityscapes/semantic/{m}.yaml" for m in ("maskformer_r101", "maskformer_r101c",
      "per_pixel_baseline_r101", "per_pixel_baseline_plus_r101")),
    *(f"mapillary_vistas/semantic/{m}.yaml" for m in ("maskformer_r50", "per_pixel_baseline_r50",
      "per_pixel_baseline_plus_r50")),
    "ade20k/panoptic/maskformer_r50.yaml",
    "ade20k/panoptic/maskformer_r101.yaml",
    *(f"coco/panoptic/maskformer_{b}.yaml"
      for b in ("r50", "r101", "swin_t", "swin_s", "swin_b", "swin_b_in21k", "swin_l")),
]


# a small v1 model (R18, width 32) for the tests that run forward/backward passes
TINY_V1_OPTS = (
    "MODEL.WEIGHTS", "", "MODEL.RESNETS.DEPTH", "18", "MODEL.RESNETS.RES2_OUT_CHANNELS", "64",
    "MODEL.SEM_SEG_HEAD.CONVS_DIM", "32", "MODEL.SEM_SEG_HEAD.MASK_DIM", "32",
    "MODEL.MASK_FORMER.HIDDEN_DIM", "32", "MODEL.MASK_FORMER.NHEADS", "4",
    "MODEL.MASK_FORMER.DIM_FEEDFORWARD", "64",
)


# ---- configs (the state_dict listings: tests/modeling/test_state_dict.py) -----------------------
def test_v1_config_family_complete():
    """A config for every released v1 model (their _BASE_ depth and keys: tests/test_config.py)."""
    have = {os.path.relpath(os.path.join(r, f), CONFIGS) for r, _, fs in os.walk(CONFIGS)
            for f in fs if f.startswith(("maskformer_", "per_pixel_baseline"))}
    assert have == set(V1_CONFIGS)


@pytest.mark.parametrize("rel", V1_CONFIGS)
def test_v1_config_builds(rel):
    cfg = make_cfg(rel)
    model = build_on_meta(rel)
    head = model.sem_seg_head
    if rel.split("/")[-1].startswith("per_pixel_baseline"):
        assert type(model).__name__ == "SemanticSegmentor"
        plus = "plus" in rel
        want = "PerPixelBaselinePlusHead" if plus else "PerPixelBaselineHead"
        assert type(head).__name__ == want
        if plus:
            assert head.predictor.num_queries == cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
            assert head.predictor.class_embed is None
        return
    assert isinstance(head.predictor, TransformerPredictor)
    assert len(head.predictor.transformer.decoder.layers) == 6
    assert model.criterion.matcher.mask_cost == model.criterion.mask_loss == "focal"
    assert model.criterion.num_points == 0
    assert not model.instance_on and not model.panoptic_segment_within_mask
    assert model.panoptic_on == ("panoptic" in rel)
    encoder = isinstance(head.pixel_decoder, TransformerEncoderPixelDecoder)
    assert encoder == ("panoptic" in rel)
    assert head.transformer_in_feature == ("transformer_encoder" if encoder else "res5")
    # v1's input projection rule: a 1x1 conv only when the input width differs from 256
    assert isinstance(head.predictor.input_proj, torch.nn.Sequential) == encoder


def test_v1_coco_panoptic_r50_pads_nothing():
    """The original v1 COCO panoptic R50 ran unpadded (the parity fixture's 90x160 masks)."""
    assert build_on_meta("coco/panoptic/maskformer_r50.yaml").size_divisibility == 0
    assert build_on_meta("ade20k/semantic/maskformer_r50.yaml").size_divisibility == 32


def test_both_registry_names_build_the_v1_predictor():
    assert TRANSFORMER_DECODER_REGISTRY.get("TransformerPredictor") is TransformerPredictor
    assert issubclass(TRANSFORMER_DECODER_REGISTRY.get("StandardTransformerDecoder"),
                      TransformerPredictor)
    a = StandardTransformerDecoder(make_cfg("ade20k/semantic/maskformer_r50.yaml"), 2048, True)
    assert list(a.state_dict()) == [k[len("sem_seg_head.predictor."):] for k in
                                load_listing("v1_ade20k_semantic_r50")["state_dict"]
                                if k.startswith("sem_seg_head.predictor.")]


def test_mask2former_decoder_on_one_map_is_a_clear_error():
    """An original v1 YAML has no TRANSFORMER_DECODER_NAME: the Mask2Former default must not
    silently run on res5."""
    cfg = make_cfg("ade20k/semantic/maskformer_r50.yaml",
                   "MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME",
                   "MultiScaleMaskedTransformerDecoder", "MODEL.MASK_FORMER.DROPOUT", "0.0")
    with pytest.raises(ValueError, match="TransformerPredictor"):
        build_model(cfg)


# ---- the DETR layers are PyTorch's transformer layers (same names, same math) ----------------
@pytest.mark.parametrize("pre_norm", [False, True])
def test_detr_layers_equal_torch_transformer_layers(pre_norm):
    torch.manual_seed(0)
    d, heads, ff = 16, 4, 32
    ours_enc = DetrEncoderLayer(d, heads, ff, dropout=0.0, normalize_before=pre_norm).eval()
    ours_dec = DetrDecoderLayer(d, heads, ff, dropout=0.0, normalize_before=pre_norm).eval()
    ref_enc = torch.nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, norm_first=pre_norm)
    ref_dec = torch.nn.TransformerDecoderLayer(d, heads, ff, dropout=0.0, norm_first=pre_norm)
    for ours, ref in ((ours_enc, ref_enc), (ours_dec, ref_dec)):
        ref.eval()
        for p in ours.parameters():  # norms too, so that their placement matters
            torch.nn.init.normal_(p, std=0.3)
        ref.load_state_dict(ours.state_dict())  # strict: identical parameter names
    src, tgt = torch.randn(12, 2, d), torch.randn(5, 2, d)
    with torch.no_grad():
        torch.testing.assert_close(ours_enc(src), ref_enc(src), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours_dec(tgt, src), ref_dec(tgt, src), rtol=1e-5, atol=1e-5)
        # positions: DETR adds them to queries/keys, never to values
        pos = torch.randn(12, 2, d)
        assert not torch.allclose(ours_enc(src, pos=pos), ours_enc(src), atol=1e-3)


# ---- predictor and pixel decoders --------------------------------------------------------------
def _predictor(in_channels=32, mask_classification=True, **kw):
    torch.manual_seed(0)
    args = dict(in_channels=in_channels, mask_classification=mask_classification, num_classes=5,
                hidden_dim=16, num_queries=7, nheads=2, dropout=0.0, dim_feedforward=32,
                enc_layers=0, dec_layers=3, pre_norm=False, deep_supervision=True, mask_dim=8,
                enforce_input_project=False)
    args.update(kw)
    return TransformerPredictor(**args).eval()


def test_predictor_outputs_aux_and_input_projection():
    pred = _predictor()
    x, mask_features = torch.randn(2, 32, 3, 4), torch.randn(2, 8, 12, 16)
    with torch.no_grad():
        out = pred(x, mask_features)
        fast = pred(x, mask_features, return_aux=False)
    assert out["pred_logits"].shape == (2, 7, 6) and out["pred_masks"].shape == (2, 7, 12, 16)
    assert len(out["aux_outputs"]) == 2  # one per layer except the last
    assert "aux_outputs" not in fast
    torch.testing.assert_close(fast["pred_masks"], out["pred_masks"])
    torch.testing.assert_close(fast["pred_logits"], out["pred_logits"])
    # aux_outputs[0] is the first layer's prediction: a 1-layer predictor with the same weights
    one = _predictor(dec_layers=1)
    one.load_state_dict({k: v for k, v in pred.state_dict().items()
                         if not k.startswith(("transformer.decoder.layers.1.",
                                              "transformer.decoder.layers.2."))})
    with torch.no_grad():
        first = one(x, mask_features)
    torch.testing.assert_close(first["pred_masks"], out["aux_outputs"][0]["pred_masks"])
    # input projection: a 1x1 conv for 32 -> 16 channels, nothing for 16 -> 16 unless enforced
    assert isinstance(pred.input_proj, torch.nn.Conv2d)
    assert len(list(_predictor(in_channels=16).input_proj.parameters())) == 0
    assert isinstance(_predictor(in_channels=16, enforce_input_project=True).input_proj,
                      torch.nn.Conv2d)


def test_predictor_without_classification_and_with_encoder():
    pred = _predictor(mask_classification=False, enc_layers=2, pre_norm=True)
    keys = set(pred.state_dict())
    assert not any(k.startswith("class_embed") for k in keys)
    assert "transformer.encoder.layers.1.linear1.weight" in keys
    assert "transformer.encoder.norm.weight" in keys  # DETR: final encoder norm when pre-norm
    with torch.no_grad():
        out = pred(torch.randn(1, 32, 3, 4), torch.randn(1, 8, 12, 16))
    assert "pred_logits" not in out and all(set(a) == {"pred_masks"} for a in out["aux_outputs"])


def _shapes():
    return {f"res{i}": ShapeSpec(channels=8 * 2**i, stride=2**i) for i in (2, 3, 4, 5)}


def test_transformer_encoder_pixel_decoder():
    torch.manual_seed(0)
    kw = dict(conv_dim=32, mask_dim=16, norm="GN")
    base = BasePixelDecoder(_shapes(), **kw).eval()
    enc = TransformerEncoderPixelDecoder(
        _shapes(), transformer_dropout=0.0, transformer_nheads=4, transformer_dim_feedforward=64,
        transformer_enc_layers=2, transformer_pre_norm=False, **kw).eval()
    # the coarsest output conv reads the encoder output (conv_dim) and is re-registered last
    assert enc.layer_4.weight.shape == (32, 32, 3, 3) and base.layer_4.weight.shape[1] == 256
    assert list(enc.state_dict())[-3:] == ["layer_4.weight", "layer_4.norm.weight",
                                           "layer_4.norm.bias"]
    feats = {k: torch.randn(2, s.channels, 64 // s.stride, 96 // s.stride)
             for k, s in _shapes().items()}
    with torch.no_grad():
        mask_features, encoded, multi_scale = enc.forward_features(feats)
        assert base.forward_features(feats)[1] is None
    assert mask_features.shape == (2, 16, 16, 24)
    assert encoded.shape == (2, 32, 2, 3)
    assert [m.shape[-2:] for m in multi_scale] == [(2, 3), (4, 6), (8, 12)]
    # the encoder is applied to input_proj(res5) with a sine position encoding
    with torch.no_grad():
        src = enc.input_proj(feats["res5"]).flatten(2).permute(2, 0, 1)
        pos = enc.pe_layer(feats["res5"]).flatten(2).permute(2, 0, 1)
        want = enc.transformer.encoder(src, pos=pos).permute(1, 2, 0).reshape(2, 32, 2, 3)
    torch.testing.assert_close(encoded, want)


# ---- per-pixel baselines (SemanticSegmentor) -----------------------------------------------
@pytest.mark.parametrize("plus", [False, True])
def test_per_pixel_baselines_train_and_infer(plus):
    rel = f"ade20k/semantic/per_pixel_baseline{'_plus' if plus else ''}_r50.yaml"
    torch.manual_seed(0)
    model = build_model(make_cfg(rel, *TINY_V1_OPTS))
    g = torch.Generator().manual_seed(0)
    batch = [{"image": torch.randint(0, 256, (3, 64, 64), generator=g, dtype=torch.uint8),
              "sem_seg": torch.randint(0, 150, (64, 64), generator=g)} for _ in range(2)]
    batch[1]["sem_seg"][:10] = 255  # void
    model.train()
    losses = model(batch)
    want = {"loss_sem_seg"} | ({f"loss_sem_seg_{i}" for i in range(5)} if plus else set())
    assert set(losses) == want and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad), plus
    model.eval()
    with torch.no_grad():
        res = model([{"image": batch[0]["image"], "height": 32, "width": 48}])[0]
    assert res["sem_seg"].shape == (150, 32, 48)


# ---- focal loss and cost ------------------------------------------------------------------------
def test_focal_loss_matches_torchvision_and_pairwise_cost():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 50, generator=g) * 3
    targets = (torch.rand(4, 50, generator=g) > 0.5).float()
    want = tv_sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2, reduction="none")
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets, 2.0),
                               want.mean(1).sum() / 2.0)
    cost = batch_sigmoid_focal_cost(logits, targets[:3])
    pairwise = torch.stack([
        torch.stack([tv_sigmoid_focal_loss(logits[i], targets[j], reduction="mean")
                     for j in range(3)]) for i in range(4)])
    torch.testing.assert_close(cost, pairwise, rtol=1e-5, atol=1e-6)


def test_dense_matcher_compares_at_prediction_size():
    """MaskFormer v1 matching: targets resized (nearest) to the 1/4 predictions, focal cost."""
    gt = torch.zeros(2, 32, 32, dtype=torch.bool)
    gt[0, :16] = True
    gt[1, :, 16:] = True
    pred = torch.full((1, 3, 8, 8), -10.0)
    pred[0, 2, :4] = 10.0  # query 2 = top half (gt 0)
    pred[0, 0, :, 4:] = 10.0  # query 0 = right half (gt 1)
    matcher = HungarianMatcher(1.0, 20.0, 1.0, num_points=0, mask_cost="focal")
    outputs = {"pred_logits": torch.zeros(1, 3, 3), "pred_masks": pred}
    ((rows, cols),) = matcher(outputs, [{"labels": torch.tensor([0, 1]), "masks": gt}])
    assert dict(zip(rows.tolist(), cols.tolist())) == {0: 1, 2: 0}
    c = matcher.cost_matrix(outputs["pred_logits"][0], pred[0], torch.tensor([0, 1]), gt)
    small = F.interpolate(gt[:, None].float(), size=(8, 8), mode="nearest")[:, 0].flatten(1)
    flat = pred[0].flatten(1)
    want = -1 / 3 + 20 * batch_sigmoid_focal_cost(flat, small) + batch_dice_cost(flat, small)
    torch.testing.assert_close(c, want)
    with pytest.raises(ValueError, match="mask_cost"):
        HungarianMatcher(mask_cost="l1")


# ---- v1 panoptic rule ----------------------------------------------------------------------------
def _panoptic_reference_v1(mask_cls, mask_pred, num_classes, thr_obj, thr_overlap, thing_ids):
    """The v1 rule written as a plain loop: a segment is every pixel its query wins."""
    scores, labels = F.softmax(mask_cls, -1).max(-1)
    keep = labels.ne(num_classes) & (scores > thr_obj)
    probs = mask_pred.sigmoid()[keep]
    owner = (scores[keep][:, None, None] * probs).argmax(0)
    seg = torch.zeros(mask_pred.shape[-2:], dtype=torch.int32)
    info, stuff, next_id = [], {}, 0
    for k, c in enumerate(labels[keep].tolist()):
        m = owner == k
        area, orig = int(m.sum()), int((probs[k] >= 0.5).sum())
        if area == 0 or orig == 0 or area / orig < thr_overlap:
            continue
        if c not in thing_ids and c in stuff:
            seg[m] = stuff[c]
            continue
        next_id += 1
        if c not in thing_ids:
            stuff[c] = next_id
        seg[m] = next_id
        info.append((next_id, c in thing_ids, c))
    return seg, info


def test_v1_panoptic_rule_keeps_every_won_pixel():
    g = torch.Generator().manual_seed(1)
    for trial in range(5):
        mask_cls = torch.randn(12, 6, generator=g) * 3
        mask_pred = torch.randn(12, 20, 24, generator=g) * 2
        seg, info = panoptic_inference(mask_cls, mask_pred, num_classes=5,
                                       object_mask_threshold=0.2, overlap_threshold=0.3,
                                       thing_ids=[0, 1], segment_within_mask=False)
        want_seg, want_info = _panoptic_reference_v1(mask_cls, mask_pred, 5, 0.2, 0.3, {0, 1})
        assert torch.equal(seg, want_seg), trial
        assert [(d["id"], d["isthing"], d["category_id"]) for d in info] == want_info
        v2_seg, _ = panoptic_inference(mask_cls, mask_pred, num_classes=5,
                                       object_mask_threshold=0.2, overlap_threshold=0.3,
                                       thing_ids=[0, 1])
        # Mask2Former's rule only removes pixels (those outside the winner's own mask)
        assert ((v2_seg > 0) <= (seg > 0)).all()


def test_config_defaults_keep_mask2former_behaviour():
    cfg = get_cfg()
    from mask2former import add_maskformer2_config

    add_maskformer2_config(cfg)
    assert cfg.MODEL.MASK_FORMER.MASK_LOSS_TYPE == "bce"
    assert cfg.MODEL.MASK_FORMER.TEST.PANOPTIC_SEGMENT_WITHIN_MASK is True
    v2 = build_on_meta("coco/panoptic/r50.yaml")
    assert v2.criterion.mask_loss == "bce" and v2.panoptic_segment_within_mask


# ---- training ------------------------------------------------------------------------------------
def _synthetic_batch(n=2, size=48, seed=0):
    """Images and panoptic targets of the synthetic dataset (mask2former.data.synthetic)."""
    from detectron2.structures import BitMasks, Instances

    from mask2former.data.synthetic import SYNTHETIC_CATEGORIES, render_sample

    contiguous = {c["id"]: i for i, c in enumerate(SYNTHETIC_CATEGORIES)}
    rng = np.random.default_rng(seed)
    batch = []
    for _ in range(n):
        image, pan, segments = render_sample(rng, size, size)
        inst = Instances((size, size))
        inst.gt_classes = torch.tensor([contiguous[s["category_id"]] for s in segments])
        inst.gt_masks = BitMasks(torch.stack([torch.from_numpy(pan == s["id"]) for s in segments]))
        batch.append({"image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
                      "instances": inst})
    return batch


def test_tiny_v1_model_trains_with_the_dense_focal_loss():
    """A small MaskFormer v1 (COCO panoptic layout: transformer-encoder pixel decoder, v1
    predictor, dense focal + dice loss) takes a few AdamW steps on synthetic images: every
    parameter gets a finite gradient and the loss goes down."""
    torch.manual_seed(0)
    cfg = make_cfg("coco/panoptic/maskformer_r50.yaml", *TINY_V1_OPTS,
                   "MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS", "1",
                   "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES", "10",
                   "MODEL.SEM_SEG_HEAD.NUM_CLASSES", "7")
    model = build_model(cfg).train()
    assert model.criterion.mask_loss == "focal" and model.criterion.num_points == 0
    batch = _synthetic_batch()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    history = []
    for step in range(5):
        losses = model(batch)
        assert set(losses) == {f"{n}{s}" for n in ("loss_ce", "loss_mask", "loss_dice")
                               for s in ["", *(f"_{i}" for i in range(5))]}
        loss = sum(losses.values())
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        if step == 0:
            bad = [n for n, p in model.named_parameters()
                   if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())]
            assert not bad, bad[:10]
            assert {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad} == {
                "backbone", "sem_seg_head"}
        optimizer.step()
        history.append(loss.item())
    assert max(history[-2:]) < history[0], history
