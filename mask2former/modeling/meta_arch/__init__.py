"""The ``MaskFormerHead`` semantic-segmentation head (registered in SEM_SEG_HEADS_REGISTRY)."""

from .mask_former_head import MaskFormerHead  # noqa: F401
