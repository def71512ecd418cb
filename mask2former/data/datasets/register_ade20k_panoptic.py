"""ADE20K-150 panoptic: ``ade20k_panoptic_{train,val}``.

Layout under ``ADEChallengeData2016/``::

    images/{training,validation}/*.jpg
    ade20k_panoptic_{train,val}/*.png + ade20k_panoptic_{train,val}.json   (prepare_ade20k_pan_seg.py)
    annotations_detectron2/{training,validation}/*.png                     (prepare_ade20k_sem_seg.py)
    ade20k_instance_{train,val}.json                                       (prepare_ade20k_ins_seg.py)
"""

import os

from ._common import panoptic_metadata
from .builtin_categories import ADE20K_150_CATEGORIES
from .register_coco_panoptic_annos_semseg import register_coco_panoptic_annos_sem_seg

__all__ = ["get_ade20k_panoptic_metadata", "register_all_ade20k_panoptic"]


def get_ade20k_panoptic_metadata():
    """150 classes in ADE20K-150 order; category ids are the 0-based ADE20K-150 ids."""
    return panoptic_metadata(ADE20K_150_CATEGORIES)


def register_all_ade20k_panoptic(root):
    root = os.path.join(root, "ADEChallengeData2016")
    meta = get_ade20k_panoptic_metadata()
    for split, dirname in (("train", "training"), ("val", "validation")):
        register_coco_panoptic_annos_sem_seg(
            f"ade20k_panoptic_{split}",
            meta,
            os.path.join(root, "images", dirname),
            os.path.join(root, f"ade20k_panoptic_{split}"),
            os.path.join(root, f"ade20k_panoptic_{split}.json"),
            os.path.join(root, "annotations_detectron2", dirname),
            os.path.join(root, f"ade20k_instance_{split}.json"),
            evaluator_type="ade20k_panoptic_seg",
        )
