"""Every model config of configs/ builds (on the meta device: layout only, no weights)."""

import os

import pytest

from helpers import all_config_files, build_on_meta

# parameter counts (millions, 2 decimals) of representative builds: SPEC §8 gives
# R50 44.0 M, Swin-T 47.4 M, Swin-L 215.5 M for COCO panoptic.
EXPECTED_MPARAMS = {
    "coco/panoptic/r50.yaml": 43.98,
    "coco/panoptic/swin_t.yaml": 47.44,
    "coco/panoptic/swin_l.yaml": 215.54,
}


def test_config_families_complete():
    files = set(all_config_files())
    for task in ("panoptic", "instance"):
        for b in ("r50", "r101", "swin_t", "swin_s", "swin_b", "swin_b_in21k", "swin_l"):
            assert f"coco/{task}/{b}.yaml" in files
    for b in ("r50", "r101", "swin_t", "swin_s", "swin_b", "swin_b_in21k", "swin_l"):
        assert f"ade20k/semantic/{b}.yaml" in files
    for task in ("panoptic", "instance"):
        for b in ("r50", "swin_l"):
            assert f"ade20k/{task}/{b}.yaml" in files
    for task in ("semantic", "instance", "panoptic"):
        for b in ("r50", "r101", "swin_t", "swin_s", "swin_b_in21k", "swin_l"):
            assert f"cityscapes/{task}/{b}.yaml" in files
    for task in ("semantic", "panoptic"):
        for b in ("r50", "swin_l"):
            assert f"mapillary_vistas/{task}/{b}.yaml" in files
    # MaskFormer v1 (the whole family: tests/modeling/test_maskformer_v1.py)
    assert "coco/panoptic/maskformer_r50.yaml" in files
    assert "ade20k/semantic/maskformer_r50.yaml" in files


# MaskFormer v1's COCO panoptic ResNet models pad the batch only as their backbone needs (none)
UNPADDED = {"coco/panoptic/maskformer_r50.yaml", "coco/panoptic/maskformer_r101.yaml"}


@pytest.mark.parametrize("rel", all_config_files())
def test_config_builds(rel):
    model = build_on_meta(rel)
    if os.path.basename(rel).startswith("per_pixel_baseline"):  # Detectron2's SemanticSegmentor
        assert type(model).__name__ == "SemanticSegmentor"
        for attr in ("backbone", "sem_seg_head", "pixel_mean", "pixel_std"):
            assert hasattr(model, attr)
        return
    for attr in ("backbone", "sem_seg_head", "criterion", "pixel_mean", "pixel_std"):
        assert hasattr(model, attr)
    assert model.size_divisibility == (0 if rel in UNPADDED else 32)
    mparams = sum(p.numel() for p in model.parameters()) / 1e6
    if rel in EXPECTED_MPARAMS:
        assert round(mparams, 2) == EXPECTED_MPARAMS[rel]


def test_registered_in_detectron2_registries():
    import mask2former  # noqa: F401
    from detectron2.modeling import BACKBONE_REGISTRY, META_ARCH_REGISTRY, SEM_SEG_HEADS_REGISTRY

    from mask2former.modeling.transformer_decoder import TRANSFORMER_DECODER_REGISTRY

    assert "MaskFormer" in META_ARCH_REGISTRY
    for name in ("MaskFormerHead", "MSDeformAttnPixelDecoder", "BasePixelDecoder",
                 "TransformerEncoderPixelDecoder", "PerPixelBaselineHead",
                 "PerPixelBaselinePlusHead"):
        assert name in SEM_SEG_HEADS_REGISTRY
    for name in ("MultiScaleMaskedTransformerDecoder", "TransformerPredictor",
                 "StandardTransformerDecoder"):
        assert name in TRANSFORMER_DECODER_REGISTRY
    assert "D2SwinTransformer" in BACKBONE_REGISTRY
