"""Mask2Former as a Detectron2 project.

Importing this package registers the meta-architecture, heads, pixel decoders, transformer
decoders and the Swin backbone into Detectron2's registries, the dataset mappers, and the
datasets of SPEC §7 (registration is idempotent).
"""
from . import data  # noqa: F401  (dataset registrations and mappers)
from . import modeling  # noqa: F401  (registry entries)
from .config import add_maskformer2_config, add_maskformer2_video_config  # noqa: F401

__version__ = "0.1.0"

from . import model_zoo  # noqa: E402,F401  (mask2former:// weights and zoo downloads)
