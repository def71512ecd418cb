"""COCO panoptic with semantic maps: ``coco_2017_{train,val}_panoptic_with_sem_seg``.

Layout under the datasets root::

    coco/{train,val}2017/                         images
    coco/panoptic_{train,val}2017/                panoptic PNGs
    coco/annotations/panoptic_{train,val}2017.json
    coco/annotations/instances_{train,val}2017.json   (for instance AP)
    coco/panoptic_semseg_{train,val}2017/         semantic PNGs (133 contiguous ids, 255 void),
                                                  made by prepare_coco_semantic_annos_from_panoptic_annos.py
"""

import os

from ._common import panoptic_metadata, register_dataset
from .builtin_categories import COCO_PANOPTIC_CATEGORIES
from .panoptic import load_panoptic_json

__all__ = [
    "get_coco_panoptic_metadata",
    "register_coco_panoptic_annos_sem_seg",
    "register_all_coco_panoptic_annos_sem_seg",
]

_SPLITS = {
    "coco_2017_train_panoptic_with_sem_seg": (
        "coco/train2017",
        "coco/panoptic_train2017",
        "coco/annotations/panoptic_train2017.json",
        "coco/panoptic_semseg_train2017",
        "coco/annotations/instances_train2017.json",
    ),
    "coco_2017_val_panoptic_with_sem_seg": (
        "coco/val2017",
        "coco/panoptic_val2017",
        "coco/annotations/panoptic_val2017.json",
        "coco/panoptic_semseg_val2017",
        "coco/annotations/instances_val2017.json",
    ),
}


def get_coco_panoptic_metadata():
    """133 classes in the released models' order (80 things first, then 53 stuff)."""
    return panoptic_metadata(COCO_PANOPTIC_CATEGORIES)


def register_coco_panoptic_annos_sem_seg(
    name,
    metadata,
    image_root,
    panoptic_root,
    panoptic_json,
    sem_seg_root,
    instances_json,
    *,
    evaluator_type="coco_panoptic_seg",
    ignore_label=255,
    overwrite=False,
):
    """Register a COCO-format panoptic dataset whose dicts also carry ``sem_seg_file_name``.

    ``instances_json`` (COCO instance annotations of the thing classes, used for mask AP) may
    be None, in which case no ``json_file`` metadata is set.
    """
    meta = dict(
        metadata,
        image_root=image_root,
        panoptic_root=panoptic_root,
        panoptic_json=panoptic_json,
        sem_seg_root=sem_seg_root,
        evaluator_type=evaluator_type,
        ignore_label=ignore_label,
        label_divisor=1000,
    )
    if instances_json:
        meta["json_file"] = instances_json

    def load():
        return load_panoptic_json(
            panoptic_json, image_root, panoptic_root, sem_seg_root, meta, dataset_name=name
        )

    return register_dataset(name, load, meta, overwrite=overwrite)


def register_all_coco_panoptic_annos_sem_seg(root):
    meta = get_coco_panoptic_metadata()
    for name, paths in _SPLITS.items():
        image_root, pan_root, pan_json, sem_root, ins_json = (os.path.join(root, p) for p in paths)
        register_coco_panoptic_annos_sem_seg(
            name, meta, image_root, pan_root, pan_json, sem_root, ins_json
        )
