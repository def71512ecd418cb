"""The synthetic dataset generator: determinism, real-format round trips, registration and a
learnability sanity check."""

import filecmp
import json
import os

import numpy as np
import pycocotools.mask as mask_util
import pytest
from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog

from mask2former.data.datasets import register_synthetic
from mask2former.data.datasets.testing import unregister
from mask2former.data.synthetic import SYNTHETIC_CATEGORIES, generate_synthetic_dataset, main

SYN_NAMES = [
    f"synthetic_{v}_{s}" for v in ("panoptic", "instance", "sem_seg") for s in ("train", "val")
]


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    generate_synthetic_dataset(str(root), num_train=6, num_val=3, seed=5, image_size=80)
    return root / "synthetic"


def _all_files(d):
    return sorted(os.path.relpath(os.path.join(p, f), d) for p, _, fs in os.walk(d) for f in fs)


def test_deterministic_from_seed(tmp_path):
    a = generate_synthetic_dataset(str(tmp_path / "a"), 2, 1, seed=3, image_size=64)
    b = generate_synthetic_dataset(str(tmp_path / "b"), 2, 1, seed=3, image_size=64)
    c = generate_synthetic_dataset(str(tmp_path / "c"), 2, 1, seed=4, image_size=64)
    files = _all_files(a)
    assert (
        files == _all_files(b) and len(files) == 3 * 3 + 4
    )  # 3 images x (jpg, panoptic, semantic) + 4 JSON
    _, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert not mismatch and not errors
    _, mismatch_c, _ = filecmp.cmpfiles(a, c, files, shallow=False)
    assert any(f.endswith(".png") and "panoptic_train" in f for f in mismatch_c)


def test_cli_writes_dataset(tmp_path):
    out = main(
        [
            "--root",
            str(tmp_path),
            "--num-train",
            "1",
            "--num-val",
            "1",
            "--seed",
            "0",
            "--image-size",
            "48",
        ]
    )
    assert out == str(tmp_path / "synthetic")
    img = Image.open(tmp_path / "synthetic" / "images" / "val" / "000000.jpg")
    assert img.size == (48, 48) and img.mode == "RGB"


def test_panoptic_json_and_png_round_trip(syn):
    from panopticapi.utils import rgb2id

    pan = json.loads((syn / "annotations" / "panoptic_train.json").read_text())
    assert pan["categories"] == SYNTHETIC_CATEGORIES
    assert all("isthing" in c for c in pan["categories"])
    cats = {c["id"]: c for c in pan["categories"]}
    images = {im["id"]: im for im in pan["images"]}
    to_contiguous = {c["id"]: i for i, c in enumerate(SYNTHETIC_CATEGORIES)}
    n_things = 0
    for ann in pan["annotations"]:
        ids = rgb2id(np.asarray(Image.open(syn / "panoptic_train" / ann["file_name"])))
        im = images[ann["image_id"]]
        assert ids.shape == (im["height"], im["width"])
        seg_ids = [s["id"] for s in ann["segments_info"]]
        assert len(set(seg_ids)) == len(seg_ids)
        assert set(np.unique(ids)) - {0} == set(seg_ids)
        sem = np.asarray(Image.open(syn / "panoptic_semseg_train" / ann["file_name"]))
        assert (sem[ids == 0] == 255).all()
        for s in ann["segments_info"]:
            m = ids == s["id"]
            assert s["area"] == m.sum()
            ys, xs = np.nonzero(m)
            assert s["bbox"] == [
                xs.min(),
                ys.min(),
                xs.max() - xs.min() + 1,
                ys.max() - ys.min() + 1,
            ]
            assert (sem[m] == to_contiguous[s["category_id"]]).all()
            n_things += cats[s["category_id"]]["isthing"]
    assert n_things >= 6  # several instances per image
    assert (syn / "images" / "train" / pan["images"][0]["file_name"]).is_file()


def test_instance_json_matches_panoptic(syn):
    from panopticapi.utils import rgb2id

    pan = json.loads((syn / "annotations" / "panoptic_val.json").read_text())
    ins = json.loads((syn / "annotations" / "instances_val.json").read_text())
    assert [c["id"] for c in ins["categories"]] == [1, 2, 3, 5]
    assert len({a["id"] for a in ins["annotations"]}) == len(ins["annotations"])
    assert min(a["id"] for a in ins["annotations"]) >= 1  # COCOeval treats id 0 as "no match"
    by_image = {}
    for a in ins["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    for ann in pan["annotations"]:
        ids = rgb2id(np.asarray(Image.open(syn / "panoptic_val" / ann["file_name"])))
        things = [s for s in ann["segments_info"] if s["category_id"] in (1, 2, 3, 5)]
        got = by_image.get(ann["image_id"], [])
        assert len(got) == len(things)
        for s, a in zip(things, got):
            assert a["category_id"] == s["category_id"] and a["area"] == s["area"]
            assert (mask_util.decode(a["segmentation"]).astype(bool) == (ids == s["id"])).all()


def test_registration_views_and_idempotence(syn, tmp_path):
    root = str(syn.parent)
    register_synthetic(root)
    register_synthetic(root)  # same root: no-op
    try:
        pan = DatasetCatalog.get("synthetic_panoptic_train")
        assert len(pan) == 6 and {"sem_seg_file_name", "pan_seg_file_name"} <= set(pan[0])
        meta = MetadataCatalog.get("synthetic_panoptic_train")
        assert meta.evaluator_type == "coco_panoptic_seg"
        assert meta.thing_dataset_id_to_contiguous_id == {1: 0, 2: 1, 3: 2, 5: 3}
        assert len(meta.stuff_dataset_id_to_contiguous_id) == 7 and meta.ignore_label == 255
        for key in ("panoptic_root", "panoptic_json", "json_file", "sem_seg_root", "image_root"):
            assert os.path.exists(meta.get(key)), key
        ins = DatasetCatalog.get("synthetic_instance_val")
        assert len(ins) == 3 and all(
            0 <= a["category_id"] < 4 for r in ins for a in r["annotations"]
        )
        sem = DatasetCatalog.get("synthetic_sem_seg_val")
        assert len(sem) == 3 and MetadataCatalog.get("synthetic_sem_seg_val").stuff_classes == [
            c["name"] for c in SYNTHETIC_CATEGORIES
        ]
        # another root re-registers the names there
        register_synthetic(str(tmp_path))
        assert MetadataCatalog.get("synthetic_panoptic_val").image_root.startswith(str(tmp_path))
        with pytest.raises(FileNotFoundError, match="DETECTRON2_DATASETS"):
            DatasetCatalog.get("synthetic_panoptic_val")
    finally:
        for n in SYN_NAMES:
            unregister(n)


def test_classes_are_separable_by_colour(syn):
    """Learnability sanity check: a nearest-mean-colour pixel classifier fitted on train
    already labels most val pixels right (a small network should do far better)."""

    def pixels(split):
        X, y = [], []
        for f in sorted(os.listdir(syn / f"panoptic_semseg_{split}")):
            sem = np.asarray(Image.open(syn / f"panoptic_semseg_{split}" / f)).reshape(-1)
            img = np.asarray(Image.open(syn / "images" / split / f.replace(".png", ".jpg")))
            keep = sem != 255
            X.append(img.reshape(-1, 3)[keep].astype(np.float32))
            y.append(sem[keep])
        return np.concatenate(X), np.concatenate(y)

    X, y = pixels("train")
    means = np.stack([X[y == k].mean(0) for k in range(len(SYNTHETIC_CATEGORIES))])
    Xv, yv = pixels("val")
    pred = np.argmin(((Xv[:, None] - means[None]) ** 2).sum(-1), 1)
    assert (pred == yv).mean() > 0.7
