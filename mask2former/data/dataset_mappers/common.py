"""Helpers shared by the Mask2Former training mappers (pure functions on numpy/torch data)."""

import logging
from typing import Iterable, List, Optional, Sequence

import numpy as np
import pycocotools.mask as mask_util
import torch
import torch.nn.functional as F

from detectron2.data import MetadataCatalog
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import Instances, polygons_to_bitmask

from ..robust_loading import read_image  # robust: 16-bit, RGBA, bad files
from .color_augmentation import ColorAugSSD

__all__ = [
    "augmented_instance_annotations",
    "IMAGE_PAD_VALUE",
    "PANOPTIC_VOID_IDS",
    "build_resize_crop_flip_augmentations",
    "build_lsj_augmentations",
    "pad_to_fixed_size",
    "make_instances",
    "semantic_to_instances",
    "panoptic_to_instances",
    "annotation_masks",
    "mask_transforms",
    "dataset_ignore_label",
]

# Pixel value used for padded image regions (the original mappers' choice).
IMAGE_PAD_VALUE = 128
# Segment ids of a panoptic id map that are no segment: 0 (unlabelled in the COCO format) and
# 0xFFFFFF, what Detectron2's crop/pad transforms produce when they pad the RGB PNG with 255.
PANOPTIC_VOID_IDS = (0, 256**3 - 1)

logger = logging.getLogger(__name__)
_warned_unknown_ids = set()  # files already reported (a warning per file, not per epoch)


def build_resize_crop_flip_augmentations(cfg, *, with_category_area_crop: bool, ignore_label: int):
    """ResizeShortestEdge → [crop] → [ColorAugSSD] → RandomFlip, from cfg.INPUT (training).

    The crop is ``RandomCrop_CategoryAreaConstraint`` (INPUT.CROP.SINGLE_CATEGORY_MAX_AREA) when
    ``with_category_area_crop`` (semantic/panoptic mappers), else a plain ``RandomCrop``.
    """
    augs: List[T.Augmentation] = [
        T.ResizeShortestEdge(
            cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN, cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING
        )
    ]
    if cfg.INPUT.CROP.ENABLED:
        if with_category_area_crop:
            augs.append(
                T.RandomCrop_CategoryAreaConstraint(
                    cfg.INPUT.CROP.TYPE,
                    cfg.INPUT.CROP.SIZE,
                    cfg.INPUT.CROP.SINGLE_CATEGORY_MAX_AREA,
                    ignore_label,
                )
            )
        else:
            augs.append(T.RandomCrop(cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE))
    if cfg.INPUT.COLOR_AUG_SSD:
        augs.append(ColorAugSSD(img_format=cfg.INPUT.FORMAT))
    augs.append(T.RandomFlip())
    return augs


def build_lsj_augmentations(cfg):
    """Large-scale jitter (COCO): flip, ResizeScale(MIN_SCALE..MAX_SCALE of IMAGE_SIZE), FixedSizeCrop."""
    size = cfg.INPUT.IMAGE_SIZE
    if cfg.INPUT.RANDOM_FLIP not in ("horizontal", "vertical", "none"):
        raise ValueError(
            f"INPUT.RANDOM_FLIP must be horizontal/vertical/none, got {cfg.INPUT.RANDOM_FLIP}"
        )
    augs: List[T.Augmentation] = []
    if cfg.INPUT.RANDOM_FLIP != "none":
        augs.append(
            T.RandomFlip(
                horizontal=cfg.INPUT.RANDOM_FLIP == "horizontal",
                vertical=cfg.INPUT.RANDOM_FLIP == "vertical",
            )
        )
    augs += [
        T.ResizeScale(
            min_scale=cfg.INPUT.MIN_SCALE,
            max_scale=cfg.INPUT.MAX_SCALE,
            target_height=size,
            target_width=size,
        ),
        T.FixedSizeCrop(crop_size=(size, size), pad_value=IMAGE_PAD_VALUE),
    ]
    return augs


def dataset_ignore_label(dataset_names: Sequence[str], default: int = 255) -> int:
    """``ignore_label`` of the first training dataset's metadata (``default`` if not set)."""
    if not dataset_names:
        return default
    return getattr(MetadataCatalog.get(dataset_names[0]), "ignore_label", default)


def pad_to_fixed_size(
    image: torch.Tensor,
    size: int,
    *,
    sem_seg: Optional[torch.Tensor] = None,
    pan_seg: Optional[torch.Tensor] = None,
    ignore_label: int = 255,
):
    """Pad bottom/right to ``size`` x ``size`` (cfg.INPUT.SIZE_DIVISIBILITY; <= 0 disables).

    Image pads with 128, ``sem_seg`` with ``ignore_label``, ``pan_seg`` with 0 (no segment).
    Sides already larger than ``size`` are left as they are (never cropped).

    Args:
        image: [C, H, W]; sem_seg, pan_seg: [H, W] or None.
    Returns:
        (image, sem_seg, pan_seg) padded.
    """
    if size <= 0:
        return image, sem_seg, pan_seg
    h, w = image.shape[-2:]
    pad = [0, max(size - w, 0), 0, max(size - h, 0)]
    if pad[1] == 0 and pad[3] == 0:
        return image, sem_seg, pan_seg
    image = F.pad(image, pad, value=IMAGE_PAD_VALUE).contiguous()
    if sem_seg is not None:
        sem_seg = F.pad(sem_seg, pad, value=ignore_label).contiguous()
    if pan_seg is not None:
        pan_seg = F.pad(pan_seg, pad, value=0).contiguous()
    return image, sem_seg, pan_seg


def make_instances(image_shape, classes: Sequence[int], masks: Sequence) -> Instances:
    """Instances with ``gt_classes`` int64 [G] and ``gt_masks`` bool tensor [G, H, W]."""
    h, w = image_shape
    instances = Instances((h, w))
    instances.gt_classes = torch.as_tensor(np.asarray(classes, dtype=np.int64).reshape(-1))
    if len(masks) == 0:
        instances.gt_masks = torch.zeros((0, h, w), dtype=torch.bool)
    else:
        instances.gt_masks = torch.stack(
            [torch.as_tensor(np.ascontiguousarray(m)).to(torch.bool) for m in masks]
        )
    return instances


def semantic_to_instances(sem_seg: torch.Tensor, ignore_label: int) -> Instances:
    """One instance per class present in the [H, W] label map (``ignore_label`` excluded)."""
    classes = [c for c in torch.unique(sem_seg).tolist() if c != ignore_label]
    return make_instances(sem_seg.shape, classes, [sem_seg == c for c in classes])


def panoptic_to_instances(
    pan_seg: np.ndarray, segments_info: Iterable[dict], source: Optional[str] = None
) -> Instances:
    """One instance per non-crowd segment of the [H, W] id map (``category_id`` = class).

    Crowd segments (``iscrowd`` 1) are dropped: their pixels get no target, as in the original.
    Pixels whose id is neither a segment of ``segments_info`` nor void (`PANOPTIC_VOID_IDS`)
    get no target either, as in the original; they mean the PNG and the JSON disagree, so the
    first time a ``source`` (the PNG's file name) has such pixels a warning names the file and
    the unknown ids.
    """
    segments_info = list(segments_info)
    classes, masks = [], []
    covered = sum(int(np.count_nonzero(pan_seg == v)) for v in PANOPTIC_VOID_IDS)
    for seg in segments_info:
        mask = pan_seg == seg["id"]
        covered += int(np.count_nonzero(mask))
        if seg.get("iscrowd", 0):
            continue
        classes.append(seg["category_id"])
        masks.append(mask)
    if covered < pan_seg.size and source is not None and source not in _warned_unknown_ids:
        _warned_unknown_ids.add(source)
        known = [s["id"] for s in segments_info] + list(PANOPTIC_VOID_IDS)
        unknown = np.setdiff1d(np.unique(pan_seg), known)
        logger.warning(
            f"{source}: {pan_seg.size - covered} pixels have segment ids that are not in the "
            f"annotation JSON ({unknown[:10].tolist()}{' ...' if unknown.size > 10 else ''}); "
            "they are treated as unlabelled. Check that the PNG and its segments_info match."
        )
    return make_instances(pan_seg.shape, classes, masks)


def mask_transforms(transforms: T.TransformList) -> T.TransformList:
    """The same geometric transforms, but padding binary masks with 0 (not the seg value 255)."""
    out = []
    for t in transforms.transforms:
        if isinstance(t, T.PadTransform) and t.seg_pad_value != 0:
            t = T.PadTransform(t.x0, t.y0, t.x1, t.y1, t.orig_w, t.orig_h, t.pad_value, 0)
        out.append(t)
    return T.TransformList(out)


def annotation_masks(annos: Sequence[dict], image_shape) -> List[np.ndarray]:
    """Binary [H, W] masks of transformed COCO annotations (polygons, RLE or decoded arrays)."""
    h, w = image_shape
    masks = []
    for anno in annos:
        segm = anno["segmentation"]
        if isinstance(segm, list):
            masks.append(polygons_to_bitmask(segm, h, w) if segm else np.zeros((h, w), bool))
        elif isinstance(segm, dict):
            masks.append(mask_util.decode(segm).astype(bool))
        elif isinstance(segm, np.ndarray):
            if segm.shape != (h, w):
                raise ValueError(f"annotation mask has shape {segm.shape}, image is {(h, w)}")
            masks.append(segm.astype(bool))
        else:
            raise ValueError(
                f"unsupported segmentation type {type(segm).__name__}: expected polygons "
                "(list), COCO RLE (dict) or a binary mask (ndarray)"
            )
    return masks


def augmented_instance_annotations(dataset_dict: dict, augmentations, image_format: str, mapper: str):
    """Read a COCO-style instance sample, augment it and transform its non-crowd annotations.

    Args:
        dataset_dict: a (copied) dataset dict with "file_name" and "annotations"; the
            annotations are popped from it.
        augmentations: a ``T.AugmentationList`` applied to the image (and the masks).
        image_format: ``cfg.INPUT.FORMAT``.
        mapper: the calling mapper's name, for the error message.
    Returns:
        (image uint8 [H, W, 3], annotations in the augmented frame, their bool masks [H, W]).
    """
    if "annotations" not in dataset_dict:
        raise ValueError(
            f"{mapper}: dataset dict of {dataset_dict['file_name']} has no "
            "'annotations'; this mapper needs an instance segmentation dataset"
        )
    image = read_image(dataset_dict["file_name"], format=image_format)
    utils.check_image_size(dataset_dict, image)
    aug_input = T.AugInput(image)
    transforms = mask_transforms(augmentations(aug_input))
    image = aug_input.image
    shape = image.shape[:2]
    annos = [
        utils.transform_instance_annotations(obj, transforms, shape)
        for obj in dataset_dict.pop("annotations")
        if obj.get("iscrowd", 0) == 0
    ]
    return image, annos, annotation_masks(annos, shape)
