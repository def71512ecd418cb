"""Shared helpers for the dataset registrations: dataset root, idempotent registration and
clear errors for missing dataset folders."""

import logging
import os
from typing import Callable, Dict, Iterable, List

from detectron2.data import DatasetCatalog, MetadataCatalog

__all__ = [
    "DatasetNotFoundError",
    "get_datasets_root",
    "register_dataset",
    "require_paths",
    "panoptic_metadata",
]

logger = logging.getLogger(__name__)

_ENV = "DETECTRON2_DATASETS"


class DatasetNotFoundError(FileNotFoundError):
    """A registered dataset is loaded but its files are missing on disk."""


def get_datasets_root() -> str:
    """The root of all datasets: ``$DETECTRON2_DATASETS`` or ``datasets`` (relative to cwd)."""
    return os.path.expanduser(os.getenv(_ENV, "datasets"))


def require_paths(dataset_name: str, paths: Iterable[str]) -> None:
    """Raise :class:`DatasetNotFoundError` naming the first missing path.

    Args:
        dataset_name: registered dataset name (for the message).
        paths: files or directories that must exist. Directories must also be non-empty.
    """
    for path in paths:
        missing = not os.path.exists(path)
        empty = (not missing) and os.path.isdir(path) and not os.listdir(path)
        if missing or empty:
            what = "does not exist" if missing else "is an empty directory"
            raise DatasetNotFoundError(
                f"Dataset '{dataset_name}': expected path '{path}' {what}. Datasets are looked "
                f"up under ${_ENV} (currently "
                f"{os.getenv(_ENV, 'unset; default ./datasets')!r}, resolved to "
                f"'{os.path.abspath(get_datasets_root())}'). Set {_ENV} to the folder holding "
                f"the datasets, or prepare this dataset as described in datasets/README.md."
            )


def _comparable(meta: Dict) -> Dict:
    # Metadata.as_dict() contains "name"; lists and tuples compare differently so normalise.
    def norm(v):
        if isinstance(v, (list, tuple)):
            return [norm(x) for x in v]
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        return v

    return {k: norm(v) for k, v in meta.items() if k != "name"}


def register_dataset(
    name: str, loader: Callable[[], List[Dict]], metadata: Dict, *, overwrite: bool = False
) -> bool:
    """Register ``name`` in DatasetCatalog/MetadataCatalog, idempotently.

    If ``name`` already exists with the same metadata nothing happens. If it exists with
    different metadata, it is replaced when ``overwrite`` is True, otherwise a ValueError
    is raised (a conflicting registration is almost always a bug).

    Returns:
        True if the dataset was (re-)registered, False if an identical registration existed.
    """
    if name in DatasetCatalog.list():
        existing = _comparable(MetadataCatalog.get(name).as_dict())
        if existing == _comparable(metadata):
            return False
        if not overwrite:
            raise ValueError(
                f"Dataset '{name}' is already registered with different metadata. "
                f"Remove it first (DatasetCatalog.remove / MetadataCatalog.remove) or pass "
                f"overwrite=True."
            )
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, loader)
    MetadataCatalog.get(name).set(**metadata)
    return True


def panoptic_metadata(categories: List[Dict]) -> Dict:
    """Metadata for a panoptic dataset from a list of ``{"id", "name", "isthing", "color"}``.

    Contiguous ids follow the list order. As in the released Mask2Former models:
    ``stuff_classes``/``stuff_colors`` and ``stuff_dataset_id_to_contiguous_id`` cover **all**
    classes (so the semantic evaluator works on panoptic datasets), ``thing_classes`` lists the
    thing names only, and ``thing_dataset_id_to_contiguous_id`` maps thing dataset ids to their
    index in the full list.
    """
    things = [c for c in categories if c["isthing"]]
    return {
        "thing_classes": [c["name"] for c in things],
        "thing_colors": [list(c["color"]) for c in things],
        "stuff_classes": [c["name"] for c in categories],
        "stuff_colors": [list(c["color"]) for c in categories],
        "thing_dataset_id_to_contiguous_id": {
            c["id"]: i for i, c in enumerate(categories) if c["isthing"]
        },
        "stuff_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(categories)},
    }


def load_sem_seg_checked(
    dataset_name: str, gt_root: str, image_root: str, gt_ext: str = "png", image_ext: str = "jpg"
) -> List[Dict]:
    """Detectron2's ``load_sem_seg`` after checking that both folders exist and are non-empty."""
    from detectron2.data.datasets import load_sem_seg

    require_paths(dataset_name, [image_root, gt_root])
    return load_sem_seg(gt_root, image_root, gt_ext=gt_ext, image_ext=image_ext)


def load_coco_json_checked(
    dataset_name: str, json_file: str, image_root: str, extra_annotation_keys=None
) -> List[Dict]:
    """Detectron2's ``load_coco_json`` after checking that the JSON and image folder exist, with
    category ids mapped through the *registered* ``thing_dataset_id_to_contiguous_id``.

    Unlike ``load_coco_json(..., dataset_name)``, this does not overwrite the registered class
    names with the JSON's (a JSON with differently spelled names only logs a warning), and an
    annotation with an unknown category id raises a clear error.
    """
    import json

    from detectron2.data.datasets import load_coco_json

    require_paths(dataset_name, [json_file, image_root])
    meta = MetadataCatalog.get(dataset_name)
    id_map = meta.thing_dataset_id_to_contiguous_id
    with open(json_file) as f:
        categories = {c["id"]: c["name"] for c in json.load(f).get("categories", [])}
    json_names = [categories.get(k) for k in sorted(id_map, key=id_map.get)]
    if json_names != list(meta.thing_classes):
        logger.warning(
            f"Dataset '{dataset_name}': class names in {json_file} differ from the registered "
            "ones; using the registered names."
        )
    records = load_coco_json(json_file, image_root, None, extra_annotation_keys)
    for record in records:
        for ann in record.get("annotations", []):
            if ann["category_id"] not in id_map:
                raise ValueError(
                    f"Dataset '{dataset_name}': {json_file} has category id "
                    f"{ann['category_id']} that is not in the registered metadata."
                )
            ann["category_id"] = id_map[ann["category_id"]]
    return records
