"""COCO instance training with large-scale jitter (INPUT.DATASET_MAPPER_NAME "coco_instance_lsj")."""

import copy
import logging

import numpy as np
import torch

from detectron2.config import configurable
from detectron2.data import transforms as T
from detectron2.structures import BitMasks

from .common import augmented_instance_annotations, build_lsj_augmentations, make_instances

__all__ = ["COCOInstanceNewBaselineDatasetMapper"]


class COCOInstanceNewBaselineDatasetMapper:
    """COCO ``annotations`` → training input with LSJ: random flip, ResizeScale of
    INPUT.IMAGE_SIZE by [MIN_SCALE, MAX_SCALE], FixedSizeCrop to IMAGE_SIZE² (padding 128).

    Crowd annotations are dropped and instances whose mask is empty after cropping removed.
    Returns ``image`` (uint8 [3,S,S]) and ``instances`` (``gt_classes`` int64 [G], ``gt_masks``
    bool [G,S,S], ``gt_boxes`` from the masks). Training only.
    """

    @configurable
    def __init__(self, is_train=True, *, augmentations, image_format):
        if not is_train:
            raise ValueError(
                f"{type(self).__name__} is a training mapper; use DatasetMapper for tests"
            )
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        logging.getLogger(__name__).info(
            f"[{type(self).__name__}] augmentations in training: {augmentations}"
        )

    @classmethod
    def from_config(cls, cfg, is_train=True):
        return {
            "is_train": is_train,
            "augmentations": build_lsj_augmentations(cfg),
            "image_format": cfg.INPUT.FORMAT,
        }

    def __call__(self, dataset_dict):
        dataset_dict = copy.deepcopy(dataset_dict)
        image, annos, masks = augmented_instance_annotations(
            dataset_dict, self.augmentations, self.image_format, type(self).__name__
        )
        shape = image.shape[:2]
        keep = [i for i, m in enumerate(masks) if m.any()]
        instances = make_instances(
            shape, [annos[i]["category_id"] for i in keep], [masks[i] for i in keep]
        )
        instances.gt_boxes = BitMasks(instances.gt_masks).get_bounding_boxes()
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        dataset_dict["instances"] = instances
        return dataset_dict
