"""Model parts; importing them registers them into Detectron2's registries.

BACKBONE_REGISTRY: D2SwinTransformer. SEM_SEG_HEADS_REGISTRY: MaskFormerHead and the pixel
decoders BasePixelDecoder, MSDeformAttnPixelDecoder. TRANSFORMER_DECODER_REGISTRY:
MultiScaleMaskedTransformerDecoder, StandardTransformerDecoder,
VideoMultiScaleMaskedTransformerDecoder. META_ARCH_REGISTRY: MaskFormer, VideoMaskFormer.
"""

from .backbone.swin import D2SwinTransformer  # noqa: F401
from .meta_arch import MaskFormer, MaskFormerHead, VideoMaskFormer  # noqa: F401
from .pixel_decoder.fpn import BasePixelDecoder  # noqa: F401
from .pixel_decoder.msdeformattn import MSDeformAttnPixelDecoder  # noqa: F401
from .transformer_decoder import (  # noqa: F401
    MultiScaleMaskedTransformerDecoder,
    StandardTransformerDecoder,
    VideoMultiScaleMaskedTransformerDecoder,
)
