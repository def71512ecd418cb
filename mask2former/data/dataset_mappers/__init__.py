"""Training dataset mappers, selected by cfg.INPUT.DATASET_MAPPER_NAME (SPEC §7).

``build_dataset_mapper(cfg)`` returns the mapper for the configured name; new mappers can be
added with ``register_dataset_mapper(name)``.
"""

from typing import Callable, Dict

from .coco_instance_new_baseline_dataset_mapper import COCOInstanceNewBaselineDatasetMapper
from .coco_panoptic_new_baseline_dataset_mapper import COCOPanopticNewBaselineDatasetMapper
from .color_augmentation import ColorAugSSD, ColorAugSSDTransform
from .detr_panoptic_dataset_mapper import DETRPanopticDatasetMapper
from .mask_former_instance_dataset_mapper import MaskFormerInstanceDatasetMapper
from .mask_former_panoptic_dataset_mapper import MaskFormerPanopticDatasetMapper
from .mask_former_semantic_dataset_mapper import MaskFormerSemanticDatasetMapper

__all__ = [
    "COCOInstanceNewBaselineDatasetMapper",
    "COCOPanopticNewBaselineDatasetMapper",
    "ColorAugSSD",
    "ColorAugSSDTransform",
    "DETRPanopticDatasetMapper",
    "MaskFormerInstanceDatasetMapper",
    "MaskFormerPanopticDatasetMapper",
    "MaskFormerSemanticDatasetMapper",
    "DATASET_MAPPERS",
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
}


def register_dataset_mapper(name: str):
    """Decorator adding a mapper class (``cls(cfg, is_train)``) under ``name``."""

    def wrap(cls):
        if name in DATASET_MAPPERS and DATASET_MAPPERS[name] is not cls:
            raise KeyError(f"dataset mapper {name!r} is already registered")
        DATASET_MAPPERS[name] = cls
        return cls

    return wrap


def build_dataset_mapper(cfg, is_train: bool = True):
    """The mapper named by cfg.INPUT.DATASET_MAPPER_NAME, or None for Detectron2's default."""
    name = cfg.INPUT.DATASET_MAPPER_NAME
    if name in (None, "", "default"):
        return None
    if name not in DATASET_MAPPERS:
        raise KeyError(
            f"unknown INPUT.DATASET_MAPPER_NAME {name!r}; choose one of {sorted(DATASET_MAPPERS)}"
        )
    return DATASET_MAPPERS[name](cfg, is_train)
