"""Clear "dataset not found" errors, and missing metadata, for the Detectron2 builtin datasets
this project uses.

Detectron2 registers ``coco_2017_*``, ``ade20k_sem_seg_*`` and ``cityscapes_fine_*`` itself
(their metadata is reused). Their loaders fail deep inside when a folder is missing, so we wrap
each loader with a check of the paths in its metadata that raises
:class:`DatasetNotFoundError` naming the path and ``$DETECTRON2_DATASETS``.

Detectron2's ``ade20k_sem_seg_*`` have no ``stuff_colors``; the original Mask2Former sets the
ADE20K palette on them, and so does :func:`add_missing_builtin_metadata` (only where the field
is not set yet: Detectron2's own fields are never replaced).
"""

import functools
import logging

from detectron2.data import DatasetCatalog, MetadataCatalog

from ._common import require_paths
from .builtin_categories import ADE20K_150_CATEGORIES

__all__ = [
    "BUILTIN_DATASETS",
    "BUILTIN_EXTRA_METADATA",
    "add_missing_builtin_metadata",
    "add_path_checks_to_builtin_datasets",
]

logger = logging.getLogger(__name__)

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


# Metadata fields the original Mask2Former adds to Detectron2's builtin datasets.
BUILTIN_EXTRA_METADATA = {
    f"ade20k_sem_seg_{split}": {"stuff_colors": [list(c["color"]) for c in ADE20K_150_CATEGORIES]}
    for split in ("train", "val")
}


def _plain(value):
    """Lists and tuples compared alike (Detectron2 stores colours as tuples, we as lists)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def add_missing_builtin_metadata(extra=None) -> None:
    """Set the fields of ``extra`` (default :data:`BUILTIN_EXTRA_METADATA`: {dataset name:
    {field: value}}) on the registered datasets that do not have them yet (idempotent).

    A field that is already set to another value is left as it is (with a warning): this never
    overrides what Detectron2 (or a user) registered.
    """
    extra = BUILTIN_EXTRA_METADATA if extra is None else extra
    for name, fields in extra.items():
        if name not in DatasetCatalog.list():
            continue
        meta = MetadataCatalog.get(name)
        for key, value in fields.items():
            current = meta.get(key, None)
            if current is None:
                meta.set(**{key: value})
            elif _plain(current) != _plain(value):
                logger.warning(
                    f"Dataset '{name}' already has its own '{key}'; the value Mask2Former "
                    "registers for it is not applied."
                )
