"""Shared helpers for the backbone tests: Swin configs of the released model families."""

import pytest
from torch import nn

from helpers import make_cfg

# MODEL.SWIN values of the released configs (SPEC §2/§3); the rest are the defaults.
SWIN_VARIANTS = {
    "swin_t": dict(EMBED_DIM=96, DEPTHS=[2, 2, 6, 2], NUM_HEADS=[3, 6, 12, 24], WINDOW_SIZE=7),
    "swin_l": dict(
        EMBED_DIM=192,
        DEPTHS=[2, 2, 18, 2],
        NUM_HEADS=[6, 12, 24, 48],
        WINDOW_SIZE=12,
        PRETRAIN_IMG_SIZE=384,
    ),
    # a tiny network for shape / training tests
    "tiny": dict(EMBED_DIM=8, DEPTHS=[2, 1, 2, 2], NUM_HEADS=[1, 2, 2, 4], WINDOW_SIZE=5),
}

# Input normalisation of every released Swin config (RGB, ImageNet mean/std x255).
PIXEL_MEAN = [123.675, 116.28, 103.53]
PIXEL_STD = [58.395, 57.12, 57.375]


def make_swin_cfg(variant="swin_t", **swin_overrides):
    """A Detectron2 config whose MODEL.BACKBONE is D2SwinTransformer of the given family."""
    cfg = make_cfg()
    cfg.MODEL.BACKBONE.NAME = "D2SwinTransformer"
    cfg.MODEL.PIXEL_MEAN = PIXEL_MEAN
    cfg.MODEL.PIXEL_STD = PIXEL_STD
    cfg.INPUT.FORMAT = "RGB"
    cfg.MODEL.DEVICE = "cpu"
    for k, v in {**SWIN_VARIANTS[variant], **swin_overrides}.items():
        setattr(cfg.MODEL.SWIN, k, v)
    return cfg


class BackboneHolder(nn.Module):
    """Holds a backbone under the attribute name the full model uses, so that state_dict
    keys read "backbone.…" (as in the checkpoints and deterministic_init)."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, x):
        return self.backbone(x)


@pytest.fixture
def swin_cfg():
    """Factory ``swin_cfg(variant="swin_t", **MODEL_SWIN_overrides) -> CfgNode``."""
    return make_swin_cfg


@pytest.fixture
def holder():
    """The :class:`BackboneHolder` class (wraps a backbone as ``.backbone``)."""
    return BackboneHolder
