"""Fuzz the training dataset mappers with broken files, as a new user's dataset would have.

Every (mapper, corruption) pair must either give a well-formed training sample or be skipped
(``None``) with a skip record naming the broken file — never raise.
"""
import json
import os

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from detectron2.data import DatasetCatalog

from mask2former.data.dataset_mappers import build_dataset_mapper
from mask2former.data.robust_loading import RobustDatasetMapper, read_skip_log, set_skip_log

from helpers import QUICKSTART_CONFIG, make_cfg

NUM_CLASSES = 7


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from mask2former.data.datasets import register_synthetic
    from mask2former.data.synthetic import generate_synthetic_dataset

    root = str(tmp_path_factory.mktemp("fuzz_data"))
    generate_synthetic_dataset(root, num_train=2, num_val=1, seed=0, image_size=64)
    register_synthetic(root)
    return root


def _cfg(mapper_name, dataset):
    cfg = make_cfg(QUICKSTART_CONFIG)
    cfg.INPUT.DATASET_MAPPER_NAME = mapper_name
    cfg.INPUT.IMAGE_SIZE = 64
    cfg.INPUT.MIN_SIZE_TRAIN = (64,)
    cfg.INPUT.MAX_SIZE_TRAIN = 128
    cfg.INPUT.COLOR_AUG_SSD = False
    cfg.DATASETS.TRAIN = (dataset,)
    return cfg


MAPPERS = [
    ("mask_former_semantic", "synthetic_sem_seg_train"),
    ("mask_former_panoptic", "synthetic_panoptic_train"),
    ("mask_former_instance", "synthetic_instance_train"),
    ("coco_instance_lsj", "synthetic_instance_train"),
    ("coco_panoptic_lsj", "synthetic_panoptic_train"),
]


def _write_png(path, arr, mode=None):
    (Image.fromarray(arr, mode) if mode else Image.fromarray(arr)).save(path, "PNG")


def _corrupt(kind, d, tmp):
    """Return (new dataset dict, file expected in a skip record or None, expectation)."""
    d = json.loads(json.dumps(d, default=int))  # deep copy, plain types
    img = np.asarray(Image.open(d["file_name"]).convert("RGB"))
    new = os.path.join(tmp, f"{kind}_{os.path.basename(d['file_name'])}")
    if kind == "truncated_jpeg":
        data = open(d["file_name"], "rb").read()
        open(new, "wb").write(data[: len(data) // 3])
        return dict(d, file_name=new), new, "skip"
    if kind == "random_bytes_image":
        open(new, "wb").write(np.random.default_rng(0).bytes(3000))
        return dict(d, file_name=new), new, "skip"
    if kind == "grayscale":
        _write_png(new, img[..., 1])
        return dict(d, file_name=new), None, ("gray", img[..., 1])
    if kind == "rgba":
        _write_png(new, np.dstack([img, np.full(img.shape[:2], 9, np.uint8)]), "RGBA")
        return dict(d, file_name=new), None, ("rgb", img)
    if kind == "16bit":
        cv2.imwrite(new + ".png", img[..., 1].astype(np.uint16) * 257)
        return dict(d, file_name=new + ".png"), None, ("gray", img[..., 1])
    if kind == "wrong_size":
        _write_png(new, np.zeros((10, 12, 3), np.uint8))
        return dict(d, file_name=new), new, "skip"  # disagrees with labels / dict size
    if kind == "random_bytes_label":
        key = "pan_seg_file_name" if "pan_seg_file_name" in d else "sem_seg_file_name"
        if key not in d:
            return None
        new = os.path.join(tmp, f"{kind}.png")
        open(new, "wb").write(np.random.default_rng(1).bytes(500))
        return dict(d, **{key: new}), new, "skip"
    if kind == "unknown_panoptic_ids":
        if "pan_seg_file_name" not in d:
            return None
        pan = np.asarray(Image.open(d["pan_seg_file_name"]).convert("RGB")).copy()
        pan[:8, :8] = [1, 2, 3]  # id 197121, not in segments_info
        new = os.path.join(tmp, f"{kind}.png")
        _write_png(new, pan)
        return dict(d, pan_seg_file_name=new), None, "ok"
    if kind == "no_segments":
        if "segments_info" in d:
            return dict(d, segments_info=[]), None, "ok"
        if "annotations" in d:
            return dict(d, annotations=[]), None, "ok"
        return None
    if kind == "bad_polygons":
        if "annotations" not in d:
            return None
        polys = [[[1, 1, 2, 2]], [[3, 3, 3, 3, 3, 3]], [[-20, -20, 90, -20, 90, 90, -20, 90]],
                 [[5, 5, 20, 5, 20, 20, float("nan"), 3]]]
        annos = [dict(a, segmentation=p, bbox=[0, 0, 64, 64]) for a, p in
                 zip(d["annotations"] * 4, polys)]
        return dict(d, annotations=annos), None, "ok"
    raise AssertionError(kind)


KINDS = ["truncated_jpeg", "random_bytes_image", "grayscale", "rgba", "16bit", "wrong_size",
         "random_bytes_label", "unknown_panoptic_ids", "no_segments", "bad_polygons"]


@pytest.mark.parametrize("mapper_name,dataset", MAPPERS)
def test_mapper_fuzz(synthetic_root, tmp_path, mapper_name, dataset):
    cfg = _cfg(mapper_name, dataset)
    mapper = RobustDatasetMapper(build_dataset_mapper(cfg, True), max_consecutive_failures=1000)
    base = DatasetCatalog.get(dataset)[0]
    set_skip_log(str(tmp_path / "skips.jsonl"))
    try:
        for kind in KINDS:
            made = _corrupt(kind, base, str(tmp_path))
            if made is None:
                continue
            d, bad_file, expect = made
            before = len(read_skip_log())
            torch.manual_seed(0)
            out = mapper(d)
            recs = read_skip_log()[before:]
            if expect == "skip":
                assert out is None, kind
                assert [r["file"] for r in recs] == [bad_file], (kind, recs)
                assert len(recs[0]["reason"]) > 20, recs  # says why, not just "AssertionError"
                continue
            assert out is not None, (kind, recs)
            assert recs == [], kind
            image = out["image"]
            assert image.dtype == torch.uint8 and image.dim() == 3 and image.shape[0] == 3, kind
            inst = out["instances"]
            assert inst.gt_masks.shape[-2:] == image.shape[-2:], kind
            assert ((inst.gt_classes >= 0) & (inst.gt_classes < NUM_CLASSES)).all(), kind
            if kind == "no_segments" or (kind == "bad_polygons"):
                assert len(inst) <= len(d.get("annotations", d.get("segments_info", []))), kind
            if kind == "no_segments" and "sem_seg" not in out:
                assert len(inst) == 0
            if isinstance(expect, tuple):
                # colour conversions: the 8-bit content must survive (not clipped to white)
                mode, ref = expect
                if mode == "gray":
                    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])
                pix = image.float()
                assert 0.5 * ref.mean() < pix[pix < 255].mean() < 1.5 * ref.mean() + 1, kind
                assert (pix == 255).float().mean() < 0.5, kind
    finally:
        set_skip_log(None)
