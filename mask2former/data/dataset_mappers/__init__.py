"""Dataset mappers: training mappers selected by cfg.INPUT.DATASET_MAPPER_NAME (SPEC §7), and
the robust test-time mapper.

``build_dataset_mapper(cfg)`` returns the mapper for the configured name; new mappers can be
added with ``register_dataset_mapper(name)`` (``video=True`` for clip mappers). A video
meta-architecture (``VIDEO_META_ARCHITECTURES``, e.g. "VideoMaskFormer") always gets a clip
mapper: the configured one if it is a clip mapper, else "ytvis".
"""

import logging
from typing import Callable, Dict, Set

from .coco_instance_new_baseline_dataset_mapper import COCOInstanceNewBaselineDatasetMapper
from .coco_panoptic_new_baseline_dataset_mapper import COCOPanopticNewBaselineDatasetMapper
from .color_augmentation import ColorAugSSD, ColorAugSSDTransform
from .detr_panoptic_dataset_mapper import DETRPanopticDatasetMapper
from .mask_former_instance_dataset_mapper import MaskFormerInstanceDatasetMapper
from .mask_former_panoptic_dataset_mapper import MaskFormerPanopticDatasetMapper
from .mask_former_semantic_dataset_mapper import MaskFormerSemanticDatasetMapper
from .test_dataset_mapper import UNREADABLE_KEY, RobustTestMapper
from .ytvis_dataset_mapper import YTVISDatasetMapper

__all__ = [
    "COCOInstanceNewBaselineDatasetMapper",
    "COCOPanopticNewBaselineDatasetMapper",
    "ColorAugSSD",
    "ColorAugSSDTransform",
    "DETRPanopticDatasetMapper",
    "MaskFormerInstanceDatasetMapper",
    "MaskFormerPanopticDatasetMapper",
    "MaskFormerSemanticDatasetMapper",
    "RobustTestMapper",
    "UNREADABLE_KEY",
    "YTVISDatasetMapper",
    "DATASET_MAPPERS",
    "VIDEO_DATASET_MAPPERS",
    "VIDEO_META_ARCHITECTURES",
    "register_dataset_mapper",
    "build_dataset_mapper",
]

# INPUT.DATASET_MAPPER_NAME -> mapper class (constructed as cls(cfg, is_train))
DATASET_MAPPERS: Dict[str, Callable] = {
    "mask_former_semantic": MaskFormerSemanticDatasetMapper,
    "mask_former_panoptic": MaskFormerPanopticDatasetMapper,
    "mask_former_instance": MaskFormerInstanceDatasetMapper,
    "coco_instance_lsj": COCOInstanceNewBaselineDatasetMapper,
    "coco_panoptic_lsj": COCOPanopticNewBaselineDatasetMapper,
    "detr_panoptic": DETRPanopticDatasetMapper,  # MaskFormer v1, COCO panoptic
    "ytvis": YTVISDatasetMapper,
}
# names of DATASET_MAPPERS that map a video dict to a clip
VIDEO_DATASET_MAPPERS: Set[str] = {"ytvis"}
# MODEL.META_ARCHITECTURE values that take clips (they always get a clip mapper)
VIDEO_META_ARCHITECTURES: Set[str] = {"VideoMaskFormer"}
DEFAULT_VIDEO_DATASET_MAPPER = "ytvis"

logger = logging.getLogger(__name__)


def register_dataset_mapper(name: str, *, video: bool = False):
    """Decorator adding a mapper class (``cls(cfg, is_train)``) under ``name``; ``video`` marks
    a clip mapper (selectable with a video meta-architecture)."""

    def wrap(cls):
        if name in DATASET_MAPPERS and DATASET_MAPPERS[name] is not cls:
            raise KeyError(f"dataset mapper {name!r} is already registered")
        DATASET_MAPPERS[name] = cls
        if video:
            VIDEO_DATASET_MAPPERS.add(name)
        return cls

    return wrap


def build_dataset_mapper(cfg, is_train: bool = True):
    """The mapper named by cfg.INPUT.DATASET_MAPPER_NAME, or None for Detectron2's default.

    With a video meta-architecture the mapper is a clip mapper: INPUT.DATASET_MAPPER_NAME if it
    names one, "ytvis" if it is left at its default (as the original's video configs do), and an
    error naming the key if it names an image mapper (image mappers cannot read video dicts).
    """
    name = cfg.INPUT.DATASET_MAPPER_NAME
    if cfg.MODEL.META_ARCHITECTURE in VIDEO_META_ARCHITECTURES and name not in VIDEO_DATASET_MAPPERS:
        if name != "mask_former_semantic":  # anything but the default (which video YAMLs keep)
            raise ValueError(
                f"MODEL.META_ARCHITECTURE {cfg.MODEL.META_ARCHITECTURE!r} takes clips, but "
                f"INPUT.DATASET_MAPPER_NAME {name!r} maps single images: set "
                f"INPUT.DATASET_MAPPER_NAME to a clip mapper ({sorted(VIDEO_DATASET_MAPPERS)})"
            )
        logger.info(
            f"MODEL.META_ARCHITECTURE {cfg.MODEL.META_ARCHITECTURE!r} takes clips: using the clip "
            f"mapper {DEFAULT_VIDEO_DATASET_MAPPER!r}"
        )
        name = DEFAULT_VIDEO_DATASET_MAPPER
    if name in (None, "", "default"):
        return None
    if name not in DATASET_MAPPERS:
        raise KeyError(
            f"unknown INPUT.DATASET_MAPPER_NAME {name!r}; choose one of {sorted(DATASET_MAPPERS)}"
        )
    return DATASET_MAPPERS[name](cfg, is_train)
