"""The generated dataset of :mod:`mask2former.data.synthetic`, in three views:

* ``synthetic_panoptic_{train,val}``: panoptic dicts with ``sem_seg_file_name``; metadata like
  ``coco_2017_*_panoptic_with_sem_seg`` so COCOPanopticEvaluator, SemSegEvaluator and
  COCOEvaluator / InstanceSegEvaluator all work (evaluator_type ``coco_panoptic_seg``).
* ``synthetic_instance_{train,val}``: COCO instance dicts of the 4 thing classes (evaluator ``coco``).
* ``synthetic_sem_seg_{train,val}``: semantic dicts over all 7 classes (evaluator ``sem_seg``).

and the generated *video* dataset of :mod:`mask2former.data.synthetic_video` as
``synthetic_ytvis_{train,val}`` (YouTube-VIS format, the 4 thing classes, evaluator ``ytvis``).
"""

import os

from ._common import (
    get_datasets_root,
    load_coco_json_checked,
    load_sem_seg_checked,
    panoptic_metadata,
    register_dataset,
)
from .register_coco_panoptic_annos_semseg import register_coco_panoptic_annos_sem_seg

__all__ = [
    "get_synthetic_metadata",
    "register_synthetic",
    "synthetic_dir",
    "register_synthetic_ytvis",
    "synthetic_ytvis_dir",
    "SYNTHETIC_YTVIS_SPLITS",
]


def _categories():
    from ..synthetic import SYNTHETIC_CATEGORIES

    return SYNTHETIC_CATEGORIES


def get_synthetic_metadata():
    return panoptic_metadata(_categories())


def synthetic_dir(root: str) -> str:
    """``root/synthetic`` (``root`` is the datasets root the generator was given)."""
    return os.path.join(root, "synthetic")


def register_synthetic(root: str = None) -> None:
    """Register the synthetic datasets found under ``root/synthetic``.

    ``root`` defaults to ``$DETECTRON2_DATASETS`` (or ``datasets``). Calling it again with another
    root re-registers the names to the new location; with the same root it is a no-op.
    """
    d = synthetic_dir(get_datasets_root() if root is None else root)
    meta = get_synthetic_metadata()
    for split in ("train", "val"):
        image_root = os.path.join(d, "images", split)
        sem_root = os.path.join(d, f"panoptic_semseg_{split}")
        ins_json = os.path.join(d, "annotations", f"instances_{split}.json")
        register_coco_panoptic_annos_sem_seg(
            f"synthetic_panoptic_{split}",
            meta,
            image_root,
            os.path.join(d, f"panoptic_{split}"),
            os.path.join(d, "annotations", f"panoptic_{split}.json"),
            sem_root,
            ins_json,
            overwrite=True,
        )
        name = f"synthetic_instance_{split}"
        register_dataset(
            name,
            lambda n=name, j=ins_json, i=image_root: load_coco_json_checked(n, j, i),
            {
                "thing_classes": meta["thing_classes"],
                "thing_colors": meta["thing_colors"],
                "thing_dataset_id_to_contiguous_id": {
                    k: i for i, k in enumerate(sorted(meta["thing_dataset_id_to_contiguous_id"]))
                },
                "json_file": ins_json,
                "image_root": image_root,
                "evaluator_type": "coco",
            },
            overwrite=True,
        )
        name = f"synthetic_sem_seg_{split}"
        register_dataset(
            name,
            lambda n=name, x=image_root, y=sem_root: load_sem_seg_checked(n, y, x, "png", "jpg"),
            {
                "stuff_classes": meta["stuff_classes"],
                "stuff_colors": meta["stuff_colors"],
                "image_root": image_root,
                "sem_seg_root": sem_root,
                "evaluator_type": "sem_seg",
                "ignore_label": 255,
            },
            overwrite=True,
        )


# split -> (image root, JSON) relative to synthetic_ytvis_dir(root), as in ytvis_2019/
SYNTHETIC_YTVIS_SPLITS = {
    "train": ("train/JPEGImages", "train.json"),
    "val": ("valid/JPEGImages", "valid.json"),
}


def synthetic_ytvis_dir(root: str) -> str:
    """``root/synthetic_ytvis`` (``root`` is the datasets root the video generator was given)."""
    return os.path.join(root, "synthetic_ytvis")


def register_synthetic_ytvis(root: str = None) -> None:
    """Register ``synthetic_ytvis_{train,val}`` found under ``root/synthetic_ytvis``.

    ``root`` defaults to ``$DETECTRON2_DATASETS`` (or ``datasets``); another root re-registers
    the names there, the same root is a no-op.
    """
    from ..synthetic import SYNTHETIC_CATEGORIES
    from .ytvis import register_ytvis_instances, ytvis_metadata

    d = synthetic_ytvis_dir(get_datasets_root() if root is None else root)
    meta = ytvis_metadata([c for c in SYNTHETIC_CATEGORIES if c["isthing"]])
    for split, (image_root, json_file) in SYNTHETIC_YTVIS_SPLITS.items():
        register_ytvis_instances(
            f"synthetic_ytvis_{split}",
            meta,
            os.path.join(d, json_file),
            os.path.join(d, image_root),
            overwrite=True,
        )
