"""ADE20K-full (847 classes) semantic segmentation: ``ade20k_full_sem_seg_{train,val}``.

Layout under ``ADE20K_2021_17_01/``: ``images_detectron2/{training,validation}/*.jpg`` and
``annotations_detectron2/{training,validation}/*.tif`` (16-bit labels 0..846, 65535 = void).
Class names come from ``ADE20K_2021_17_01/ade20k_full_classes.json`` if present, otherwise
placeholders (see :func:`builtin_categories.ade20k_full_classes`).
"""

import os

from ._common import load_sem_seg_checked, register_dataset
from .builtin_categories import ade20k_full_classes, generated_colors

__all__ = ["register_all_ade20k_full"]


def register_all_ade20k_full(root):
    root = os.path.join(root, "ADE20K_2021_17_01")
    classes = ade20k_full_classes(root)
    colors = generated_colors(len(classes), seed=7)
    for split, dirname in (("train", "training"), ("val", "validation")):
        name = f"ade20k_full_sem_seg_{split}"
        image_dir = os.path.join(root, "images_detectron2", dirname)
        gt_dir = os.path.join(root, "annotations_detectron2", dirname)
        register_dataset(
            name,
            lambda n=name, x=image_dir, y=gt_dir: load_sem_seg_checked(n, y, x, "tif", "jpg"),
            dict(
                stuff_classes=classes,
                stuff_colors=colors,
                image_root=image_dir,
                sem_seg_root=gt_dir,
                evaluator_type="sem_seg",
                ignore_label=65535,
            ),
        )
