"""ADE20K-full (847 classes) semantic segmentation: ``ade20k_full_sem_seg_{train,val}``.

Layout under ``ADE20K_2021_17_01/``: ``images_detectron2/{training,validation}/*.jpg`` and
``annotations_detectron2/{training,validation}/*.tif`` (16-bit labels 0..846 = train ids, 65535 =
void). Metadata as the original MaskFormer's: ``stuff_classes`` (the 847 names) and
``stuff_dataset_id_to_contiguous_id`` (ADE20K class id -> train id), from
:data:`builtin_categories.ADE20K_FULL_CATEGORIES`.
"""

import os

from ._common import load_sem_seg_checked, register_dataset
from .builtin_categories import ADE20K_FULL_CATEGORIES, generated_colors

__all__ = ["get_ade20k_full_metadata", "register_all_ade20k_full"]


def get_ade20k_full_metadata():
    return {
        "stuff_classes": [c["name"] for c in ADE20K_FULL_CATEGORIES],
        "stuff_colors": generated_colors(len(ADE20K_FULL_CATEGORIES), seed=7),
        "stuff_dataset_id_to_contiguous_id": {
            c["id"]: c["trainId"] for c in ADE20K_FULL_CATEGORIES
        },
    }


def register_all_ade20k_full(root):
    root = os.path.join(root, "ADE20K_2021_17_01")
    meta = get_ade20k_full_metadata()
    for split, dirname in (("train", "training"), ("val", "validation")):
        name = f"ade20k_full_sem_seg_{split}"
        image_dir = os.path.join(root, "images_detectron2", dirname)
        gt_dir = os.path.join(root, "annotations_detectron2", dirname)
        register_dataset(
            name,
            lambda n=name, x=image_dir, y=gt_dir: load_sem_seg_checked(n, y, x, "tif", "jpg"),
            dict(
                meta,
                image_root=image_dir,
                sem_seg_root=gt_dir,
                evaluator_type="sem_seg",
                ignore_label=65535,
            ),
        )
