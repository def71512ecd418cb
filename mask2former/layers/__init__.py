"""Building blocks shared by the pixel decoders and transformer decoders.

- `ms_deform_attn`: multi-scale deformable attention, a compiled op (C++ CPU / CUDA kernels in
  ``csrc/``) with a pure-PyTorch reference;
- `transformer`: residual self-/cross-attention, FFN and MLP blocks (the released parameter names);
- `position_encoding`: the sine position encodings.
"""
from .ms_deform_attn import MSDeformAttn, available_backends, ms_deform_attn  # noqa: F401
from .position_encoding import PositionEmbeddingSine  # noqa: F401
from .transformer import MLP, CrossAttentionLayer, FFNLayer, SelfAttentionLayer  # noqa: F401
