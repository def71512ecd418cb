"""Layers with compiled kernels: multi-scale deformable attention."""
from .ms_deform_attn import MSDeformAttn, available_backends, ms_deform_attn  # noqa: F401
