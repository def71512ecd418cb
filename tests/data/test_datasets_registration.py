"""Registration of the SPEC §7 datasets: names, metadata, idempotence, and clear errors for
missing / incomplete dataset folders."""

import json
import os
from pathlib import Path

import pytest

import mask2former  # noqa: F401  (registers the datasets)
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.builtin_meta import ADE20K_SEM_SEG_CATEGORIES

from mask2former.data.datasets import DatasetNotFoundError, register_all, register_dataset
from mask2former.data.datasets.testing import registered_at, unregister
from mask2former.data.datasets.ytvis import YTVIS_SPLITS

import helpers

COCO_SAMPLE = Path(helpers.COCO_SAMPLE)  # the repository copy

OURS = {
    # name: (evaluator_type, #stuff_classes, (#thing_classes, #thing ids), ignore_label)
    "coco_2017_{}_panoptic_with_sem_seg": ("coco_panoptic_seg", 133, (80, 80), 255),
    "ade20k_panoptic_{}": ("ade20k_panoptic_seg", 150, (100, 100), 255),
    # as in the original: thing_classes names all 65 classes, 37 of them have instances
    "mapillary_vistas_panoptic_{}": ("mapillary_vistas_panoptic_seg", 65, (65, 37), 65),
    "ade20k_instance_{}": ("coco", None, (100, 100), None),
    "ade20k_full_sem_seg_{}": ("sem_seg", 847, None, 65535),
    "mapillary_vistas_sem_seg_{}": ("sem_seg", 65, None, 65),
}


@pytest.mark.parametrize("pattern", sorted(OURS))
@pytest.mark.parametrize("split", ["train", "val"])
def test_registered_metadata(pattern, split):
    name = pattern.format(split)
    assert name in DatasetCatalog.list()
    meta = MetadataCatalog.get(name)
    etype, n_stuff, n_thing, ignore = OURS[pattern]
    assert meta.evaluator_type == etype
    if n_stuff is not None:
        assert len(meta.stuff_classes) == n_stuff == len(meta.stuff_colors)
    if n_thing is not None:
        n_thing_classes, n_thing_ids = n_thing
        assert len(meta.thing_classes) == n_thing_classes == len(meta.thing_colors)
        assert len(meta.thing_dataset_id_to_contiguous_id) == n_thing_ids
    if ignore is not None:
        assert meta.ignore_label == ignore


@pytest.mark.parametrize("split", ["train", "val"])
def test_ade20k_full_has_the_original_class_list(split):
    """Real names and id maps of MaskFormer v1's ADE20K-full (847 classes), not placeholders."""
    meta = MetadataCatalog.get(f"ade20k_full_sem_seg_{split}")
    names = meta.stuff_classes
    assert len(names) == 847 and len(set(names)) == 847
    assert names[:3] == ["wall", "building, edifice", "sky"]
    assert names[-1] == "adding machine, totalizer, totaliser"
    ids = meta.stuff_dataset_id_to_contiguous_id
    assert sorted(ids.values()) == list(range(847))
    assert ids[2978] == 0 and ids[3148] == 846  # ADE20K ids of "wall" and the last class


@pytest.mark.parametrize("split", ["train", "test"])
def test_coco_stuff_10k(split):
    meta = MetadataCatalog.get(f"coco_2017_{split}_stuff_10k_sem_seg")
    assert meta.evaluator_type == "sem_seg" and meta.ignore_label == 255
    assert len(meta.stuff_classes) == 171 and len(set(meta.stuff_classes)) == 171
    assert meta.stuff_classes[0] == "person" and meta.stuff_classes[-1] == "wood"


@pytest.mark.parametrize(
    "name",
    ["coco_2017_val_panoptic_with_sem_seg", "ade20k_panoptic_val", "mapillary_vistas_panoptic_val"],
)
def test_panoptic_id_maps_index_full_class_list(name):
    meta = MetadataCatalog.get(name)
    stuff_map, thing_map = (
        meta.stuff_dataset_id_to_contiguous_id,
        meta.thing_dataset_id_to_contiguous_id,
    )
    assert sorted(stuff_map.values()) == list(range(len(meta.stuff_classes)))
    for dataset_id, contiguous in thing_map.items():
        assert stuff_map[dataset_id] == contiguous  # thing ids index into the full list
    if name.startswith("mapillary"):  # thing_classes lists all classes (see test_dataset_facts)
        assert meta.thing_classes == meta.stuff_classes
    else:
        assert [meta.stuff_classes[i] for i in sorted(thing_map.values())] == meta.thing_classes


def test_coco_panoptic_classes_match_the_real_category_file():
    cats = json.loads((COCO_SAMPLE / "panoptic_coco_categories.json").read_text())
    meta = MetadataCatalog.get("coco_2017_train_panoptic_with_sem_seg")
    assert meta.stuff_classes == [c["name"] for c in cats]
    assert meta.stuff_colors == [c["color"] for c in cats]
    assert meta.thing_dataset_id_to_contiguous_id == {
        c["id"]: i for i, c in enumerate(cats) if c["isthing"]
    }


def test_ade20k_class_lists_consistent():
    pan = MetadataCatalog.get("ade20k_panoptic_val")
    ins = MetadataCatalog.get("ade20k_instance_val")
    assert pan.stuff_classes == [n.strip() for n in ADE20K_SEM_SEG_CATEGORIES]
    d2_sem = MetadataCatalog.get("ade20k_sem_seg_val").stuff_classes  # Detectron2's builtin
    assert pan.stuff_classes == [n.strip() for n in d2_sem]
    # instance dataset ids are the 0-based ADE-150 ids of the panoptic thing classes
    assert set(ins.thing_dataset_id_to_contiguous_id) == set(pan.thing_dataset_id_to_contiguous_id)
    assert sorted(ins.thing_dataset_id_to_contiguous_id.values()) == list(range(100))


def test_builtins_are_reused_not_reregistered():
    # Detectron2's own metadata is untouched (our code never registers these names)
    assert MetadataCatalog.get("coco_2017_val_panoptic").evaluator_type == "coco_panoptic_seg"
    assert len(MetadataCatalog.get("coco_2017_val_panoptic").stuff_classes) == 133
    assert MetadataCatalog.get("cityscapes_fine_sem_seg_val").evaluator_type == "cityscapes_sem_seg"


def test_registration_is_idempotent():
    before = {n: MetadataCatalog.get(n).as_dict() for n in DatasetCatalog.list()}
    register_all()  # second registration with the same root: no error, no change
    assert {n: MetadataCatalog.get(n).as_dict() for n in DatasetCatalog.list()} == before


def test_conflicting_registration_raises_or_overwrites():
    name = "test_registration_conflict"
    unregister(name)
    try:
        assert register_dataset(name, lambda: [], {"stuff_classes": ["a"]})
        assert not register_dataset(name, lambda: [], {"stuff_classes": ["a"]})
        with pytest.raises(ValueError, match="already registered"):
            register_dataset(name, lambda: [], {"stuff_classes": ["b"]})
        assert register_dataset(name, lambda: [{"x": 1}], {"stuff_classes": ["b"]}, overwrite=True)
        assert DatasetCatalog.get(name) == [{"x": 1}]
        assert MetadataCatalog.get(name).stuff_classes == ["b"]
    finally:
        unregister(name)


ALL_SPLITS = [
    "coco_2017_train_panoptic_with_sem_seg",
    "coco_2017_val_panoptic_with_sem_seg",
    "coco_2017_train_stuff_10k_sem_seg",
    "coco_2017_test_stuff_10k_sem_seg",
    "ade20k_panoptic_train",
    "ade20k_panoptic_val",
    "ade20k_instance_train",
    "ade20k_instance_val",
    "ade20k_full_sem_seg_train",
    "ade20k_full_sem_seg_val",
    "mapillary_vistas_sem_seg_train",
    "mapillary_vistas_sem_seg_val",
    "mapillary_vistas_panoptic_train",
    "mapillary_vistas_panoptic_val",
    *sorted(YTVIS_SPLITS),  # video (SPEC §9)
]


@pytest.mark.parametrize("name", ALL_SPLITS)
def test_missing_dataset_folder_gives_clear_error(name, tmp_path, monkeypatch):
    with registered_at(ALL_SPLITS, register_all, tmp_path), monkeypatch.context() as m:
        m.setenv("DETECTRON2_DATASETS", str(tmp_path))
        with pytest.raises(DatasetNotFoundError) as e:
            DatasetCatalog.get(name)
    msg = str(e.value)
    assert str(tmp_path) in msg and "DETECTRON2_DATASETS" in msg and name in msg


def test_incomplete_panoptic_dataset_names_missing_file(tmp_path, monkeypatch):
    """JSON and folders exist but the annotated image files are missing."""
    ade = tmp_path / "ADEChallengeData2016"
    for d in ("images/validation", "ade20k_panoptic_val", "annotations_detectron2/validation"):
        (ade / d).mkdir(parents=True)
        (ade / d / "unrelated.txt").write_text("x")
    (ade / "ade20k_panoptic_val.json").write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "ADE_val_00000001.jpg", "height": 4, "width": 4}],
                "annotations": [
                    {"image_id": 1, "file_name": "ADE_val_00000001.png", "segments_info": []}
                ],
                "categories": [],
            }
        )
    )
    with registered_at(ALL_SPLITS, register_all, tmp_path), monkeypatch.context() as m:
        m.setenv("DETECTRON2_DATASETS", str(tmp_path))
        with pytest.raises(DatasetNotFoundError, match="ADE_val_00000001.jpg") as e:
            DatasetCatalog.get("ade20k_panoptic_val")
    assert "DETECTRON2_DATASETS" in str(e.value)


def test_registrations_restored_at_default_root():
    from mask2former.data.datasets._common import get_datasets_root

    expected = os.path.join(get_datasets_root(), "ADEChallengeData2016", "ade20k_panoptic_val.json")
    assert MetadataCatalog.get("ade20k_panoptic_val").panoptic_json == expected


def test_registration_does_not_touch_the_disk(tmp_path):
    """Registering under a non-existent root works; only loading fails."""
    missing = tmp_path / "nowhere"
    with registered_at(ALL_SPLITS, register_all, missing):
        assert not missing.exists()
        assert os.fspath(missing) in MetadataCatalog.get("ade20k_panoptic_val").panoptic_json


def _write_ade_instance_json(tmp_path, category_id, name):
    ade = tmp_path / "ADEChallengeData2016"
    (ade / "images" / "validation").mkdir(parents=True)
    (ade / "images" / "validation" / "ADE_val_00000001.jpg").write_bytes(b"")
    rle = {"size": [4, 4], "counts": "04L4"}  # some pixels set
    (ade / "ade20k_instance_val.json").write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "ADE_val_00000001.jpg", "height": 4, "width": 4}],
                "annotations": [
                    {
                        "id": 1,
                        "image_id": 1,
                        "category_id": category_id,
                        "iscrowd": 0,
                        "bbox": [0, 0, 4, 4],
                        "area": 4,
                        "segmentation": rle,
                    }
                ],
                "categories": [{"id": 12, "name": name}],
            }
        )
    )


def test_instance_json_ids_mapped_with_registered_metadata(tmp_path, caplog):
    """Category ids go through the registered map; other class spellings only warn."""
    _write_ade_instance_json(tmp_path, 12, "a differently spelled person")
    with registered_at(ALL_SPLITS, register_all, tmp_path):
        records = DatasetCatalog.get("ade20k_instance_val")
        meta = MetadataCatalog.get("ade20k_instance_val")
    assert records[0]["annotations"][0]["category_id"] == meta.thing_classes.index("person")
    assert meta.thing_classes[0] == "bed"  # not overwritten by the JSON
    assert "differ from the registered" in caplog.text


def test_instance_json_with_unknown_category_raises(tmp_path):
    _write_ade_instance_json(tmp_path, 0, "wall")  # "wall" is not an instance class
    with registered_at(ALL_SPLITS, register_all, tmp_path):
        with pytest.raises(ValueError, match="category id 0"):
            DatasetCatalog.get("ade20k_instance_val")


@pytest.mark.parametrize(
    "name",
    ["ade20k_sem_seg_val", "cityscapes_fine_sem_seg_val", "cityscapes_fine_instance_seg_val"],
)
def test_missing_builtin_dataset_gives_clear_error(name, tmp_path):
    from detectron2.data.datasets.builtin import register_all_ade20k, register_all_cityscapes

    if name.startswith("ade20k"):
        names, fn = ["ade20k_sem_seg_train", "ade20k_sem_seg_val"], register_all_ade20k
    else:
        names = [
            f"cityscapes_fine_{t}_{s}"
            for t in ("instance_seg", "sem_seg")
            for s in ("train", "val", "test")
        ]
        fn = register_all_cityscapes
    with registered_at(names, fn, tmp_path):
        with pytest.raises(DatasetNotFoundError, match="DETECTRON2_DATASETS") as e:
            DatasetCatalog.get(name)
    assert str(tmp_path) in str(e.value)
    # metadata is Detectron2's own
    assert MetadataCatalog.get(name).evaluator_type in (
        "sem_seg",
        "cityscapes_sem_seg",
        "cityscapes_instance",
    )


def test_builtin_path_check_wraps_once_and_passes_through(tmp_path):
    from mask2former.data.datasets.builtin_checks import add_path_checks_to_builtin_datasets

    name = "test_builtin_wrap"
    unregister(name)
    DatasetCatalog.register(name, lambda: ["loaded"])
    MetadataCatalog.get(name).set(image_root=str(tmp_path / "missing"))
    try:
        add_path_checks_to_builtin_datasets([name])
        wrapped = DatasetCatalog[name]
        add_path_checks_to_builtin_datasets([name])
        assert DatasetCatalog[name] is wrapped  # idempotent
        with pytest.raises(DatasetNotFoundError, match="missing"):
            DatasetCatalog.get(name)
        (tmp_path / "missing").mkdir()
        (tmp_path / "missing" / "a.jpg").write_bytes(b"")
        assert DatasetCatalog.get(name) == ["loaded"]
    finally:
        unregister(name)
