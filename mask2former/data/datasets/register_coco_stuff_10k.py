"""COCO-Stuff-10k semantic segmentation: ``coco_2017_{train,test}_stuff_10k_sem_seg``.

Layout: ``coco/coco_stuff_10k/images_detectron2/{train,test}/*.jpg`` and
``coco/coco_stuff_10k/annotations_detectron2/{train,test}/*.png`` (171 contiguous ids, 255 void).
"""

import os

from ._common import load_sem_seg_checked, register_dataset
from .builtin_categories import COCO_STUFF_171_CATEGORIES

__all__ = ["get_coco_stuff_10k_metadata", "register_all_coco_stuff_10k"]


def get_coco_stuff_10k_metadata():
    return {
        "stuff_classes": [c["name"] for c in COCO_STUFF_171_CATEGORIES],
        "stuff_colors": [list(c["color"]) for c in COCO_STUFF_171_CATEGORIES],
        "stuff_dataset_id_to_contiguous_id": {
            c["id"]: i for i, c in enumerate(COCO_STUFF_171_CATEGORIES)
        },
    }


def register_all_coco_stuff_10k(root):
    root = os.path.join(root, "coco", "coco_stuff_10k")
    meta = get_coco_stuff_10k_metadata()
    for split in ("train", "test"):
        name = f"coco_2017_{split}_stuff_10k_sem_seg"
        image_dir = os.path.join(root, "images_detectron2", split)
        gt_dir = os.path.join(root, "annotations_detectron2", split)
        register_dataset(
            name,
            lambda n=name, x=image_dir, y=gt_dir: load_sem_seg_checked(n, y, x, "png", "jpg"),
            dict(
                meta,
                image_root=image_dir,
                sem_seg_root=gt_dir,
                evaluator_type="sem_seg",
                ignore_label=255,
            ),
        )
