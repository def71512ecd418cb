"""YouTube-VIS video instance segmentation: JSON loader, ``register_ytvis_instances`` and the
builtin ``ytvis_2019_*`` / ``ytvis_2021_*`` registrations (SPEC §9).

The YouTube-VIS JSON has ``videos`` (``id``, ``file_names`` relative to the image root,
``length``, ``height``, ``width``), ``categories`` and, for annotated splits, ``annotations``:
one per *track*, with ``video_id``, ``category_id``, ``iscrowd`` and per-frame lists
``segmentations`` (RLE, compressed or not, or polygons; ``None`` where the object is absent),
``bboxes`` (XYWH or ``None``) and ``areas``.

:func:`load_ytvis_json` turns it into one Detectron2 dict per video::

    {"file_names": [abs path per frame], "height", "width", "length", "video_id",
     "annotations": [per frame: [{"id" (track id), "category_id" (contiguous), "segmentation",
                                  "bbox", "bbox_mode", "iscrowd"}, ...]]}

``annotations`` is absent when the JSON has none (the public valid/test splits).
"""

import json
import logging
import os
from collections import defaultdict
from typing import Dict, List, Optional

import numpy as np
import pycocotools.mask as mask_util

from detectron2.data import MetadataCatalog
from detectron2.structures import BoxMode

from ._common import register_dataset, require_paths
from .ytvis_categories import YTVIS_CATEGORIES_2019, YTVIS_CATEGORIES_2021

__all__ = [
    "load_ytvis_json",
    "register_ytvis_instances",
    "ytvis_metadata",
    "get_ytvis_metadata",
    "register_all_ytvis",
    "YTVIS_SPLITS",
]

logger = logging.getLogger(__name__)

# name -> (image root, JSON), relative to $DETECTRON2_DATASETS (the original release's layout)
YTVIS_SPLITS = {
    f"ytvis_{year}_{split}": (f"ytvis_{year}/{folder}/JPEGImages", f"ytvis_{year}/{folder}.json")
    for year in (2019, 2021)
    for split, folder in (("train", "train"), ("val", "valid"), ("test", "test"))
}
_CATEGORIES = {2019: YTVIS_CATEGORIES_2019, 2021: YTVIS_CATEGORIES_2021}


def ytvis_metadata(categories: List[Dict]) -> Dict:
    """Instance metadata from ``[{"id", "name", "color"}]``: contiguous ids in list order."""
    return {
        "thing_classes": [c["name"] for c in categories],
        "thing_colors": [list(c.get("color", (0, 0, 0))) for c in categories],
        "thing_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(categories)},
    }


def get_ytvis_metadata(year: int) -> Dict:
    """Metadata of the YouTube-VIS ``year`` (2019 or 2021) class list (40 classes)."""
    if year not in _CATEGORIES:
        raise ValueError(f"YouTube-VIS year must be one of {sorted(_CATEGORIES)}, got {year}")
    return ytvis_metadata(_CATEGORIES[year])


def _read_json(json_file: str, what: str) -> Dict:
    try:
        with open(json_file) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{what}: {json_file} is not valid JSON ({e}).") from None
    if not isinstance(data, dict) or not isinstance(data.get("videos"), list):
        raise ValueError(
            f"{what}: {json_file} is not a YouTube-VIS annotation file (expected a JSON object "
            "with a 'videos' list)."
        )
    return data


def _category_map(data: Dict, json_file: str, dataset_name: Optional[str], what: str) -> Dict:
    """Dataset -> contiguous category ids: the registered metadata's when present, else the
    JSON's categories in ascending id order (then stored in the metadata, as Detectron2's
    ``load_coco_json`` does)."""
    json_cats = {c["id"]: c["name"] for c in data.get("categories", [])}
    meta = MetadataCatalog.get(dataset_name) if dataset_name else None
    if meta is not None and "thing_dataset_id_to_contiguous_id" in meta.as_dict():
        id_map = meta.thing_dataset_id_to_contiguous_id
        names = [json_cats.get(k) for k in sorted(id_map, key=id_map.get)]
        if json_cats and names != list(meta.thing_classes):
            logger.warning(
                f"{what}: class names in {json_file} differ from the registered ones; using "
                "the registered names."
            )
        return id_map
    ids = sorted(json_cats)
    id_map = {k: i for i, k in enumerate(ids)}
    if meta is not None and ids:
        meta.set(
            thing_classes=[json_cats[k] for k in ids], thing_dataset_id_to_contiguous_id=id_map
        )
    return id_map


def _frame_segmentation(segm, height: int, width: int, where: str):
    """A frame's segmentation as loaded (compressed RLE or valid polygons), or None if absent.

    Uncompressed RLE (``counts`` a list) is compressed; polygons with fewer than 3 points are
    dropped (no polygon left: absent).
    """
    if segm is None:
        return None
    if isinstance(segm, dict):
        if "counts" not in segm or "size" not in segm:
            raise ValueError(f"{where}: RLE segmentation needs 'counts' and 'size', got {segm}")
        if list(segm["size"]) != [height, width]:
            raise ValueError(
                f"{where}: RLE of size {list(segm['size'])} in a video of size "
                f"{[height, width]} (height, width)."
            )
        if isinstance(segm["counts"], list):
            segm = mask_util.frPyObjects(segm, height, width)
        return segm
    if isinstance(segm, list):
        polys = [p for p in segm if len(p) % 2 == 0 and len(p) >= 6]
        return polys or None
    raise ValueError(
        f"{where}: unsupported segmentation of type {type(segm).__name__} (expected RLE dict, "
        "polygon list or null)."
    )


def _bbox_of(segm, height: int, width: int) -> List[float]:
    rle = (
        segm
        if isinstance(segm, dict)
        else mask_util.merge(mask_util.frPyObjects(segm, height, width))
    )
    return [float(v) for v in mask_util.toBbox(rle)]


def _video_record(video: Dict, image_root: str, what: str) -> Dict:
    files = video.get("file_names")
    if not files:
        raise ValueError(f"{what}: video {video.get('id')} has no 'file_names'.")
    length = video.get("length", len(files))
    if length != len(files):
        raise ValueError(
            f"{what}: video {video['id']} has length {length} but {len(files)} file_names."
        )
    return {
        "file_names": [os.path.join(image_root, f) for f in files],
        "height": video["height"],
        "width": video["width"],
        "length": length,
        "video_id": video["id"],
    }


def _per_frame_annotations(
    record: Dict, tracks: List[Dict], id_map: Dict, extra_keys, what: str
) -> List[List[Dict]]:
    length, h, w = record["length"], record["height"], record["width"]
    frames: List[List[Dict]] = [[] for _ in range(length)]
    for track in tracks:
        where = f"{what}: annotation {track.get('id')} (video {record['video_id']})"
        if "id" not in track:
            raise ValueError(f"{where} has no 'id' (the track id).")
        if track["category_id"] not in id_map:
            raise ValueError(
                f"{where} has category id {track['category_id']} that is not in the "
                f"registered metadata ({len(id_map)} classes)."
            )
        segms = track.get("segmentations")
        bboxes = track.get("bboxes") or [None] * length
        if segms is None or len(segms) != length or len(bboxes) != length:
            raise ValueError(
                f"{where}: 'segmentations' and 'bboxes' must have one entry (or null) per frame "
                f"of the video ({length} frames)."
            )
        for t in range(length):
            segm = _frame_segmentation(segms[t], h, w, f"{where}, frame {t}")
            if segm is None:
                continue
            bbox = bboxes[t] if bboxes[t] is not None else _bbox_of(segm, h, w)
            obj = {key: track[key] for key in extra_keys if key in track}
            obj.update(
                id=track["id"],
                category_id=id_map[track["category_id"]],
                segmentation=segm,
                bbox=list(bbox),
                bbox_mode=BoxMode.XYWH_ABS,
                iscrowd=track.get("iscrowd", 0),
            )
            frames[t].append(obj)
    return frames


def load_ytvis_json(
    json_file: str, image_root: str, dataset_name: Optional[str] = None, extra_annotation_keys=None
) -> List[Dict]:
    """Load a YouTube-VIS JSON into one Detectron2 dict per video (see the module docstring).

    Args:
        json_file: the YouTube-VIS JSON (``train.json``, ``valid.json``, ...).
        image_root: folder the videos' ``file_names`` are relative to (``.../JPEGImages``).
        dataset_name: registered name; its ``thing_dataset_id_to_contiguous_id`` maps category
            ids (if unset, the JSON's categories in ascending id order are used and stored).
        extra_annotation_keys: more per-track keys copied into every per-frame annotation.
    Raises:
        DatasetNotFoundError: the JSON, the image folder or the first video's first frame is
            missing.
        ValueError: malformed JSON (names the file, the annotation id and the frame).
    """
    what = f"Dataset '{dataset_name}'" if dataset_name else "YouTube-VIS"
    require_paths(dataset_name or json_file, [json_file, image_root])
    data = _read_json(json_file, what)
    records = [_video_record(v, image_root, what) for v in data["videos"]]
    if not records:
        raise ValueError(f"{what}: no videos in {json_file}.")
    if "annotations" in data:
        id_map = _category_map(data, json_file, dataset_name, what)
        by_video = defaultdict(list)
        for ann in data["annotations"]:
            by_video[ann["video_id"]].append(ann)
        unknown = set(by_video) - {r["video_id"] for r in records}
        if unknown:
            raise ValueError(
                f"{what}: {json_file} has annotations of unknown video ids "
                f"{sorted(unknown)[:10]}."
            )
        extra = list(extra_annotation_keys or [])
        for record in records:
            tracks = by_video.get(record["video_id"], [])
            record["annotations"] = _per_frame_annotations(record, tracks, id_map, extra, what)
    elif dataset_name:
        _category_map(data, json_file, dataset_name, what)  # class names for unannotated splits
    require_paths(dataset_name or json_file, [records[0]["file_names"][0]])
    n_frames = int(np.sum([r["length"] for r in records]))
    logger.info(f"Loaded {len(records)} videos ({n_frames} frames) from {json_file}")
    return records


def register_ytvis_instances(
    name: str, metadata: Dict, json_file: str, image_root: str, *, overwrite: bool = False
) -> None:
    """Register a YouTube-VIS-format dataset (the original's signature).

    Args:
        name: dataset name, e.g. "my_videos_train".
        metadata: extra metadata, typically ``thing_classes``, ``thing_colors`` and
            ``thing_dataset_id_to_contiguous_id`` (may be empty: then the JSON's categories are
            used when the dataset is loaded).
        json_file: path to the YouTube-VIS JSON.
        image_root: folder the JSON's ``file_names`` are relative to.
        overwrite: replace an existing registration of ``name`` with different metadata.
    """
    register_dataset(
        name,
        lambda: load_ytvis_json(json_file, image_root, name),
        dict(metadata, json_file=json_file, image_root=image_root, evaluator_type="ytvis"),
        overwrite=overwrite,
    )


def register_all_ytvis(root: str) -> None:
    """Register ``ytvis_{2019,2021}_{train,val,test}`` under the datasets ``root``."""
    for name, (image_root, json_file) in YTVIS_SPLITS.items():
        year = int(name.split("_")[1])
        register_ytvis_instances(
            name,
            get_ytvis_metadata(year),
            os.path.join(root, json_file),
            os.path.join(root, image_root),
        )
