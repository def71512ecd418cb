"""Pixel decoders (registered in Detectron2's SEM_SEG_HEADS_REGISTRY)."""

from .fpn import BasePixelDecoder, build_pixel_decoder  # noqa: F401
from .msdeformattn import MSDeformAttnPixelDecoder  # noqa: F401
