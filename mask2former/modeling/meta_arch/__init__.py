"""Meta-architectures (META_ARCH_REGISTRY) and the MaskFormer head (SEM_SEG_HEADS_REGISTRY)."""

from .mask_former_head import MaskFormerHead  # noqa: F401
from .maskformer_model import MaskFormer  # noqa: F401
from .video_maskformer_model import VideoMaskFormer  # noqa: F401
