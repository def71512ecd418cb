"""Training mapper for semantic segmentation (INPUT.DATASET_MAPPER_NAME "mask_former_semantic")."""

import copy
import logging

import numpy as np
import torch

from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from ..robust_loading import read_image, read_label_map  # robust: 16-bit, RGBA, bad files
from .common import (
    build_resize_crop_flip_augmentations,
    dataset_ignore_label,
    pad_to_fixed_size,
    semantic_to_instances,
)

__all__ = ["MaskFormerSemanticDatasetMapper"]


class MaskFormerSemanticDatasetMapper:
    """Turn a semantic-segmentation dataset dict into Mask2Former training input.

    Reads ``file_name`` and ``sem_seg_file_name``, applies ResizeShortestEdge, a random crop
    that limits the area of a single category, optional SSD colour augmentation and a random
    flip, pads to the fixed size INPUT.SIZE_DIVISIBILITY (image 128, labels ``ignore_label``),
    and returns ``image`` (uint8 [3,H,W]), ``sem_seg`` (int64 [H,W]) and ``instances`` with one
    binary mask per class present (``gt_classes`` int64 [G], ``gt_masks`` bool [G,H,W]).
    Training only.
    """

    @configurable
    def __init__(
        self, is_train=True, *, augmentations, image_format, ignore_label, size_divisibility
    ):
        if not is_train:
            raise ValueError(
                f"{type(self).__name__} is a training mapper; use DatasetMapper for tests"
            )
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.ignore_label = ignore_label
        self.size_divisibility = size_divisibility
        logging.getLogger(__name__).info(
            f"[{type(self).__name__}] augmentations in training: {augmentations}"
        )

    @classmethod
    def from_config(cls, cfg, is_train=True):
        ignore_label = dataset_ignore_label(cfg.DATASETS.TRAIN)
        return {
            "is_train": is_train,
            "augmentations": build_resize_crop_flip_augmentations(
                cfg, with_category_area_crop=True, ignore_label=ignore_label
            ),
            "image_format": cfg.INPUT.FORMAT,
            "ignore_label": ignore_label,
            "size_divisibility": cfg.INPUT.SIZE_DIVISIBILITY,
        }

    def _read(self, dataset_dict):
        image = read_image(dataset_dict["file_name"], format=self.image_format)
        utils.check_image_size(dataset_dict, image)
        sem_seg = None
        if "sem_seg_file_name" in dataset_dict:
            # float64 keeps 8- and 16-bit label maps exact through nearest resizing
            sem_seg = read_label_map(
                dataset_dict.pop("sem_seg_file_name"), image, dataset_dict["file_name"]
            ).astype("double")
        return image, sem_seg

    def __call__(self, dataset_dict):
        dataset_dict = copy.deepcopy(dataset_dict)
        image, sem_seg = self._read(dataset_dict)
        if sem_seg is None:
            raise ValueError(
                f"{type(self).__name__}: dataset dict of {dataset_dict['file_name']} has no "
                "'sem_seg_file_name'; this mapper needs a semantic segmentation dataset"
            )
        aug_input = T.AugInput(image, sem_seg=sem_seg)
        self.augmentations(aug_input)
        image_t = torch.as_tensor(np.ascontiguousarray(aug_input.image.transpose(2, 0, 1)))
        sem_t = torch.as_tensor(aug_input.sem_seg.astype("long"))
        image_t, sem_t, _ = pad_to_fixed_size(
            image_t, self.size_divisibility, sem_seg=sem_t, ignore_label=self.ignore_label
        )
        dataset_dict["image"] = image_t
        dataset_dict["sem_seg"] = sem_t
        if "annotations" in dataset_dict:
            raise ValueError(f"{type(self).__name__} does not use 'annotations' (semantic only)")
        dataset_dict["instances"] = semantic_to_instances(sem_t, self.ignore_label)
        return dataset_dict
