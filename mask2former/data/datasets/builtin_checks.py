"""Clear "dataset not found" errors for the Detectron2 builtin datasets this project uses.

Detectron2 registers ``coco_2017_*``, ``ade20k_sem_seg_*`` and ``cityscapes_fine_*`` itself
(their metadata is reused unchanged). Their loaders fail deep inside when a folder is missing,
so we wrap each loader with a check of the paths in its metadata that raises
:class:`DatasetNotFoundError` naming the path and ``$DETECTRON2_DATASETS``.
"""

import functools

from detectron2.data import DatasetCatalog, MetadataCatalog

from ._common import require_paths

__all__ = ["BUILTIN_DATASETS", "add_path_checks_to_builtin_datasets"]

BUILTIN_DATASETS = (
    [
        f"{prefix}_{split}"
        for prefix in ("coco_2017", "ade20k_sem_seg")
        for split in ("train", "val")
    ]
    + [f"coco_2017_{s}_panoptic" for s in ("train", "val")]
    + [
        f"cityscapes_fine_{task}_{split}"
        for task in ("sem_seg", "instance_seg", "panoptic")
        for split in ("train", "val")
    ]
)
_PATH_KEYS = (
    "image_root",
    "image_dir",
    "gt_dir",
    "sem_seg_root",
    "json_file",
    "panoptic_root",
    "panoptic_json",
)


def _checked(name, loader):
    @functools.wraps(loader)
    def load():
        meta = MetadataCatalog.get(name)
        paths = [meta.get(k) for k in _PATH_KEYS]
        require_paths(name, [p for p in paths if isinstance(p, str) and "://" not in p])
        return loader()

    load._mask2former_checked = True
    return load


def add_path_checks_to_builtin_datasets(names=BUILTIN_DATASETS) -> None:
    """Wrap the loaders of the given registered builtin datasets (idempotent)."""
    for name in names:
        if name not in DatasetCatalog.list():
            continue
        loader = DatasetCatalog[name]
        if getattr(loader, "_mask2former_checked", False):
            continue
        DatasetCatalog.remove(name)
        DatasetCatalog.register(name, _checked(name, loader))
