"""Loading COCO-format panoptic annotations and converting them to semantic / instance form.

The conversion functions are pure (numpy in, numpy / dicts out) and shared by the dataset
loaders, the synthetic generator and the ``datasets/prepare_*.py`` scripts.
"""

import json
import os
from typing import Dict, List, Optional

import numpy as np
import pycocotools.mask as mask_util

from ._common import require_paths

__all__ = [
    "rgb2id",
    "id2rgb",
    "load_panoptic_json",
    "panoptic_to_semantic",
    "panoptic_to_instance_annotations",
    "mask_to_coco_annotation",
]


def rgb2id(color: np.ndarray) -> np.ndarray:
    """COCO panoptic RGB encoding [H,W,3] uint8 -> segment ids [H,W] int64 (R + 256G + 256²B)."""
    color = np.asarray(color)
    if color.ndim == 3:
        color = color.astype(np.int64)
        return color[..., 0] + 256 * color[..., 1] + 256 * 256 * color[..., 2]
    return color.astype(np.int64)


def id2rgb(ids: np.ndarray) -> np.ndarray:
    """Segment ids [H,W] -> RGB encoding [H,W,3] uint8 (inverse of :func:`rgb2id`)."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.min(initial=0) < 0 or ids.max(initial=0) >= 256**3:
        raise ValueError("panoptic segment ids must be in [0, 2^24)")
    rgb = np.empty(ids.shape + (3,), dtype=np.uint8)
    for c in range(3):
        rgb[..., c] = ids % 256
        ids = ids // 256
    return rgb


def load_panoptic_json(
    json_file: str,
    image_dir: str,
    gt_dir: str,
    semseg_dir: Optional[str],
    meta: Dict,
    *,
    dataset_name: str = "",
    image_ext: str = ".jpg",
) -> List[Dict]:
    """Load a COCO-format panoptic dataset into Detectron2 dicts.

    Each dict has ``file_name``, ``image_id``, ``height``/``width`` (if in the JSON),
    ``pan_seg_file_name``, ``segments_info`` (``category_id`` converted to contiguous ids,
    ``isthing`` added) and, if ``semseg_dir`` is given, ``sem_seg_file_name``.

    Raises:
        DatasetNotFoundError: if a folder / the JSON / the first annotated file is missing.
    """
    required = [json_file, image_dir, gt_dir] + ([semseg_dir] if semseg_dir else [])
    require_paths(dataset_name, required)
    thing_map = meta["thing_dataset_id_to_contiguous_id"]
    stuff_map = meta["stuff_dataset_id_to_contiguous_id"]

    with open(json_file) as f:
        json_info = json.load(f)
    images = {img["id"]: img for img in json_info.get("images", [])}

    ret = []
    for ann in json_info["annotations"]:
        image_id = ann["image_id"]
        stem = os.path.splitext(ann["file_name"])[0]
        img_info = images.get(image_id, {})
        img_name = img_info.get("file_name", stem + image_ext)
        segments = []
        for seg in ann["segments_info"]:
            seg = dict(seg)
            cid = seg["category_id"]
            if cid in thing_map:
                seg["category_id"], seg["isthing"] = thing_map[cid], True
            elif cid in stuff_map:
                seg["category_id"], seg["isthing"] = stuff_map[cid], False
            else:
                raise ValueError(
                    f"Dataset '{dataset_name}': {json_file} has category id {cid} that is not "
                    "in the registered metadata (wrong annotation file for this dataset?)."
                )
            segments.append(seg)
        record = {
            "file_name": os.path.join(image_dir, img_name),
            "image_id": image_id,
            "pan_seg_file_name": os.path.join(gt_dir, ann["file_name"]),
            "segments_info": segments,
        }
        if "height" in img_info and "width" in img_info:
            record["height"], record["width"] = img_info["height"], img_info["width"]
        if semseg_dir:
            record["sem_seg_file_name"] = os.path.join(semseg_dir, stem + ".png")
        ret.append(record)
    if not ret:
        raise ValueError(f"Dataset '{dataset_name}': no annotations in {json_file}.")
    first = [ret[0]["file_name"], ret[0]["pan_seg_file_name"]]
    if semseg_dir:
        first.append(ret[0]["sem_seg_file_name"])
    require_paths(dataset_name, first)
    return ret


def panoptic_to_semantic(
    pan_ids: np.ndarray,
    segments_info: List[Dict],
    id_to_contiguous: Dict[int, int],
    ignore_label: int = 255,
    dtype=np.uint8,
) -> np.ndarray:
    """Semantic map from a panoptic segment-id map.

    Args:
        pan_ids: [H,W] int segment ids (see :func:`rgb2id`); 0 and unlisted ids are void.
        segments_info: COCO ``segments_info`` (``id``, ``category_id`` as in the JSON).
        id_to_contiguous: dataset category id -> contiguous training id.
    Returns:
        [H,W] array of contiguous ids, ``ignore_label`` for void.
    """
    sem = np.full(pan_ids.shape, ignore_label, dtype=dtype)
    for seg in segments_info:
        sem[pan_ids == seg["id"]] = id_to_contiguous[seg["category_id"]]
    return sem


def mask_to_coco_annotation(mask: np.ndarray) -> Dict:
    """Binary mask [H,W] -> {"segmentation": RLE (str counts), "area", "bbox" [x,y,w,h]}."""
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    ys, xs = np.nonzero(mask)
    bbox = [
        int(xs.min()),
        int(ys.min()),
        int(xs.max() - xs.min() + 1),
        int(ys.max() - ys.min() + 1),
    ]
    return {"segmentation": rle, "area": int(mask.sum()), "bbox": bbox}


def panoptic_to_instance_annotations(
    pan_ids: np.ndarray, segments_info: List[Dict], thing_ids, image_id, start_id: int = 1
) -> List[Dict]:
    """COCO instance annotations (RLE) for the thing segments of one panoptic image.

    Args:
        pan_ids: [H,W] int segment ids.
        segments_info: COCO ``segments_info`` with dataset category ids.
        thing_ids: container of dataset category ids that are things.
        start_id: annotation id of the first returned annotation (ids are consecutive).
    """
    anns = []
    for seg in segments_info:
        if seg["category_id"] not in thing_ids:
            continue
        mask = pan_ids == seg["id"]
        if not mask.any():
            continue
        ann = mask_to_coco_annotation(mask)
        ann.update(
            id=start_id + len(anns),
            image_id=image_id,
            category_id=seg["category_id"],
            iscrowd=int(seg.get("iscrowd", 0)),
        )
        anns.append(ann)
    return anns
