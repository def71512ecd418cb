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
    """Metadata of the 65 classes, as the original Mask2Former registers it.

    Unlike COCO / ADE20K panoptic, ``thing_classes`` / ``thing_colors`` list **all 65** classes
    (equal to ``stuff_classes`` / ``stuff_colors``), while ``thing_dataset_id_to_contiguous_id``
    maps only the 37 classes with instances. Thing segments carry contiguous ids over all 65
    classes, and Detectron2's Visualizer looks those ids up in ``thing_classes`` directly, so
    this list labels every thing correctly.
    """
    meta = panoptic_metadata(MAPILLARY_VISTAS_CATEGORIES)
    meta["thing_classes"] = list(meta["stuff_classes"])
    meta["thing_colors"] = [list(c) for c in meta["stuff_colors"]]
    return meta


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
