"""Cityscapes evaluators (cityscapesscripts) on a tiny generated gtFine layout, fed with the
ground truth: IoU 100 and AP 100. Uses Detectron2's builtin cityscapes_fine_* registrations."""

import numpy as np
import pytest
from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.builtin import register_all_cityscapes
from detectron2.evaluation import CityscapesInstanceEvaluator, CityscapesSemSegEvaluator

from mask2former.data.datasets.testing import write_cityscapes_sample

from eval_helpers import gt_instances_output, gt_sem_seg_output, registered_at, run_evaluator

NAMES = [
    f"cityscapes_fine_{t}_{s}"
    for t in ("instance_seg", "sem_seg")
    for s in ("train", "val", "test")
]


@pytest.fixture(scope="module")
def cityscapes_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cityscapes_root")
    write_cityscapes_sample(str(root), "val", num_images=2, seed=0)
    with registered_at(NAMES, register_all_cityscapes, root):
        yield root


def test_cityscapes_sem_seg_iou_100(cityscapes_root):
    name = "cityscapes_fine_sem_seg_val"
    records = DatasetCatalog.get(name)
    assert len(records) == 2
    ev = CityscapesSemSegEvaluator(name)
    res = run_evaluator(
        ev, name, lambda r: {"sem_seg": gt_sem_seg_output(Image.open(r["sem_seg_file_name"]), 19)}
    )
    assert res["sem_seg"]["IoU"] == pytest.approx(100.0)


def test_cityscapes_instance_ap_100(cityscapes_root, tmp_path, monkeypatch):
    # cityscapesscripts writes its matches.json into the working directory
    monkeypatch.chdir(tmp_path)
    from cityscapesscripts.helpers.labels import id2label

    name = "cityscapes_fine_instance_seg_val"
    meta = MetadataCatalog.get(name)
    records = DatasetCatalog.get(name)  # polygon loader (needs shapely)
    assert len(records) == 2 and all(r["annotations"] for r in records)

    def output(record):
        # .../leftImg8bit/val/<city>/<stem>_leftImg8bit.png -> .../gtFine/.../<stem>_gtFine_instanceIds.png
        gt_file = record["file_name"].replace("leftImg8bit", "gtFine")
        ids = np.asarray(Image.open(gt_file.replace("_gtFine.png", "_gtFine_instanceIds.png")))
        inst = [i for i in np.unique(ids) if i >= 1000]
        masks = np.stack([ids == i for i in inst])
        classes = [meta.thing_classes.index(id2label[int(i) // 1000].name) for i in inst]
        return {"instances": gt_instances_output(masks, classes, ids.shape)}

    ev = CityscapesInstanceEvaluator(name)
    res = run_evaluator(ev, name, output)
    assert res["segm"]["AP"] == pytest.approx(100.0)
    assert res["segm"]["AP50"] == pytest.approx(100.0)
