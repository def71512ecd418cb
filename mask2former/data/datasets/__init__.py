"""Dataset registrations (SPEC §7).

Importing this package registers, under ``$DETECTRON2_DATASETS`` (default ``datasets``):
coco_2017_{train,val}_panoptic_with_sem_seg, coco_2017_{train,test}_stuff_10k_sem_seg,
ade20k_panoptic_{train,val}, ade20k_instance_{train,val}, ade20k_full_sem_seg_{train,val},
mapillary_vistas_sem_seg_{train,val}, mapillary_vistas_panoptic_{train,val},
ytvis_{2019,2021}_{train,val,test} (video, SPEC §9), and the synthetic datasets (``synthetic_*``
when ``$DETECTRON2_DATASETS/synthetic`` exists, ``synthetic_ytvis_*`` when
``$DETECTRON2_DATASETS/synthetic_ytvis`` exists). Detectron2's builtin
datasets (coco_2017_*, ade20k_sem_seg_*, cityscapes_fine_*) are reused, not re-registered (their
loaders only get a path check that gives the same clear error as ours).
Registration is idempotent; files are only touched when a dataset is loaded
(``DatasetCatalog.get``), which raises :class:`DatasetNotFoundError` naming the missing path.
"""

import os

from . import (
    register_ade20k_full,
    register_ade20k_instance,
    register_ade20k_panoptic,
    register_coco_panoptic_annos_semseg,
    register_coco_stuff_10k,
    register_mapillary_vistas,
    register_mapillary_vistas_panoptic,
)
from ._common import DatasetNotFoundError, get_datasets_root, register_dataset
from .builtin_checks import add_missing_builtin_metadata, add_path_checks_to_builtin_datasets
from .register_synthetic import register_synthetic, register_synthetic_ytvis
from .ytvis import load_ytvis_json, register_all_ytvis, register_ytvis_instances

__all__ = [
    "DatasetNotFoundError",
    "register_all",
    "register_synthetic",
    "register_synthetic_ytvis",
    "register_dataset",
    "register_ytvis_instances",
    "load_ytvis_json",
]


def register_all(root: str = None) -> None:
    """Register every dataset of SPEC §7 under ``root`` (default: ``$DETECTRON2_DATASETS``)."""
    root = get_datasets_root() if root is None else root
    register_coco_panoptic_annos_semseg.register_all_coco_panoptic_annos_sem_seg(root)
    register_coco_stuff_10k.register_all_coco_stuff_10k(root)
    register_ade20k_panoptic.register_all_ade20k_panoptic(root)
    register_ade20k_instance.register_all_ade20k_instance(root)
    register_ade20k_full.register_all_ade20k_full(root)
    register_mapillary_vistas.register_all_mapillary_vistas(root)
    register_mapillary_vistas_panoptic.register_all_mapillary_vistas_panoptic(root)
    register_all_ytvis(root)
    if os.path.isdir(os.path.join(root, "synthetic")):
        register_synthetic(root)
    if os.path.isdir(os.path.join(root, "synthetic_ytvis")):
        register_synthetic_ytvis(root)
    add_path_checks_to_builtin_datasets()
    add_missing_builtin_metadata()


register_all()
