"""The test-time dataset mapper: Detectron2's, with the robust image reader.

An image that cannot be read is replaced by a black image of the size recorded in the dataset
dict (so every evaluator still receives a prediction for it and dataset-level metrics such as PQ
can be computed), and the dict is marked with ``UNREADABLE_KEY`` = the reason;
`mask2former.evaluation.SkippedImagesReporter` reports these marks with the metrics.
"""
import copy
import logging

import numpy as np
import torch
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from PIL import Image

from ..robust_loading import BadSampleError, read_image, record_skip

__all__ = ["UNREADABLE_KEY", "RobustTestMapper"]

logger = logging.getLogger(__name__)

UNREADABLE_KEY = "mask2former_unreadable"


def _size_of(d) -> tuple:
    """(H, W) of the sample from its dict, else from its label file header; None if unknown."""
    if "height" in d and "width" in d:
        return int(d["height"]), int(d["width"])
    for key in ("sem_seg_file_name", "pan_seg_file_name"):
        if key in d:
            try:
                with Image.open(d[key]) as im:
                    return im.height, im.width
            except OSError:
                continue
    return None


class RobustTestMapper:
    """Test-time mapper: read (robustly), resize with ResizeShortestEdge, CHW uint8 tensor.

    Same output as Detectron2's ``DatasetMapper(cfg, is_train=False)``; unreadable images become
    black images of the annotated size, marked with ``UNREADABLE_KEY`` = reason.
    """

    def __init__(self, cfg):
        self.augmentations = T.AugmentationList([
            T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST],
                                 cfg.INPUT.MAX_SIZE_TEST)])
        self.image_format = cfg.INPUT.FORMAT

    def __call__(self, dataset_dict):
        d = copy.deepcopy(dataset_dict)
        try:
            image = read_image(d["file_name"], format=self.image_format)
            utils.check_image_size(d, image)
        except (BadSampleError, utils.SizeMismatchError) as e:
            size = _size_of(d)
            if size is None:
                raise BadSampleError(d["file_name"], f"{e}; its size is unknown, so it cannot be "
                                     "evaluated as a blank image: fix or remove it") from None
            reason = getattr(e, "reason", str(e))
            logger.warning("Evaluating %s as a black image: %s", d["file_name"], reason)
            record_skip(d["file_name"], reason, "test")
            image = np.zeros((*size, 3), dtype=np.uint8)
            d[UNREADABLE_KEY] = reason
        aug_input = T.AugInput(image)
        self.augmentations(aug_input)
        d["image"] = torch.as_tensor(np.ascontiguousarray(aug_input.image.transpose(2, 0, 1)))
        d.pop("annotations", None)
        d.pop("sem_seg_file_name", None)
        return d
