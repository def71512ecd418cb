"""Mapillary Vistas v1.2 panoptic: ``mapillary_vistas_panoptic_{train,val}``.

Layout under ``mapillary_vistas/{training,validation}/``: ``images/*.jpg``, ``panoptic/*.png``,
``panoptic/panoptic_2018.json`` (category ids 1..65) and ``labels/*.png`` (semantic, 65 = ignore).
"""

import os

from ._common import panoptic_metadata
from .builtin_categories import MAPILLARY_VISTAS_CATEGORIES
from .register_coco_panoptic_annos_semseg import register_coco_panoptic_annos_sem_seg

__all__ = ["get_mapillary_vistas_panoptic_metadata", "register_all_mapillary_vistas_panoptic"]


def get_mapillary_vistas_panoptic_metadata():
    return panoptic_metadata(MAPILLARY_VISTAS_CATEGORIES)


def register_all_mapillary_vistas_panoptic(root):
    root = os.path.join(root, "mapillary_vistas")
    meta = get_mapillary_vistas_panoptic_metadata()
    for split, dirname in (("train", "training"), ("val", "validation")):
        d = os.path.join(root, dirname)
        register_coco_panoptic_annos_sem_seg(
            f"mapillary_vistas_panoptic_{split}",
            meta,
            os.path.join(d, "images"),
            os.path.join(d, "panoptic"),
            os.path.join(d, "panoptic", "panoptic_2018.json"),
            os.path.join(d, "labels"),
            None,
            evaluator_type="mapillary_vistas_panoptic_seg",
            ignore_label=65,
        )
