"""COCO panoptic training with large-scale jitter (INPUT.DATASET_MAPPER_NAME "coco_panoptic_lsj")."""

import copy

import numpy as np
import torch

from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BitMasks

from ..robust_loading import read_image, read_label_map  # robust: 16-bit, RGBA, bad files
from .coco_instance_new_baseline_dataset_mapper import COCOInstanceNewBaselineDatasetMapper
from ..datasets.panoptic import rgb2id
from .common import panoptic_to_instances

__all__ = ["COCOPanopticNewBaselineDatasetMapper"]


class COCOPanopticNewBaselineDatasetMapper(COCOInstanceNewBaselineDatasetMapper):
    """COCO panoptic dict (``pan_seg_file_name`` + ``segments_info``) → training input with LSJ.

    One instance per non-crowd segment (things and stuff); padded pixels belong to no segment.
    Returns ``image`` (uint8 [3,S,S]) and ``instances`` (``gt_classes``, ``gt_masks`` bool
    [G,S,S], ``gt_boxes``). Training only.
    """

    def __call__(self, dataset_dict):
        dataset_dict = copy.deepcopy(dataset_dict)
        if "pan_seg_file_name" not in dataset_dict:
            raise ValueError(
                f"{type(self).__name__}: dataset dict of {dataset_dict['file_name']} has no "
                "'pan_seg_file_name'; this mapper needs a panoptic dataset"
            )
        image = read_image(dataset_dict["file_name"], format=self.image_format)
        utils.check_image_size(dataset_dict, image)
        aug_input = T.AugInput(image)
        transforms = self.augmentations(aug_input)
        pan_file = dataset_dict.pop("pan_seg_file_name")
        pan_rgb = read_label_map(pan_file, image, dataset_dict["file_name"], "RGB")
        # FixedSizeCrop pads segmentations with 255 → id 0xFFFFFF, which is no segment id
        pan_seg = rgb2id(transforms.apply_segmentation(pan_rgb))
        instances = panoptic_to_instances(pan_seg, dataset_dict.pop("segments_info"), pan_file)
        instances.gt_boxes = BitMasks(instances.gt_masks).get_bounding_boxes()
        dataset_dict["image"] = torch.as_tensor(
            np.ascontiguousarray(aug_input.image.transpose(2, 0, 1))
        )
        dataset_dict["instances"] = instances
        dataset_dict.pop("annotations", None)
        return dataset_dict
