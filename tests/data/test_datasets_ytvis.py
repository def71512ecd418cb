"""The YouTube-VIS loader and registrations (SPEC §9): a hand-written JSON with compressed and
uncompressed RLE, polygons and absent frames; builtin names; clear errors for missing or bad
files."""

import json

import numpy as np
import pycocotools.mask as mask_util
import pytest
from PIL import Image

import mask2former  # noqa: F401  (registers the datasets)
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from mask2former.data.datasets import (
    DatasetNotFoundError,
    load_ytvis_json,
    register_all,
    register_ytvis_instances,
)
from mask2former.data.datasets.testing import registered_at, unregister
from mask2former.data.datasets.ytvis import YTVIS_SPLITS, register_all_ytvis

H, W = 6, 8
YTVIS_NAMES = sorted(YTVIS_SPLITS)


def _mask(y0, y1, x0, x1):
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def _uncompressed(m):
    """Column-major run lengths starting with zeros, written out by hand (not via pycocotools)."""
    flat = m.reshape(-1, order="F").tolist()
    counts, cur, run = [], 0, 0
    for v in flat:
        if v == cur:
            run += 1
        else:
            counts.append(run)
            cur, run = v, 1
    counts.append(run)
    return {"size": [H, W], "counts": counts}


def _compressed(m):
    rle = mask_util.encode(np.asfortranarray(m))
    return {"size": [H, W], "counts": rle["counts"].decode("ascii")}


MASK_A0, MASK_A1 = _mask(1, 3, 2, 5), _mask(2, 5, 0, 3)
POLY = [[4.0, 1.0, 7.0, 1.0, 7.0, 4.0, 4.0, 4.0]]  # a 3x3 square


def _write(tmp_path, **overrides):
    """ytvis/train.json + ytvis/train/JPEGImages/vid{A,B}/{00000,00005,00010}.jpg;
    returns (json, image_root)."""
    d = tmp_path / "ytvis"
    image_root = d / "train" / "JPEGImages"
    videos = []
    for vid, name in ((1, "vidA"), (2, "vidB")):
        (image_root / name).mkdir(parents=True)
        names = [f"{name}/{5 * t:05d}.jpg" for t in range(3)]
        for n in names:
            Image.fromarray(np.full((H, W, 3), 100, np.uint8)).save(image_root / n)
        videos.append({"id": vid, "width": W, "height": H, "length": 3, "file_names": names})
    data = {
        "videos": videos,
        "categories": [{"id": 4, "name": "parrot"}, {"id": 9, "name": "snake"}],
        "annotations": [
            {  # track 7: compressed RLE, uncompressed RLE, absent
                "id": 7, "video_id": 1, "category_id": 9, "iscrowd": 0,
                "segmentations": [_compressed(MASK_A0), _uncompressed(MASK_A1), None],
                "bboxes": [[2, 1, 3, 2], [0, 2, 3, 3], None],
                "areas": [6, 9, None],
            },
            {  # track 3: absent, polygon without bbox, only an invalid polygon (= absent)
                "id": 3, "video_id": 1, "category_id": 4, "iscrowd": 0,
                "segmentations": [None, POLY, [[1.0, 1.0, 2.0, 2.0]]],
                "bboxes": [None, None, [1, 1, 1, 1]],
                "areas": [None, 9, 1],
            },
        ],
    }
    data.update(overrides)
    json_file = d / "train.json"
    json_file.write_text(json.dumps(data))
    return str(json_file), str(image_root)


def test_loader_per_video_per_frame_dicts(tmp_path):
    json_file, image_root = _write(tmp_path)
    name = "_test_ytvis_loader"
    unregister(name)
    meta = {"thing_classes": ["parrot", "snake"], "thing_dataset_id_to_contiguous_id": {4: 0, 9: 1}}
    register_ytvis_instances(name, meta, json_file, image_root)
    try:
        assert MetadataCatalog.get(name).evaluator_type == "ytvis"
        assert MetadataCatalog.get(name).json_file == json_file
        records = DatasetCatalog.get(name)
    finally:
        unregister(name)
    assert [r["video_id"] for r in records] == [1, 2]
    r = records[0]
    assert (r["height"], r["width"], r["length"]) == (H, W, 3)
    assert r["file_names"] == [f"{image_root}/vidA/{n}.jpg" for n in ("00000", "00005", "00010")]
    ann = r["annotations"]
    assert len(ann) == 3 and [len(f) for f in ann] == [1, 2, 0]
    assert records[1]["annotations"] == [[], [], []]  # no tracks in video 2

    a0 = ann[0][0]
    assert set(a0) == {"id", "category_id", "segmentation", "bbox", "bbox_mode", "iscrowd"}
    assert a0["id"] == 7 and a0["category_id"] == 1 and a0["bbox_mode"] == BoxMode.XYWH_ABS
    assert (mask_util.decode(a0["segmentation"]) == MASK_A0).all()
    a1 = {a["id"]: a for a in ann[1]}
    assert (mask_util.decode(a1[7]["segmentation"]) == MASK_A1).all()  # uncompressed decoded
    assert a1[7]["bbox"] == [0, 2, 3, 3]
    assert a1[3]["category_id"] == 0 and a1[3]["segmentation"] == POLY
    assert a1[3]["bbox"] == [4.0, 1.0, 3.0, 3.0]  # computed from the polygon


def test_loader_without_metadata_uses_json_categories(tmp_path):
    json_file, image_root = _write(tmp_path)
    name = "_test_ytvis_user"
    unregister(name)
    register_ytvis_instances(name, {}, json_file, image_root)
    try:
        records = DatasetCatalog.get(name)
        meta = MetadataCatalog.get(name)
        assert meta.thing_classes == ["parrot", "snake"]
        assert meta.thing_dataset_id_to_contiguous_id == {4: 0, 9: 1}
    finally:
        unregister(name)
    assert records[0]["annotations"][0][0]["category_id"] == 1
    # without a dataset name (nothing registered) the JSON's categories are used as well
    assert load_ytvis_json(json_file, image_root)[0]["annotations"][1][1]["category_id"] == 0


def test_unannotated_split_has_no_annotations_key(tmp_path):
    json_file, image_root = _write(tmp_path)
    data = json.loads(open(json_file).read())
    del data["annotations"]
    with open(json_file, "w") as f:
        json.dump(data, f)
    records = load_ytvis_json(json_file, image_root)
    assert len(records) == 2 and all("annotations" not in r for r in records)


@pytest.mark.parametrize(
    "override, match",
    [
        ({"videos": None}, "not a YouTube-VIS annotation file"),
        ({"videos": []}, "no videos"),
        (
            {"annotations": [{"id": 1, "video_id": 1, "category_id": 5,
                              "segmentations": [None] * 3}]},
            "category id 5",
        ),
        (
            {"annotations": [{"id": 1, "video_id": 1, "category_id": 4, "segmentations": [None]}]},
            "one entry .* per frame",
        ),
        (
            {"annotations": [{"id": 1, "video_id": 99, "category_id": 4, "segmentations": []}]},
            "unknown video ids",
        ),
        (
            {
                "annotations": [
                    {
                        "id": 2, "video_id": 1, "category_id": 4,
                        "segmentations": [{"size": [3, 3], "counts": [9]}, None, None],
                    }
                ]
            },
            "annotation 2 .*frame 0: RLE of size",
        ),
    ],
)
def test_malformed_json_raises_clear_error(tmp_path, override, match):
    json_file, image_root = _write(tmp_path, **override)
    with pytest.raises(ValueError, match=match):
        load_ytvis_json(json_file, image_root)


def test_invalid_json_names_the_file(tmp_path):
    json_file, image_root = _write(tmp_path)
    with open(json_file, "w") as f:
        f.write("{not json")
    with pytest.raises(ValueError, match="train.json is not valid JSON"):
        load_ytvis_json(json_file, image_root)


@pytest.mark.parametrize("year", [2019, 2021])
@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_builtin_registration(year, split):
    from mask2former.data.datasets.ytvis_categories import (
        YTVIS_CATEGORIES_2019,
        YTVIS_CATEGORIES_2021,
    )

    cats = {2019: YTVIS_CATEGORIES_2019, 2021: YTVIS_CATEGORIES_2021}[year]
    meta = MetadataCatalog.get(f"ytvis_{year}_{split}")
    assert meta.evaluator_type == "ytvis"
    assert meta.thing_classes == [c["name"] for c in cats] and len(cats) == 40
    assert meta.thing_colors == [c["color"] for c in cats]
    assert meta.thing_dataset_id_to_contiguous_id == {i + 1: i for i in range(40)}
    folder = {"train": "train", "val": "valid", "test": "test"}[split]
    assert meta.json_file.endswith(f"ytvis_{year}/{folder}.json")
    assert meta.image_root.endswith(f"ytvis_{year}/{folder}/JPEGImages")


def test_class_lists_spot_check():
    """A few entries of the original class lists (person first in 2019, airplane in 2021)."""
    m19, m21 = MetadataCatalog.get("ytvis_2019_val"), MetadataCatalog.get("ytvis_2021_val")
    assert m19.thing_classes[0] == "person" and m19.thing_colors[0] == [220, 20, 60]
    assert m21.thing_classes[0] == "airplane" and "giant_panda" in m21.thing_classes


@pytest.mark.parametrize("name", YTVIS_NAMES)
def test_missing_dataset_gives_clear_error(name, tmp_path, monkeypatch):
    with registered_at(YTVIS_NAMES, register_all_ytvis, tmp_path), monkeypatch.context() as m:
        m.setenv("DETECTRON2_DATASETS", str(tmp_path))
        with pytest.raises(DatasetNotFoundError) as e:
            DatasetCatalog.get(name)
    msg = str(e.value)
    assert str(tmp_path) in msg and "DETECTRON2_DATASETS" in msg and name in msg


def test_missing_frame_folder_and_first_frame(tmp_path):
    root = tmp_path / "root"
    json_file, image_root = _write(root)
    # builtin layout: ytvis_2019/train.json + ytvis_2019/train/JPEGImages
    (root / "ytvis").rename(root / "ytvis_2019")
    with registered_at(YTVIS_NAMES, register_all_ytvis, root):
        assert len(DatasetCatalog.get("ytvis_2019_train")) == 2
        (root / "ytvis_2019" / "train" / "JPEGImages" / "vidA" / "00000.jpg").unlink()
        with pytest.raises(DatasetNotFoundError, match="vidA/00000.jpg"):
            DatasetCatalog.get("ytvis_2019_train")
        for f in (root / "ytvis_2019" / "train" / "JPEGImages").glob("*/*"):
            f.unlink()
        for d in (root / "ytvis_2019" / "train" / "JPEGImages").glob("*"):
            d.rmdir()
        with pytest.raises(DatasetNotFoundError, match="JPEGImages' is an empty directory"):
            DatasetCatalog.get("ytvis_2019_train")


def test_register_all_is_idempotent_and_restores_default_root():
    before = {n: MetadataCatalog.get(n).as_dict() for n in YTVIS_NAMES}
    register_all()
    assert {n: MetadataCatalog.get(n).as_dict() for n in YTVIS_NAMES} == before
