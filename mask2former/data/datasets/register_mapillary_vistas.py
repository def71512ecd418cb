"""Mapillary Vistas v1.2 semantic segmentation: ``mapillary_vistas_sem_seg_{train,val}``.

Layout under ``mapillary_vistas/``: ``{training,validation}/images/*.jpg`` and
``{training,validation}/labels/*.png`` (65 classes 0..64, 65 = unlabeled/ignore).
"""

import os

from ._common import load_sem_seg_checked, register_dataset
from .builtin_categories import MAPILLARY_VISTAS_CATEGORIES

__all__ = ["get_mapillary_vistas_sem_seg_metadata", "register_all_mapillary_vistas"]


def get_mapillary_vistas_sem_seg_metadata():
    return {
        "stuff_classes": [c["name"] for c in MAPILLARY_VISTAS_CATEGORIES],
        "stuff_colors": [list(c["color"]) for c in MAPILLARY_VISTAS_CATEGORIES],
    }


def register_all_mapillary_vistas(root):
    root = os.path.join(root, "mapillary_vistas")
    meta = get_mapillary_vistas_sem_seg_metadata()
    for split, dirname in (("train", "training"), ("val", "validation")):
        name = f"mapillary_vistas_sem_seg_{split}"
        image_dir = os.path.join(root, dirname, "images")
        gt_dir = os.path.join(root, dirname, "labels")
        register_dataset(
            name,
            lambda n=name, x=image_dir, y=gt_dir: load_sem_seg_checked(n, y, x, "png", "jpg"),
            dict(
                meta,
                image_root=image_dir,
                sem_seg_root=gt_dir,
                evaluator_type="sem_seg",
                ignore_label=65,
            ),
        )
