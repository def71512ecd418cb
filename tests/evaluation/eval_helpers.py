"""Helpers (not fixtures) for the evaluator tests: small datasets registered from real or
generated files, and "ground truth fed back as model outputs"."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detectron2.data import DatasetCatalog
from detectron2.structures import BitMasks, Instances

from mask2former.data.datasets.builtin_categories import COCO_PANOPTIC_CATEGORIES
from mask2former.data.datasets.panoptic import (
    panoptic_to_instance_annotations,
    panoptic_to_semantic,
    rgb2id,
)
from mask2former.data.datasets.testing import registered_at, unregister  # noqa: F401

import helpers

REPO = Path(helpers.REPO)
COCO_SAMPLE = Path(helpers.COCO_SAMPLE)  # the repository copy (datasets/samples/README.md)


def read_pan_ids(path):
    return rgb2id(np.asarray(Image.open(path).convert("RGB")))


def gt_panoptic_output(record):
    """Model-style ``panoptic_seg`` output equal to the record's ground truth."""
    ids = read_pan_ids(record["pan_seg_file_name"])
    info = [
        {"id": s["id"], "category_id": s["category_id"], "isthing": s["isthing"]}
        for s in record["segments_info"]
    ]
    return torch.as_tensor(ids.astype(np.int32)), info


def edited_panoptic_output(record, drop=(), merge=None, relabel=None):
    """``gt_panoptic_output`` of the record with known errors, for hand-computed PQ:

    - ``drop``: segment ids whose pixels become 0 (unlabelled) and whose info is removed;
    - ``merge``: {segment id: other segment id}: the first segment's pixels join the second;
    - ``relabel``: {segment id: contiguous category id}.
    """
    ids, info = gt_panoptic_output(record)
    merge, relabel = merge or {}, relabel or {}
    for src, dst in merge.items():
        ids[ids == src] = dst
    for seg_id in drop:
        ids[ids == seg_id] = 0
    gone = set(drop) | set(merge)
    info = [dict(s, category_id=relabel.get(s["id"], s["category_id"])) for s in info
            if s["id"] not in gone]
    return ids, info


def gt_sem_seg_output(sem_seg, num_classes):
    """One-hot ``sem_seg`` scores [K,H,W] whose argmax is the ground truth (void -> class 0)."""
    sem = torch.as_tensor(np.asarray(sem_seg).astype(np.int64))
    valid = sem < num_classes
    scores = torch.zeros((num_classes,) + tuple(sem.shape))
    scores.scatter_(0, torch.where(valid, sem, 0)[None], valid[None].float())
    return scores


def gt_instances_output(masks, classes, image_size):
    """``Instances`` with the given boolean masks [N,H,W] and contiguous classes, scores 1."""
    inst = Instances(image_size)
    masks = torch.as_tensor(np.asarray(masks, dtype=bool).reshape(-1, *image_size))
    inst.pred_masks = masks
    inst.pred_boxes = BitMasks(masks).get_bounding_boxes()
    inst.pred_classes = torch.as_tensor(classes, dtype=torch.int64)
    inst.scores = torch.ones(len(classes))
    return inst


def panoptic_record_instances(record):
    """Non-crowd thing segments of a panoptic record as (masks [N,H,W], contiguous classes)."""
    ids = read_pan_ids(record["pan_seg_file_name"])
    segs = [s for s in record["segments_info"] if s["isthing"] and not s.get("iscrowd", 0)]
    masks = np.stack([ids == s["id"] for s in segs]) if segs else np.zeros((0,) + ids.shape, bool)
    return masks, [s["category_id"] for s in segs]


def build_coco_sample(dst: Path):
    """Copy the real COCO panoptic sample into a ``val2017``-like layout under ``dst`` and derive
    its semantic PNGs and instance JSON. Returns a dict of paths."""
    if not COCO_SAMPLE.is_dir():
        pytest.fail(f"real COCO sample not found at {COCO_SAMPLE}")
    paths = {
        "image_root": dst / "images",
        "panoptic_root": dst / "panoptic",
        "sem_seg_root": dst / "semseg",
        "panoptic_json": dst / "panoptic.json",
        "instances_json": dst / "instances.json",
    }
    shutil.copytree(COCO_SAMPLE / "input_images", paths["image_root"])
    shutil.copytree(COCO_SAMPLE / "panoptic_examples", paths["panoptic_root"])
    shutil.copy(COCO_SAMPLE / "panoptic_examples.json", paths["panoptic_json"])
    pan_json = json.loads(paths["panoptic_json"].read_text())
    to_contiguous = {c["id"]: i for i, c in enumerate(COCO_PANOPTIC_CATEGORIES)}
    thing_ids = {c["id"] for c in COCO_PANOPTIC_CATEGORIES if c["isthing"]}
    paths["sem_seg_root"].mkdir()
    anns = []
    for ann in pan_json["annotations"]:
        ids = read_pan_ids(paths["panoptic_root"] / ann["file_name"])
        sem = panoptic_to_semantic(ids, ann["segments_info"], to_contiguous)
        Image.fromarray(sem).save(paths["sem_seg_root"] / ann["file_name"])
        anns += panoptic_to_instance_annotations(
            ids, ann["segments_info"], thing_ids, ann["image_id"], start_id=len(anns) + 1
        )
    things = [{"id": c["id"], "name": c["name"]} for c in COCO_PANOPTIC_CATEGORIES if c["isthing"]]
    paths["instances_json"].write_text(
        json.dumps({"images": pan_json["images"], "annotations": anns, "categories": things})
    )
    return {k: str(v) for k, v in paths.items()}


def run_evaluator(evaluator, dataset_name, make_output):
    """Feed ``make_output(record)`` for every record of the dataset and return the results."""
    evaluator.reset()
    for record in DatasetCatalog.get(dataset_name):
        evaluator.process([record], [make_output(record)])
    return evaluator.evaluate()


def import_prepare_script(name):
    """Import ``datasets/<name>.py`` as a module (the folder holds scripts, not a package)."""
    import importlib
    import sys

    scripts = str(REPO / "datasets")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    return importlib.import_module(name)


def prepare_ade20k(dataset_dir, workers=2):
    """Run the three ADE20K preparation scripts on ``dataset_dir``."""
    for script in ("prepare_ade20k_sem_seg", "prepare_ade20k_pan_seg", "prepare_ade20k_ins_seg"):
        import_prepare_script(script).main(
            ["--dataset-dir", str(dataset_dir), "--workers", str(workers)]
        )
