"""Pixel decoders (registered in Detectron2's SEM_SEG_HEADS_REGISTRY)."""

from .fpn import (  # noqa: F401
    BasePixelDecoder,
    TransformerEncoderPixelDecoder,
    build_pixel_decoder,
)
from .msdeformattn import MSDeformAttnPixelDecoder  # noqa: F401
