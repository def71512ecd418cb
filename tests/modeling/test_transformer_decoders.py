"""The transformer decoders and their shared blocks on small random inputs."""

import torch

from mask2former.modeling.transformer_decoder import (
    MultiScaleMaskedTransformerDecoder,
    TransformerPredictor,
)
from mask2former.modeling.transformer_decoder.mask2former_transformer_decoder import (
    attention_mask_from_logits,
    mask_logits_from_embeddings,
    resized_mask_features,
)


def test_attention_mask_blocks_background_and_unblocks_empty_rows():
    logits = torch.full((1, 2, 4, 4), -5.0)
    logits[0, 0, :2, :2] = 5.0  # query 0: foreground top-left; query 1: no foreground at all
    mask = attention_mask_from_logits(logits, (4, 4), num_heads=3)
    assert mask.shape == (3, 2, 16) and mask.dtype == torch.bool
    fg = torch.zeros(4, 4, dtype=torch.bool)
    fg[:2, :2] = True
    for h in range(3):
        assert torch.equal(mask[h, 0], ~fg.flatten())
        assert not mask[h, 1].any()  # a fully blocked row attends everywhere instead


def _masked_decoder(in_channels=16, dec_layers=5, pre_norm=False):
    torch.manual_seed(0)
    return MultiScaleMaskedTransformerDecoder(
        in_channels=in_channels,
        num_classes=5,
        hidden_dim=16,
        num_queries=7,
        nheads=2,
        dim_feedforward=32,
        dec_layers=dec_layers,
        pre_norm=pre_norm,
        mask_dim=8,
        enforce_input_project=False,
    )


def test_masked_decoder_shapes_pre_norm():
    dec = _masked_decoder(in_channels=24, dec_layers=4, pre_norm=True)
    assert all(hasattr(proj, "weight") for proj in dec.input_proj)  # 24 != 16: 1x1 convs
    feats = [torch.randn(2, 24, 2, 3), torch.randn(2, 24, 4, 6), torch.randn(2, 24, 8, 12)]
    out = dec(feats, torch.randn(2, 8, 16, 24))
    assert out["pred_logits"].shape == (2, 7, 6)
    assert out["pred_masks"].shape == (2, 7, 16, 24)
    assert len(out["aux_outputs"]) == 4
    assert torch.isfinite(out["pred_masks"]).all()


def test_v1_predictor_with_encoder_and_padding_mask():
    torch.manual_seed(0)
    dec = TransformerPredictor(
        in_channels=32,
        num_classes=3,
        hidden_dim=16,
        num_queries=5,
        nheads=2,
        dropout=0.0,
        dim_feedforward=32,
        enc_layers=1,
        dec_layers=3,
        pre_norm=True,
        deep_supervision=True,
        mask_dim=16,
        enforce_input_project=False,
    )
    x = torch.randn(2, 32, 4, 4)
    mask_features = torch.randn(2, 16, 8, 8)
    pad = torch.zeros(2, 32, 32, dtype=torch.bool)
    pad[1, :, 16:] = True  # right half of image 1 is padding
    out = dec(x, mask_features, pad)
    assert out["pred_logits"].shape == (2, 5, 4)
    assert out["pred_masks"].shape == (2, 5, 8, 8)
    assert len(out["aux_outputs"]) == 2
    # image 0 has no padding: same result without a mask
    out0 = dec(x[:1], mask_features[:1])
    torch.testing.assert_close(out["pred_masks"][0], out0["pred_masks"][0], rtol=1e-4, atol=1e-5)


def test_inference_without_aux_outputs_gives_the_same_final_prediction():
    dec = _masked_decoder().eval()
    feats = [torch.randn(1, 16, 2, 3), torch.randn(1, 16, 4, 6), torch.randn(1, 16, 8, 12)]
    mask_features = torch.randn(1, 8, 16, 24)
    with torch.no_grad():
        full = dec(feats, mask_features)
        fast = dec(feats, mask_features, return_aux=False)
    assert "aux_outputs" not in fast and len(full["aux_outputs"]) == 5
    assert torch.equal(fast["pred_logits"], full["pred_logits"])
    assert torch.equal(fast["pred_masks"], full["pred_masks"])


def test_attention_masks_from_resized_features_match_resized_logits():
    """The decoder makes attention masks from mask features resized to the attended level;
    that equals resizing the full-resolution logits (bilinear resizing is linear)."""
    torch.manual_seed(3)
    embeddings, mask_features = torch.randn(2, 7, 8), torch.randn(2, 8, 32, 48)
    full = mask_logits_from_embeddings(embeddings, mask_features)
    for size in [(4, 6), (8, 12), (16, 24), (13, 7)]:
        resized = resized_mask_features(mask_features, [size])[0]
        small = mask_logits_from_embeddings(embeddings, resized)
        want = torch.nn.functional.interpolate(full, size=size, mode="bilinear", align_corners=False)
        torch.testing.assert_close(small, want, rtol=1e-5, atol=1e-5)
        got_mask = attention_mask_from_logits(small, size, num_heads=2)
        want_mask = attention_mask_from_logits(full, size, num_heads=2)
        # only logits within rounding of 0 may differ
        differ = got_mask != want_mask
        assert (want.flatten(2).repeat_interleave(2, 0)[differ].abs() < 1e-5).all()
