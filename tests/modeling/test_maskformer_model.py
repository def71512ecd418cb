"""The MaskFormer meta-architecture: training losses, inference outputs.

(Released checkpoints: tests/checkpoint/test_released_checkpoint.py.)"""

import math

import pytest
import torch

from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Instances

from mask2former.layers.position_encoding import PositionEmbeddingSine
from helpers import build_on_meta, cached_model, make_cfg

COCO_R50 = "coco/panoptic/r50.yaml"


def _image(h, w, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)


def _train_inputs():
    a = Instances((64, 64))
    a.gt_classes = torch.tensor([3, 100], dtype=torch.int64)
    m = torch.zeros(2, 64, 64, dtype=torch.bool)
    m[0, 10:30, 20:50] = True
    m[1, 40:, :] = True
    a.gt_masks = BitMasks(m)
    b = Instances((40, 64))  # padded to 64x64 by the meta-architecture
    b.gt_classes = torch.tensor([7], dtype=torch.int64)
    mb = torch.zeros(1, 40, 64, dtype=torch.uint8)
    mb[0, 5:30, 5:40] = 1
    b.gt_masks = mb  # a plain tensor works too
    return [
        {"image": _image(64, 64, 0), "instances": a},
        {"image": _image(40, 64, 1), "instances": b},
    ]


@pytest.mark.parametrize("rel,aux", [(COCO_R50, 9), ("coco/panoptic/maskformer_r50.yaml", 5)])
def test_training_losses(rel, aux):
    torch.manual_seed(0)
    # frozen backbone: the test is about the head and the losses, and backward stays cheap
    opts = ("MODEL.MASK_FORMER.TRAIN_NUM_POINTS", "256", "MODEL.BACKBONE.FREEZE_AT", "5")
    model = build_model(make_cfg(rel, *opts))
    model.train()
    with torch.enable_grad():
        losses = model(_train_inputs())
    names = {"loss_ce", "loss_mask", "loss_dice"}
    expected = names | {f"{n}_{i}" for n in names for i in range(aux)}
    assert set(losses) == expected
    assert all(torch.isfinite(v) for v in losses.values())
    mf = model.criterion.weight_dict
    assert mf["loss_ce"] == (2.0 if rel == COCO_R50 else 1.0)
    with torch.enable_grad():
        sum(losses.values()).backward()
    assert model.sem_seg_head.predictor.class_embed.weight.grad is not None
    assert model.sem_seg_head.pixel_decoder.mask_features.weight.grad is not None


def test_head_outputs_and_padding(coco_r50_model):
    model = coco_r50_model
    with torch.no_grad():
        images = model.preprocess_image([{"image": _image(50, 70, 2)}])
        assert tuple(images.tensor.shape[-2:]) == (64, 96)  # padded to 32
        out = model.sem_seg_head(model.backbone(images.tensor))
    assert out["pred_logits"].shape == (1, 100, 134)
    assert out["pred_masks"].shape == (1, 100, 16, 24)
    assert len(out["aux_outputs"]) == 9  # DEC_LAYERS 10 -> 9 layers + the query prediction
    assert all(a["pred_masks"].shape == (1, 100, 16, 24) for a in out["aux_outputs"])


def test_batched_equals_single_images(coco_r50_model):
    """Per-image attention masks are laid out batch-major for every head."""
    model = coco_r50_model
    images = [_image(64, 64, 10), _image(64, 64, 11)]
    with torch.no_grad():
        x = model.preprocess_image([{"image": im} for im in images]).tensor
        both = model.sem_seg_head(model.backbone(x))
        for i in range(2):
            one = model.sem_seg_head(model.backbone(x[i : i + 1]))
            torch.testing.assert_close(
                both["pred_masks"][i], one["pred_masks"][0], rtol=1e-4, atol=1e-4
            )
            torch.testing.assert_close(
                both["pred_logits"][i], one["pred_logits"][0], rtol=1e-4, atol=1e-4
            )


def test_inference_outputs_at_requested_size(coco_r50_model):
    with torch.no_grad():
        res = coco_r50_model([{"image": _image(50, 70, 3), "height": 100, "width": 140}])[0]
    assert set(res) == {"sem_seg", "panoptic_seg", "instances"}
    assert res["sem_seg"].shape == (133, 100, 140)
    seg, info = res["panoptic_seg"]
    assert seg.shape == (100, 140) and seg.dtype == torch.int32
    assert sorted(int(s) for s in seg.unique() if s > 0) == [d["id"] for d in info]
    inst = res["instances"]
    assert inst.image_size == (100, 140)
    assert inst.pred_masks.shape[1:] == (100, 140)
    assert len(inst) == 100 or all(c < 80 for c in inst.pred_classes.tolist())
    boxes = inst.pred_boxes.tensor
    assert (boxes[:, 2] <= 140).all() and (boxes[:, 3] <= 100).all()


def test_semantic_only_model_postprocesses_after_inference():
    model = cached_model("ade20k/semantic/r50.yaml")
    assert not model.sem_seg_postprocess_before_inference
    with torch.no_grad():
        res = model([{"image": _image(40, 60, 4), "height": 80, "width": 90}])[0]
    assert set(res) == {"sem_seg"}
    assert res["sem_seg"].shape == (150, 80, 90)


def test_maskformer_v1_inference():
    model = cached_model("coco/panoptic/maskformer_r50.yaml")
    with torch.no_grad():
        res = model([{"image": _image(64, 64, 5)}])[0]
    assert res["sem_seg"].shape == (133, 64, 64)
    assert res["panoptic_seg"][0].shape == (64, 64)


def test_position_encoding_formula():
    pe = PositionEmbeddingSine(4, normalize=True)
    out = pe(torch.zeros(1, 1, 3, 5))
    assert out.shape == (1, 8, 3, 5)
    y, x = 2, 3  # pixel (row 2, col 3)
    ye = (y + 1) / (3 + 1e-6) * 2 * math.pi
    xe = (x + 1) / (5 + 1e-6) * 2 * math.pi
    freqs = [10000 ** (2 * (i // 2) / 4) for i in range(4)]
    want = []
    for e in (ye, xe):
        want += [math.sin(e / freqs[i]) if i % 2 == 0 else math.cos(e / freqs[i]) for i in range(4)]
    torch.testing.assert_close(out[0, :, y, x], torch.tensor(want), rtol=1e-5, atol=1e-6)


def test_encoder_points_and_heads_keys_are_effective():
    model = build_on_meta(
        COCO_R50,
        "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS",
        "2",
        "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS",
        "4",
    )
    attn = model.sem_seg_head.pixel_decoder.transformer.encoder.layers[0].self_attn
    assert (attn.n_points, attn.n_heads) == (2, 4)
    assert attn.sampling_offsets.weight.shape == (4 * 3 * 2 * 2, 256)
    layer = model.sem_seg_head.pixel_decoder.transformer.encoder.layers[0]
    assert layer.linear1.out_features == 1024  # fixed encoder FFN width


def test_masked_decoder_rejects_dropout():
    with pytest.raises(ValueError, match="DROPOUT"):
        build_on_meta(COCO_R50, "MODEL.MASK_FORMER.DROPOUT", "0.1")
