"""The "detr_panoptic" training mapper (MaskFormer v1's COCO panoptic models) on the real COCO
panoptic sample."""

import json
import os

import numpy as np
import torch

from detectron2.data import transforms as T
from detectron2.data.datasets.coco_panoptic import load_coco_panoptic_json

from helpers import COCO_SAMPLE, make_cfg
from mask2former.data.dataset_mappers import DETRPanopticDatasetMapper, build_dataset_mapper
from mask2former.data.dataset_mappers.detr_panoptic_dataset_mapper import build_detr_augmentations


def _dicts():
    with open(os.path.join(COCO_SAMPLE, "panoptic_coco_categories.json")) as f:
        cats = json.load(f)
    meta = {
        "thing_dataset_id_to_contiguous_id": {
            c["id"]: i for i, c in enumerate(cats) if c["isthing"]
        },
        "stuff_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(cats)},
    }
    dicts = load_coco_panoptic_json(
        os.path.join(COCO_SAMPLE, "panoptic_examples.json"),
        os.path.join(COCO_SAMPLE, "input_images"),
        os.path.join(COCO_SAMPLE, "panoptic_examples"),
        meta,
    )
    for d in dicts:
        d.pop("height", None), d.pop("width", None)
    return dicts


def test_detr_augmentations_follow_the_config():
    cfg = make_cfg("coco/panoptic/maskformer_r50.yaml")
    augs = build_detr_augmentations(cfg)
    assert [type(a) for a in augs] == [T.RandomFlip, T.RandomApply, T.ResizeShortestEdge]
    assert augs[1].prob == 0.5
    cfg.INPUT.CROP.ENABLED = False
    assert [type(a) for a in build_detr_augmentations(cfg)] == [T.RandomFlip, T.ResizeShortestEdge]


def test_detr_panoptic_mapper_on_coco_sample():
    cfg = make_cfg("coco/panoptic/maskformer_r50.yaml", "INPUT.MIN_SIZE_TRAIN", "(96, 128)",
                   "INPUT.MAX_SIZE_TRAIN", "200", "INPUT.CROP.SIZE", "(48, 64)")
    mapper = build_dataset_mapper(cfg)
    assert isinstance(mapper, DETRPanopticDatasetMapper)
    np.random.seed(0)
    sizes = set()
    for d in _dicts():
        classes = {s["category_id"] for s in d["segments_info"] if not s.get("iscrowd", 0)}
        for _ in range(4):
            out = mapper(d)
            image, inst = out["image"], out["instances"]
            h, w = image.shape[-2:]
            sizes.add((h, w))
            assert image.dtype == torch.uint8 and max(h, w) <= 200
            assert min(h, w) in (96, 128) or max(h, w) >= 199  # else limited by MAX_SIZE_TRAIN
            assert inst.gt_masks.shape == (len(inst), h, w) and inst.gt_masks.dtype == torch.bool
            assert set(inst.gt_classes.tolist()) <= classes
            assert inst.gt_masks.sum(0).max() <= 1  # panoptic: segments do not overlap
            assert inst.has("gt_boxes")
    assert len(sizes) > 1
