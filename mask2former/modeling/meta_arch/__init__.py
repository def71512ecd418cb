"""Meta-architectures (META_ARCH_REGISTRY), the MaskFormer head and MaskFormer v1's per-pixel
baseline heads (SEM_SEG_HEADS_REGISTRY; the baselines run in Detectron2's SemanticSegmentor)."""

from .mask_former_head import MaskFormerHead  # noqa: F401
from .maskformer_model import MaskFormer  # noqa: F401
from .per_pixel_baseline import PerPixelBaselineHead, PerPixelBaselinePlusHead  # noqa: F401
from .video_maskformer_model import VideoMaskFormer  # noqa: F401
