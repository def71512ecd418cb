"""Registry of the transformer decoders ("predictors") of the MaskFormer head."""

from detectron2.utils.registry import Registry

__all__ = ["TRANSFORMER_DECODER_REGISTRY", "build_transformer_decoder"]

TRANSFORMER_DECODER_REGISTRY = Registry("TRANSFORMER_MODULE")
TRANSFORMER_DECODER_REGISTRY.__doc__ = """
Registry for the transformer decoders of the MaskFormer head, which turn pixel-decoder
features into per-query class logits and mask logits. Selected by
``cfg.MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME``; called as ``cls(cfg, in_channels,
mask_classification)`` (a ``@configurable`` constructor).
"""


def build_transformer_decoder(cfg, in_channels, mask_classification=True):
    """Build the transformer decoder named by ``cfg.MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME``."""
    name = cfg.MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME
    return TRANSFORMER_DECODER_REGISTRY.get(name)(cfg, in_channels, mask_classification)
