"""Training mapper for panoptic segmentation (INPUT.DATASET_MAPPER_NAME "mask_former_panoptic")."""

import copy

import numpy as np
import torch

from detectron2.data import transforms as T

from ..robust_loading import read_label_map  # robust: 16-bit, RGBA, bad files
from ..datasets.panoptic import rgb2id
from .common import pad_to_fixed_size, panoptic_to_instances
from .mask_former_semantic_dataset_mapper import MaskFormerSemanticDatasetMapper

__all__ = ["MaskFormerPanopticDatasetMapper"]


class MaskFormerPanopticDatasetMapper(MaskFormerSemanticDatasetMapper):
    """Turn a panoptic dataset dict (ADE20K / Cityscapes / Mapillary / COCO) into training input.

    Same augmentations and fixed-size padding as the semantic mapper. Reads the RGB-encoded
    ``pan_seg_file_name`` with ``segments_info`` (contiguous ``category_id``) and returns
    ``instances`` with one mask per non-crowd segment; ``sem_seg`` too when the dict has a
    ``sem_seg_file_name``.
    """

    def __call__(self, dataset_dict):
        dataset_dict = copy.deepcopy(dataset_dict)
        if "pan_seg_file_name" not in dataset_dict:
            raise ValueError(
                f"{type(self).__name__}: dataset dict of {dataset_dict['file_name']} has no "
                "'pan_seg_file_name'; this mapper needs a panoptic dataset"
            )
        image, sem_seg = self._read(dataset_dict)
        pan_file = dataset_dict.pop("pan_seg_file_name")
        pan_seg = read_label_map(pan_file, image, dataset_dict["file_name"], "RGB")
        segments_info = dataset_dict.pop("segments_info")

        aug_input = T.AugInput(image, sem_seg=sem_seg)
        transforms = self.augmentations(aug_input)
        # nearest resizing of the uint8 RGB encoding is exact; decode ids afterwards
        pan_seg = rgb2id(transforms.apply_segmentation(pan_seg))

        image_t = torch.as_tensor(np.ascontiguousarray(aug_input.image.transpose(2, 0, 1)))
        sem_t = None if sem_seg is None else torch.as_tensor(aug_input.sem_seg.astype("long"))
        pan_t = torch.as_tensor(pan_seg)
        image_t, sem_t, pan_t = pad_to_fixed_size(
            image_t,
            self.size_divisibility,
            sem_seg=sem_t,
            pan_seg=pan_t,
            ignore_label=self.ignore_label,
        )
        dataset_dict["image"] = image_t
        if sem_t is not None:
            dataset_dict["sem_seg"] = sem_t
        if "annotations" in dataset_dict:
            raise ValueError(f"{type(self).__name__} does not use 'annotations' (panoptic only)")
        dataset_dict["instances"] = panoptic_to_instances(pan_t.numpy(), segments_info, pan_file)
        return dataset_dict
