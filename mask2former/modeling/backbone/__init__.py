"""Backbones; importing registers ``D2SwinTransformer`` in Detectron2's BACKBONE_REGISTRY.
Detectron2's own ResNets are used for the R50/R101 configs."""

from .swin import D2SwinTransformer, SwinTransformer  # noqa: F401
