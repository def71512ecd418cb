"""The datasets/prepare_*.py scripts on small inputs in the raw release formats."""

import importlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mask2former.data.datasets.builtin_categories import (
    ADE20K_150_CATEGORIES,
    COCO_PANOPTIC_CATEGORIES,
)
from mask2former.data.datasets.panoptic import rgb2id
from mask2former.data.datasets.testing import write_ade20k_raw_sample

import helpers

REPO = Path(helpers.REPO)
COCO_SAMPLE = Path(helpers.COCO_SAMPLE)


def script(name):
    if str(REPO / "datasets") not in sys.path:
        sys.path.insert(0, str(REPO / "datasets"))
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def ade(tmp_path_factory):
    d = tmp_path_factory.mktemp("ade") / "ADEChallengeData2016"
    mapping = write_ade20k_raw_sample(str(d), num_images=3, seed=11)
    for name in ("prepare_ade20k_sem_seg", "prepare_ade20k_pan_seg", "prepare_ade20k_ins_seg"):
        script(name).main(["--dataset-dir", str(d), "--workers", "2"])
    return d, mapping


def test_ade20k_sem_seg_shifts_labels(ade):
    d, _ = ade
    for split in ("training", "validation"):
        for f in sorted((d / "annotations" / split).iterdir()):
            raw = np.asarray(Image.open(f))
            out = np.asarray(Image.open(d / "annotations_detectron2" / split / f.name))
            assert out.dtype == np.uint8 and out.shape == raw.shape
            assert (out[raw == 0] == 255).all()
            assert (out[raw > 0] == raw[raw > 0] - 1).all()
            assert (raw == 0).any()  # the sample has void pixels


def test_ade20k_panoptic(ade):
    d, _ = ade
    for split, dirname in (("train", "training"), ("val", "validation")):
        pan = json.loads((d / f"ade20k_panoptic_{split}.json").read_text())
        assert [c["id"] for c in pan["categories"]] == list(range(150))
        assert [c["isthing"] for c in pan["categories"]] == [
            c["isthing"] for c in ADE20K_150_CATEGORIES
        ]
        assert [im["id"] for im in pan["images"]] == [1, 2, 3]
        for ann in pan["annotations"]:
            ids = rgb2id(np.asarray(Image.open(d / f"ade20k_panoptic_{split}" / ann["file_name"])))
            raw = np.asarray(Image.open(d / "annotations" / dirname / ann["file_name"])).astype(int)
            inst = np.asarray(Image.open(d / "annotations_instance" / dirname / ann["file_name"]))
            assert set(np.unique(ids)) - {0} == {s["id"] for s in ann["segments_info"]}
            things = 0
            for s in ann["segments_info"]:
                m = ids == s["id"]
                assert s["area"] == m.sum()
                # the category matches the semantic label under the segment (via the mapping file)
                assert (raw[m] - 1 == s["category_id"]).all()
                things += ADE20K_150_CATEGORIES[s["category_id"]]["isthing"]
            n_instances = len({tuple(p) for p in inst[..., :2][inst[..., 1] > 0]})
            assert things == n_instances >= 2
            # thing pixels without an instance annotation are void; void stays void
            thing_cls = np.isin(raw - 1, [c["id"] for c in ADE20K_150_CATEGORIES if c["isthing"]])
            assert (ids[thing_cls & (inst[..., 1] == 0)] == 0).all()
            assert (ids[raw == 0] == 0).all()


def test_ade20k_instances(ade):
    import pycocotools.mask as mask_util

    d, mapping = ade
    ins = json.loads((d / "ade20k_instance_val.json").read_text())
    assert len(ins["categories"]) == 100
    assert [a["id"] for a in ins["annotations"]] == list(range(1, len(ins["annotations"]) + 1))
    for a in ins["annotations"]:
        img = next(i for i in ins["images"] if i["id"] == a["image_id"])
        raw = np.asarray(
            Image.open(d / "annotations" / "validation" / img["file_name"].replace(".jpg", ".png"))
        ).astype(int)
        m = mask_util.decode(a["segmentation"]).astype(bool)
        assert m.sum() == a["area"] > 0
        assert (raw[m] - 1 == a["category_id"]).all()
        assert a["category_id"] in mapping.values()


def test_ade20k_mapping_file_is_used(ade, tmp_path, capsys):
    """Without categoryMapping.txt the built-in order is assumed (with a warning): the sample's
    shuffled numbering then gives different categories, proving the file is read."""
    d, _ = ade
    copy = tmp_path / "ADEChallengeData2016"
    shutil.copytree(d / "images", copy / "images")
    shutil.copytree(d / "annotations_instance", copy / "annotations_instance")
    script("prepare_ade20k_ins_seg").main(["--dataset-dir", str(copy), "--workers", "1"])
    assert "categoryMapping.txt not found" in capsys.readouterr().err
    ours = json.loads((copy / "ade20k_instance_val.json").read_text())["annotations"]
    ref = json.loads((d / "ade20k_instance_val.json").read_text())["annotations"]
    assert [a["area"] for a in ours] == [a["area"] for a in ref]
    assert [a["category_id"] for a in ours] != [a["category_id"] for a in ref]


def test_coco_semantic_from_panoptic_on_real_sample(tmp_path):
    coco = tmp_path / "coco"
    (coco / "annotations").mkdir(parents=True)
    shutil.copy(
        COCO_SAMPLE / "panoptic_examples.json", coco / "annotations" / "panoptic_val2017.json"
    )
    shutil.copytree(COCO_SAMPLE / "panoptic_examples", coco / "panoptic_val2017")
    script("prepare_coco_semantic_annos_from_panoptic_annos").main(
        ["--dataset-dir", str(coco), "--splits", "val2017", "--workers", "2"]
    )
    # expected contiguous ids from the sample's own category file (independent of our lists)
    cats = json.loads((COCO_SAMPLE / "panoptic_coco_categories.json").read_text())
    assert [c["id"] for c in cats] == [c["id"] for c in COCO_PANOPTIC_CATEGORIES]
    contiguous = {c["id"]: i for i, c in enumerate(cats)}
    pan = json.loads((COCO_SAMPLE / "panoptic_examples.json").read_text())
    for ann in pan["annotations"]:
        sem = np.asarray(Image.open(coco / "panoptic_semseg_val2017" / ann["file_name"]))
        ids = rgb2id(np.asarray(Image.open(COCO_SAMPLE / "panoptic_examples" / ann["file_name"])))
        assert sem.dtype == np.uint8 and sem.shape == ids.shape
        assert (sem[ids == 0] == 255).all()
        for s in ann["segments_info"]:
            assert (sem[ids == s["id"]] == contiguous[s["category_id"]]).all()


@pytest.mark.parametrize(
    "name,args,expected",
    [
        ("prepare_ade20k_sem_seg", [], "annotations"),
        ("prepare_ade20k_pan_seg", [], "images"),
        ("prepare_ade20k_ins_seg", [], "images"),
        (
            "prepare_coco_semantic_annos_from_panoptic_annos",
            ["--splits", "val2017"],
            "panoptic_val2017.json",
        ),
    ],
)
def test_missing_inputs_exit_with_clear_message(tmp_path, name, args, expected):
    with pytest.raises(SystemExit) as e:
        script(name).main(["--dataset-dir", str(tmp_path / "nothing")] + args)
    assert str(tmp_path / "nothing") in str(e.value) and expected in str(e.value)
