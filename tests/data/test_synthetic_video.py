"""The synthetic video generator: YouTube-VIS format (every RLE decodes, frames exist, boxes and
areas match), objects entering/leaving, occlusion, determinism, registration and the loader."""

import filecmp
import json
import os

import numpy as np
import pycocotools.mask as mask_util
import pytest
from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog

from mask2former.data.datasets import register_synthetic_ytvis
from mask2former.data.datasets.testing import unregister
from mask2former.data.synthetic_video import (
    SYNTHETIC_YTVIS_CATEGORIES,
    generate_synthetic_ytvis,
    main,
    mask_to_rle,
)

NAMES = ["synthetic_ytvis_train", "synthetic_ytvis_val"]
SIZE = dict(height=64, width=96)


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    root = tmp_path_factory.mktemp("synv")
    generate_synthetic_ytvis(
        str(root), num_train=10, num_val=3, seed=2, min_frames=5, max_frames=8, **SIZE
    )
    return root / "synthetic_ytvis"


def _decode(segm):
    """Uncompressed (list counts) or compressed (string counts) RLE -> bool mask."""
    h, w = segm["size"]
    if isinstance(segm["counts"], list):
        segm = mask_util.frPyObjects(segm, h, w)
    return mask_util.decode(segm).astype(bool)


def _all_files(d):
    return sorted(os.path.relpath(os.path.join(p, f), d) for p, _, fs in os.walk(d) for f in fs)


@pytest.mark.parametrize("folder", ["train", "valid"])
def test_format_is_youtube_vis(syn, folder):
    data = json.loads((syn / f"{folder}.json").read_text())
    assert data["categories"] == SYNTHETIC_YTVIS_CATEGORIES
    assert [c["id"] for c in data["categories"]] == [1, 2, 3, 5]
    videos = {v["id"]: v for v in data["videos"]}
    assert len(videos) == (10 if folder == "train" else 3)
    for v in videos.values():
        assert 5 <= v["length"] <= 8 and len(v["file_names"]) == v["length"]
        for f in v["file_names"]:
            img = Image.open(syn / folder / "JPEGImages" / f)
            assert img.size == (v["width"], v["height"]) == (96, 64) and img.mode == "RGB"
    assert len({a["id"] for a in data["annotations"]}) == len(data["annotations"])
    for a in data["annotations"]:
        v = videos[a["video_id"]]
        assert a["category_id"] in (1, 2, 3, 5) and a["iscrowd"] == 0
        assert len(a["segmentations"]) == len(a["bboxes"]) == len(a["areas"]) == v["length"]
        assert any(s is not None for s in a["segmentations"])
        for segm, box, area in zip(a["segmentations"], a["bboxes"], a["areas"]):
            if segm is None:
                assert box is None and area is None
                continue
            assert isinstance(segm["counts"], list)  # uncompressed, as YouTube-VIS train.json
            m = _decode(segm)
            assert m.shape == (v["height"], v["width"]) and m.sum() == area
            ys, xs = np.nonzero(m)
            assert box == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


def test_objects_enter_leave_and_occlude(syn):
    data = json.loads((syn / "train.json").read_text())
    segs = [a["segmentations"] for a in data["annotations"]]
    assert any(s[0] is None and s[-1] is not None for s in segs)  # enters
    assert any(s[0] is not None and s[-1] is None for s in segs)  # leaves
    n_tracks = [sum(a["video_id"] == v["id"] for a in data["annotations"]) for v in data["videos"]]
    assert min(n_tracks) >= 1 and max(n_tracks) <= 4 and max(n_tracks) >= 3
    # masks of one frame never overlap (the visible parts), and some object is partly hidden:
    # its visible area shrinks while another object overlaps its box
    occluded = False
    for v in data["videos"]:
        tracks = [a for a in data["annotations"] if a["video_id"] == v["id"]]
        for t in range(v["length"]):
            masks = [_decode(a["segmentations"][t]) for a in tracks if a["segmentations"][t]]
            if len(masks) > 1:
                assert np.stack(masks).sum(0).max() == 1
                occluded |= any(
                    _touching(m1, m2) for i, m1 in enumerate(masks) for m2 in masks[i + 1 :]
                )
    assert occluded


def _touching(m1, m2):
    """Visible masks that share a border (one hides part of the other)."""
    grown = m1.copy()
    grown[1:] |= m1[:-1]
    grown[:-1] |= m1[1:]
    grown[:, 1:] |= m1[:, :-1]
    grown[:, :-1] |= m1[:, 1:]
    return bool((grown & m2).any())


def test_objects_move(syn):
    data = json.loads((syn / "train.json").read_text())
    moved = 0
    for a in data["annotations"]:
        boxes = [b for b in a["bboxes"] if b is not None]
        moved += len({tuple(b[:2]) for b in boxes}) > 1
    assert moved >= len(data["annotations"]) // 2


def test_deterministic_from_seed(tmp_path):
    kw = dict(num_train=2, num_val=1, min_frames=3, max_frames=4, **SIZE)
    a = generate_synthetic_ytvis(str(tmp_path / "a"), seed=3, **kw)
    b = generate_synthetic_ytvis(str(tmp_path / "b"), seed=3, **kw)
    c = generate_synthetic_ytvis(str(tmp_path / "c"), seed=4, **kw)
    files = _all_files(a)
    assert files == _all_files(b) and "train.json" in files and "valid.json" in files
    _, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert not mismatch and not errors
    assert not filecmp.cmp(
        os.path.join(a, "train.json"), os.path.join(c, "train.json"), shallow=False
    )


def test_rle_encodings_round_trip():
    rng = np.random.default_rng(0)
    for m in (rng.random((7, 5)) > 0.5, np.ones((3, 4), bool), np.zeros((3, 4), bool)):
        for compressed in (False, True):
            rle = mask_to_rle(m, compressed)
            assert rle["size"] == list(m.shape)
            assert isinstance(rle["counts"], str if compressed else list)
            json.dumps(rle)
            assert (_decode(rle) == m).all()


def test_cli_compressed(tmp_path):
    out = main(
        [
            "--root",
            str(tmp_path),
            "--num-train",
            "1",
            "--num-val",
            "0",
            "--height",
            "40",
            "--width",
            "48",
            "--min-frames",
            "2",
            "--max-frames",
            "2",
            "--rle",
            "compressed",
        ]
    )
    data = json.loads((tmp_path / "synthetic_ytvis" / "train.json").read_text())
    assert (
        out == str(tmp_path / "synthetic_ytvis")
        and not (tmp_path / "synthetic_ytvis" / "valid.json").exists()
    )
    segs = [s for a in data["annotations"] for s in a["segmentations"] if s is not None]
    assert segs and all(isinstance(s["counts"], str) for s in segs)


def test_bad_arguments():
    with pytest.raises(ValueError, match="min_frames"):
        generate_synthetic_ytvis("unused", min_frames=5, max_frames=4)
    with pytest.raises(ValueError, match=">= 32"):
        generate_synthetic_ytvis("unused", height=16)


def test_registration_and_loader(syn, tmp_path):
    root = str(syn.parent)
    register_synthetic_ytvis(root)
    register_synthetic_ytvis(root)  # same root: no-op
    try:
        meta = MetadataCatalog.get("synthetic_ytvis_train")
        assert meta.evaluator_type == "ytvis"
        assert meta.thing_classes == ["circle", "square", "triangle", "star"]
        assert meta.thing_dataset_id_to_contiguous_id == {1: 0, 2: 1, 3: 2, 5: 3}
        train = DatasetCatalog.get("synthetic_ytvis_train")
        val = DatasetCatalog.get("synthetic_ytvis_val")
        assert len(train) == 10 and len(val) == 3
        data = json.loads((syn / "train.json").read_text())
        n_present = sum(s is not None for a in data["annotations"] for s in a["segmentations"])
        assert sum(len(f) for r in train for f in r["annotations"]) == n_present
        for r in train:
            assert len(r["annotations"]) == r["length"] == len(r["file_names"])
            assert all(os.path.isfile(f) for f in r["file_names"])
            for frame in r["annotations"]:
                assert all(0 <= a["category_id"] < 4 for a in frame)
        register_synthetic_ytvis(str(tmp_path))  # another root re-registers there
        assert MetadataCatalog.get("synthetic_ytvis_val").json_file.startswith(str(tmp_path))
        with pytest.raises(FileNotFoundError, match="DETECTRON2_DATASETS"):
            DatasetCatalog.get("synthetic_ytvis_val")
    finally:
        for n in NAMES:
            unregister(n)
