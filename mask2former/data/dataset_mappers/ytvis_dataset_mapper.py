"""Clip mapper for video instance segmentation (INPUT.DATASET_MAPPER_NAME "ytvis", SPEC §9).

Takes a per-video dict of :func:`mask2former.data.datasets.load_ytvis_json` and returns one clip:

    {"image": [T uint8 tensors [C, H, W] in INPUT.FORMAT],
     "instances": [T Instances] (training only),
     "height", "width" (of the original video), "length" (frames in the video), "video_id",
     "file_names": [T frame paths], "frame_idx": [T frame indices]}

Training samples INPUT.SAMPLING_FRAME_NUM frames, applies one augmentation to the whole clip and
builds per-frame targets with the same instance order in every frame; test mode reads every
frame of the video in order (no targets: the evaluator reads the ground truth JSON).
"""

import logging
from typing import Dict, List, Sequence

import numpy as np
import torch

from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.structures import BitMasks, Instances

from ..robust_loading import BadSampleError, read_image
from .clip_augmentation import ClipAugmentationList, build_clip_augmentations, video_cfg_value
from .common import annotation_masks, mask_transforms

__all__ = ["YTVISDatasetMapper", "sample_clip_frames", "clip_instances"]

logger = logging.getLogger(__name__)


def sample_clip_frames(
    length: int, num_frames: int, frame_range: int, shuffle: bool = False
) -> List[int]:
    """Indices of a training clip (random, from ``np.random``).

    A reference frame is drawn uniformly; the other ``num_frames - 1`` frames are drawn without
    replacement among the frames at most ``frame_range`` away from it (with replacement when
    there are not enough, e.g. short videos). Sorted, unless ``shuffle``.
    """
    if length < 1:
        raise ValueError(f"a video needs at least one frame, got length {length}")
    ref = int(np.random.randint(length))
    lo, hi = max(0, ref - frame_range), min(length, ref + frame_range + 1)
    candidates = [i for i in range(lo, hi) if i != ref]
    k = num_frames - 1
    if k > 0 and candidates:
        others = np.random.choice(candidates, k, replace=len(candidates) < k).tolist()
    else:
        others = [ref] * k
    idx = sorted([ref] + [int(i) for i in others])
    if shuffle:
        np.random.shuffle(idx)
    return idx


def clip_instances(
    frame_annotations: Sequence[Sequence[Dict]], transforms, image_shapes
) -> List[Instances]:
    """Per-frame training targets of a clip, with one instance per track of the clip.

    Args:
        frame_annotations: for each of the T frames, its annotations (loader format: "id" = track
            id, contiguous "category_id", "segmentation", "bbox", "bbox_mode", "iscrowd") in the
            frame's *original* coordinates. Crowd annotations are ignored; the
            annotations are not modified.
        transforms: T ``TransformList``s (the clip augmentation of each frame).
        image_shapes: T augmented (H, W).
    Returns:
        T Instances with the same N instances in the same order (tracks present in some frame
        of the clip, by ascending track id): ``gt_classes`` int64 [N] (the track's class, in
        every frame), ``gt_ids`` int64 [N] (the track id, -1 in frames where the track is
        absent or its mask is empty after augmentation), ``gt_masks`` BitMasks [N, H, W]
        (empty where absent) and ``gt_boxes`` Boxes [N, 4] (XYXY of the masks, zeros where
        absent).
    """
    frame_annotations = [[a for a in f if not a.get("iscrowd", 0)] for f in frame_annotations]
    classes = {}
    for frame in frame_annotations:
        for a in frame:
            if classes.setdefault(a["id"], a["category_id"]) != a["category_id"]:
                raise ValueError(f"track {a['id']} changes category within the video")
    order = {tid: k for k, tid in enumerate(sorted(classes))}
    gt_classes = torch.tensor([classes[t] for t in sorted(classes)], dtype=torch.int64)
    out = []
    for annos, tfm, (h, w) in zip(frame_annotations, transforms, image_shapes):
        tfm = mask_transforms(tfm)
        ids = torch.full((len(order),), -1, dtype=torch.int64)
        masks = torch.zeros((len(order), h, w), dtype=torch.bool)
        for a in annos:
            a = utils.transform_instance_annotations(dict(a), tfm, (h, w))
            k = order[a["id"]]
            masks[k] = torch.from_numpy(annotation_masks([a], (h, w))[0])
            ids[k] = a["id"]
        ids[~masks.flatten(1).any(1)] = -1  # absent, or moved out by the crop/rotation
        inst = Instances((h, w))
        inst.gt_classes = gt_classes.clone()
        inst.gt_ids = ids
        inst.gt_masks = BitMasks(masks)
        inst.gt_boxes = inst.gt_masks.get_bounding_boxes()
        out.append(inst)
    return out


class YTVISDatasetMapper:
    """Map a YouTube-VIS per-video dict to a clip (see the module docstring).

    Args:
        is_train: training (sampled clips with targets) or test (all frames, no targets).
        augmentations: a :class:`ClipAugmentationList` (or a list for one).
        image_format: cfg.INPUT.FORMAT.
        sampling_frame_num: frames per training clip (INPUT.SAMPLING_FRAME_NUM).
        sampling_frame_range: max distance of a clip frame from the reference frame.
        sampling_frame_shuffle: shuffle the clip's frames instead of keeping them in time order.
    """

    @configurable
    def __init__(
        self,
        is_train: bool = True,
        *,
        augmentations,
        image_format: str,
        sampling_frame_num: int = 2,
        sampling_frame_range: int = 5,
        sampling_frame_shuffle: bool = False,
    ):
        if sampling_frame_num < 1 or sampling_frame_range < 0:
            raise ValueError(
                "INPUT.SAMPLING_FRAME_NUM must be >= 1 and INPUT.SAMPLING_FRAME_RANGE >= 0, got "
                f"{sampling_frame_num} and {sampling_frame_range}"
            )
        self.is_train = is_train
        if not isinstance(augmentations, ClipAugmentationList):
            augmentations = ClipAugmentationList(augmentations)
        self.augmentations = augmentations
        self.image_format = image_format
        self.sampling_frame_num = sampling_frame_num
        self.sampling_frame_range = sampling_frame_range
        self.sampling_frame_shuffle = sampling_frame_shuffle
        mode = "training" if is_train else "inference"
        logger.info(f"[{type(self).__name__}] augmentations in {mode}: {augmentations}")

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        return {
            "is_train": is_train,
            "augmentations": build_clip_augmentations(cfg, is_train),
            "image_format": cfg.INPUT.FORMAT,
            "sampling_frame_num": video_cfg_value(cfg, "SAMPLING_FRAME_NUM"),
            "sampling_frame_range": video_cfg_value(cfg, "SAMPLING_FRAME_RANGE"),
            "sampling_frame_shuffle": video_cfg_value(cfg, "SAMPLING_FRAME_SHUFFLE"),
        }

    def _read_frame(self, file_name: str, dataset_dict: Dict) -> np.ndarray:
        image = read_image(file_name, format=self.image_format)
        expected = (dataset_dict.get("height"), dataset_dict.get("width"))
        if None not in expected and image.shape[:2] != expected:
            raise BadSampleError(
                file_name,
                f"frame is {image.shape[1]}x{image.shape[0]} but the video is "
                f"{expected[1]}x{expected[0]} (width x height) in the annotations",
            )
        return image

    def __call__(self, dataset_dict: Dict) -> Dict:
        files = dataset_dict["file_names"]
        length = dataset_dict.get("length", len(files))
        if self.is_train:
            if "annotations" not in dataset_dict:
                raise ValueError(
                    f"video {dataset_dict.get('video_id')} has no annotations: training needs an "
                    "annotated split (the public YouTube-VIS valid/test JSONs have none)"
                )
            idx = sample_clip_frames(
                length,
                self.sampling_frame_num,
                self.sampling_frame_range,
                self.sampling_frame_shuffle,
            )
        else:
            idx = list(range(length))
        frames = [self._read_frame(files[i], dataset_dict) for i in idx]
        height, width = frames[0].shape[:2]
        frames, transforms = self.augmentations(frames)
        out = {
            "image": [torch.as_tensor(np.ascontiguousarray(f.transpose(2, 0, 1))) for f in frames],
            "height": dataset_dict.get("height", height),
            "width": dataset_dict.get("width", width),
            "length": length,
            "video_id": dataset_dict.get("video_id"),
            "file_names": [files[i] for i in idx],
            "frame_idx": idx,
        }
        if self.is_train:
            out["instances"] = clip_instances(
                [dataset_dict["annotations"][i] for i in idx],
                transforms,
                [f.shape[:2] for f in frames],
            )
        return out
