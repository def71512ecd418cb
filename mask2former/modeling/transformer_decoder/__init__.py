"""Transformer decoders of the MaskFormer head (their blocks live in `mask2former.layers`)."""

from .build import TRANSFORMER_DECODER_REGISTRY, build_transformer_decoder  # noqa: F401
from .mask2former_transformer_decoder import MultiScaleMaskedTransformerDecoder  # noqa: F401
from .maskformer_transformer_decoder import (  # noqa: F401
    StandardTransformerDecoder,
    TransformerPredictor,
)
from .video_mask2former_transformer_decoder import (  # noqa: F401
    VideoMultiScaleMaskedTransformerDecoder,
)
