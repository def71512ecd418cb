"""COCO panoptic training with DETR's augmentation (INPUT.DATASET_MAPPER_NAME "detr_panoptic"),
the mapper of MaskFormer v1's COCO panoptic models."""

from detectron2.config import configurable
from detectron2.data import transforms as T

from .coco_panoptic_new_baseline_dataset_mapper import COCOPanopticNewBaselineDatasetMapper

__all__ = ["DETRPanopticDatasetMapper", "build_detr_augmentations"]

# DETR's intermediate resize before the random crop
DETR_CROP_PRE_RESIZE = (400, 500, 600)


def build_detr_augmentations(cfg):
    """DETR's training augmentation: horizontal flip; with INPUT.CROP.ENABLED, half of the time
    a resize (shortest edge 400/500/600) then a random crop (INPUT.CROP.TYPE / SIZE, e.g.
    "absolute_range" 384..600); then ResizeShortestEdge(MIN_SIZE_TRAIN, MAX_SIZE_TRAIN)."""
    augs = [T.RandomFlip()]
    if cfg.INPUT.CROP.ENABLED:
        crop = T.AugmentationList(
            [
                T.ResizeShortestEdge(DETR_CROP_PRE_RESIZE, sample_style="choice"),
                T.RandomCrop(cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE),
            ]
        )
        augs.append(T.RandomApply(crop, prob=0.5))
    augs.append(
        T.ResizeShortestEdge(
            cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN, cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING
        )
    )
    return augs


class DETRPanopticDatasetMapper(COCOPanopticNewBaselineDatasetMapper):
    """COCO panoptic dict → training input with DETR's augmentation (`build_detr_augmentations`);
    no padding (the model pads the batch). Targets as for ``coco_panoptic_lsj``: one instance per
    non-crowd segment (``gt_classes``, ``gt_masks`` bool [G, H, W], ``gt_boxes``). Training only.
    """

    @configurable
    def __init__(self, is_train=True, *, augmentations, image_format):
        super().__init__(is_train, augmentations=augmentations, image_format=image_format)

    @classmethod
    def from_config(cls, cfg, is_train=True):
        return {
            "is_train": is_train,
            "augmentations": build_detr_augmentations(cfg),
            "image_format": cfg.INPUT.FORMAT,
        }
