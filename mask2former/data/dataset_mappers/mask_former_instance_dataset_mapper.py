"""Training mapper for instance segmentation (INPUT.DATASET_MAPPER_NAME "mask_former_instance")."""

import copy
import logging

import numpy as np
import torch

from detectron2.config import configurable
from detectron2.data import transforms as T

from .common import augmented_instance_annotations, build_resize_crop_flip_augmentations
from .common import make_instances, pad_to_fixed_size

__all__ = ["MaskFormerInstanceDatasetMapper"]


class MaskFormerInstanceDatasetMapper:
    """Turn an instance-segmentation dataset dict (COCO-style ``annotations``) into training input.

    ResizeShortestEdge, optional RandomCrop, optional SSD colour augmentation, random flip, fixed
    size padding to INPUT.SIZE_DIVISIBILITY. Crowd annotations are dropped. Returns ``image``
    (uint8 [3,H,W]) and ``instances`` (``gt_classes`` int64 [G], ``gt_masks`` bool [G,H,W]).
    Training only.
    """

    @configurable
    def __init__(self, is_train=True, *, augmentations, image_format, size_divisibility):
        if not is_train:
            raise ValueError(
                f"{type(self).__name__} is a training mapper; use DatasetMapper for tests"
            )
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.size_divisibility = size_divisibility
        logging.getLogger(__name__).info(
            f"[{type(self).__name__}] augmentations in training: {augmentations}"
        )

    @classmethod
    def from_config(cls, cfg, is_train=True):
        return {
            "is_train": is_train,
            "augmentations": build_resize_crop_flip_augmentations(
                cfg, with_category_area_crop=False, ignore_label=255
            ),
            "image_format": cfg.INPUT.FORMAT,
            "size_divisibility": cfg.INPUT.SIZE_DIVISIBILITY,
        }

    def __call__(self, dataset_dict):
        dataset_dict = copy.deepcopy(dataset_dict)
        image, annos, masks = augmented_instance_annotations(
            dataset_dict, self.augmentations, self.image_format, type(self).__name__
        )
        shape = image.shape[:2]
        classes = [obj["category_id"] for obj in annos]

        image_t = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        image_t, _, _ = pad_to_fixed_size(image_t, self.size_divisibility)
        padded_shape = tuple(image_t.shape[-2:])
        if padded_shape != shape:
            pad_h, pad_w = padded_shape[0] - shape[0], padded_shape[1] - shape[1]
            masks = [np.pad(m, ((0, pad_h), (0, pad_w))) for m in masks]
        dataset_dict["image"] = image_t
        dataset_dict["instances"] = make_instances(padded_shape, classes, masks)
        return dataset_dict
