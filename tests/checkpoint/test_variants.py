"""Model-variant detection from state_dict keys, and the checkpointer refusing a checkpoint of
the other variant (MaskFormer v1 vs Mask2Former) with a message naming it."""

import os

import pytest
import torch

from helpers import build_on_meta, load_listing
from mask2former.checkpoint import Mask2FormerCheckpointer
from mask2former.checkpoint.variants import (
    MASK2FORMER,
    MASKFORMER_V1,
    MASKFORMER_V1_OLD_NAMES,
    MASKFORMER_V1_PER_PIXEL,
    MASKFORMER_V1_PER_PIXEL_PLUS,
    CheckpointVariantError,
    check_same_variant,
    detect_variant,
)


def _keys(name):
    return list(load_listing(name)["state_dict"])


@pytest.mark.parametrize(
    "listing,variant",
    [
        ("coco_panoptic_r50", MASK2FORMER),
        ("coco_panoptic_swin_l", MASK2FORMER),
        ("ade20k_semantic_r50", MASK2FORMER),
        ("v1_ade20k_semantic_r50", MASKFORMER_V1),
        ("v1_coco_panoptic_r50", MASKFORMER_V1),
    ],
)
def test_original_listings_are_recognised(listing, variant):
    assert detect_variant(_keys(listing)) == variant
    assert detect_variant("module." + k for k in _keys(listing)) == variant  # DDP checkpoints


@pytest.mark.parametrize(
    "rel,variant",
    [
        ("ade20k/semantic/per_pixel_baseline_r50.yaml", MASKFORMER_V1_PER_PIXEL),
        ("ade20k/semantic/per_pixel_baseline_plus_r50.yaml", MASKFORMER_V1_PER_PIXEL_PLUS),
        ("coco/panoptic/maskformer_swin_t.yaml", MASKFORMER_V1),
        ("cityscapes/panoptic/r50.yaml", MASK2FORMER),
    ],
)
def test_built_models_are_recognised(rel, variant):
    assert detect_variant(build_on_meta(rel).state_dict()) == variant


def test_unknown_layouts_are_never_refused():
    backbone_only = ["backbone.res2.0.conv1.weight", "stem.conv1.weight"]
    assert detect_variant(backbone_only) is None
    check_same_variant(_keys("coco_panoptic_r50"), backbone_only)  # e.g. ImageNet weights
    check_same_variant(backbone_only, _keys("v1_coco_panoptic_r50"))
    old = ["sem_seg_head.predictor.transformer_ffn_layers.0.linear1.weight",
           "sem_seg_head.predictor.query_embed.weight"]
    assert detect_variant(old) == MASKFORMER_V1_OLD_NAMES


@pytest.mark.parametrize(
    "model,checkpoint,named",
    [
        ("coco_panoptic_r50", "v1_coco_panoptic_r50", "MaskFormer v1 model"),
        ("v1_ade20k_semantic_r50", "ade20k_semantic_r50", "Mask2Former model"),
    ],
)
def test_mismatch_names_both_variants(model, checkpoint, named):
    with pytest.raises(CheckpointVariantError, match=named) as e:
        check_same_variant(_keys(model), _keys(checkpoint))
    msg = str(e.value)
    assert "the checkpoint holds a" in msg and "but the config builds a" in msg
    assert "maskformer_<backbone>.yaml" in msg or "<backbone>.yaml" in msg
    check_same_variant(_keys(checkpoint), _keys(checkpoint))  # same variant: fine


class _Tiny(torch.nn.Module):
    """A model whose state_dict keys are those of a Mask2Former predictor (a few of them)."""

    def __init__(self):
        super().__init__()
        self.sem_seg_head = torch.nn.Module()
        self.sem_seg_head.predictor = torch.nn.Module()
        self.sem_seg_head.predictor.query_feat = torch.nn.Embedding(2, 4)
        self.sem_seg_head.predictor.class_embed = torch.nn.Linear(4, 3)


def test_checkpointer_refuses_a_v1_checkpoint_in_a_mask2former_model(tmp_path):
    v1 = {
        "sem_seg_head.predictor.transformer.decoder.layers.0.linear1.weight": torch.zeros(8, 4),
        "sem_seg_head.predictor.class_embed.weight": torch.zeros(3, 4),
        "sem_seg_head.predictor.class_embed.bias": torch.zeros(3),
    }
    path = os.path.join(tmp_path, "v1.pth")
    torch.save({"model": v1}, path)
    model = _Tiny()
    with pytest.raises(CheckpointVariantError, match="holds a MaskFormer v1 model"):
        Mask2FormerCheckpointer(model).load(path)
    # a checkpoint of the same variant loads
    same = os.path.join(tmp_path, "m2f.pth")
    torch.save({"model": {k: torch.ones_like(v) for k, v in _Tiny().state_dict().items()}}, same)
    Mask2FormerCheckpointer(model).load(same)
    assert torch.equal(model.sem_seg_head.predictor.query_feat.weight, torch.ones(2, 4))
