"""Dataset facts that must match the original Mask2Former, read from the registered metadata.

Values written here are facts of the original's registrations (mask2former/data/datasets/
register_ade20k_instance.py, register_ade20k_panoptic.py, register_mapillary_vistas_panoptic.py).
"""

import pytest

import mask2former  # noqa: F401  (registers the datasets)
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.utils.visualizer import Visualizer
import numpy as np
import torch

from mask2former.data.datasets.builtin_checks import add_missing_builtin_metadata
from mask2former.data.datasets.testing import unregister

from mask2former.utils.visualizer import full_class_metadata


@pytest.mark.parametrize("split", ["train", "val"])
def test_ade20k_instance_class_53_is_stairs(split):
    meta = MetadataCatalog.get(f"ade20k_instance_{split}")
    assert meta.thing_classes[meta.thing_dataset_id_to_contiguous_id[53]] == "stairs"
    assert "stairway" not in meta.thing_classes  # ADE-150 id 59 "stairway" is no instance class


@pytest.mark.parametrize("split", ["train", "val"])
def test_ade20k_sem_seg_has_the_ade_palette(split):
    meta = MetadataCatalog.get(f"ade20k_sem_seg_{split}")
    colors = [list(c) for c in meta.stuff_colors]
    assert len(colors) == 150 == len(meta.stuff_classes)
    # a few entries of the ADE20K palette: wall, building, sky, ..., person (12), ..., flag (149)
    assert colors[:3] == [[120, 120, 120], [180, 120, 120], [6, 230, 230]]
    assert colors[12] == [150, 5, 61] and colors[149] == [92, 0, 255]
    # the same palette as the ADE20K panoptic datasets
    assert colors == [list(c) for c in MetadataCatalog.get("ade20k_panoptic_val").stuff_colors]
    # Detectron2's own registration is kept
    assert meta.evaluator_type == "sem_seg" and meta.ignore_label == 255
    assert f"ade20k_sem_seg_{split}" in DatasetCatalog.list()


def test_add_missing_builtin_metadata_never_replaces_a_value(caplog):
    have, lack = "test_facts_has_colors", "test_facts_lacks_colors"
    for n in (have, lack):
        unregister(n)
        DatasetCatalog.register(n, lambda: [])
    MetadataCatalog.get(have).set(stuff_colors=[(1, 2, 3)])
    try:
        extra = {n: {"stuff_colors": [[4, 5, 6]]} for n in (have, lack, "test_facts_unregistered")}
        add_missing_builtin_metadata(extra)
        add_missing_builtin_metadata(extra)  # idempotent
        assert MetadataCatalog.get(have).stuff_colors == [(1, 2, 3)]
        assert MetadataCatalog.get(lack).stuff_colors == [[4, 5, 6]]
        assert "test_facts_unregistered" not in MetadataCatalog.list()
        assert "already has its own 'stuff_colors'" in caplog.text
    finally:
        for n in (have, lack):
            unregister(n)


@pytest.mark.parametrize("split", ["train", "val"])
def test_mapillary_panoptic_thing_classes_list_all_65(split):
    meta = MetadataCatalog.get(f"mapillary_vistas_panoptic_{split}")
    assert meta.thing_classes == meta.stuff_classes and len(meta.thing_classes) == 65
    assert [list(c) for c in meta.thing_colors] == [list(c) for c in meta.stuff_colors]
    assert len(meta.thing_dataset_id_to_contiguous_id) == 37
    # the contiguous id of a thing segment indexes thing_classes directly
    assert meta.thing_classes[meta.thing_dataset_id_to_contiguous_id[20]] == "Person"
    assert meta.thing_classes[meta.thing_dataset_id_to_contiguous_id[56]] == "Car"
    assert meta.thing_classes[64] == "Ego Vehicle"
    assert 65 not in meta.thing_dataset_id_to_contiguous_id  # ego vehicle has no instances


@pytest.mark.parametrize("through_demo", [False, True])
def test_visualizer_labels_mapillary_things_by_name(monkeypatch, through_demo):
    """Detectron2's Visualizer on the registered metadata (as tools/visualize_data.py uses it) and
    on the demo's metadata writes the right names for a Mapillary thing ("Car", contiguous id 55)
    and a stuff segment ("Road", 13)."""
    meta = MetadataCatalog.get("mapillary_vistas_panoptic_val")
    if through_demo:
        meta = full_class_metadata(meta, 65)
    texts = []
    original = Visualizer.draw_text

    def record(self, text, *args, **kwargs):
        texts.append(text)
        return original(self, text, *args, **kwargs)

    monkeypatch.setattr(Visualizer, "draw_text", record)
    seg = torch.zeros(64, 96, dtype=torch.int32)
    seg[32:, :] = 1  # road
    seg[8:28, 20:70] = 2  # car
    info = [
        {"id": 1, "category_id": 13, "isthing": False},
        {"id": 2, "category_id": 55, "isthing": True, "score": 0.9},
    ]
    Visualizer(np.zeros((64, 96, 3), np.uint8), meta).draw_panoptic_seg(seg, info)
    assert "Road" in texts
    assert any(t.startswith("Car") for t in texts), texts
