"""Transformer decoders of the MaskFormer head and their shared building blocks."""

from .blocks import MLP, CrossAttentionLayer, FFNLayer, SelfAttentionLayer  # noqa: F401
from .build import TRANSFORMER_DECODER_REGISTRY, build_transformer_decoder  # noqa: F401
from .mask2former_transformer_decoder import MultiScaleMaskedTransformerDecoder  # noqa: F401
from .maskformer_transformer_decoder import StandardTransformerDecoder  # noqa: F401
from .position_encoding import PositionEmbeddingSine  # noqa: F401
