"""Model parts; importing them registers them into Detectron2's registries.

BACKBONE_REGISTRY: D2SwinTransformer. SEM_SEG_HEADS_REGISTRY: MaskFormerHead, MaskFormer v1's
PerPixelBaselineHead / PerPixelBaselinePlusHead and the pixel decoders BasePixelDecoder,
TransformerEncoderPixelDecoder (v1), MSDeformAttnPixelDecoder. TRANSFORMER_DECODER_REGISTRY:
MultiScaleMaskedTransformerDecoder, TransformerPredictor (v1; also "StandardTransformerDecoder"),
VideoMultiScaleMaskedTransformerDecoder. META_ARCH_REGISTRY: MaskFormer, VideoMaskFormer.
"""

from .backbone.swin import D2SwinTransformer  # noqa: F401
from .meta_arch import (  # noqa: F401
    MaskFormer,
    MaskFormerHead,
    PerPixelBaselineHead,
    PerPixelBaselinePlusHead,
    VideoMaskFormer,
)
from .pixel_decoder.fpn import BasePixelDecoder, TransformerEncoderPixelDecoder  # noqa: F401
from .pixel_decoder.msdeformattn import MSDeformAttnPixelDecoder  # noqa: F401
from .transformer_decoder import (  # noqa: F401
    MultiScaleMaskedTransformerDecoder,
    StandardTransformerDecoder,
    TransformerPredictor,
    VideoMultiScaleMaskedTransformerDecoder,
)
