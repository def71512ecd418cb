"""Cityscapes evaluators (cityscapesscripts) on a tiny generated gtFine layout: fed with the
ground truth (IoU 100, AP 100) and with known errors (hand-computed IoU / AP). Uses Detectron2's
builtin cityscapes_fine_* registrations."""

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
    name = "cityscapes_fine_instance_seg_val"
    meta = MetadataCatalog.get(name)
    records = DatasetCatalog.get(name)  # polygon loader (needs shapely)
    assert len(records) == 2 and all(r["annotations"] for r in records)

    ev = CityscapesInstanceEvaluator(name)
    res = run_evaluator(ev, name, lambda r: _gt_instances(r, meta))
    assert res["segm"]["AP"] == pytest.approx(100.0)
    assert res["segm"]["AP50"] == pytest.approx(100.0)


def _gt_instance_ids(record):
    """Instance ids (label id * 1000 + k) of a record, from its gtFine instanceIds PNG."""
    # .../leftImg8bit/val/<city>/<stem>_leftImg8bit.png -> .../gtFine/.../<stem>_gtFine_instanceIds.png
    gt_file = record["file_name"].replace("leftImg8bit", "gtFine")
    return np.asarray(Image.open(gt_file.replace("_gtFine.png", "_gtFine_instanceIds.png")))


def _gt_instances(record, meta, skip=()):
    """The ground-truth instances of a record as predictions (score 1), without those in skip."""
    from cityscapesscripts.helpers.labels import id2label

    ids = _gt_instance_ids(record)
    inst = [i for i in np.unique(ids) if i >= 1000 and (record["file_name"], i) not in skip]
    masks = np.stack([ids == i for i in inst])
    classes = [meta.thing_classes.index(id2label[int(i) // 1000].name) for i in inst]
    return {"instances": gt_instances_output(masks, classes, ids.shape)}


def test_cityscapes_sem_seg_iou_of_an_imperfect_prediction(cityscapes_root):
    # Prediction = ground truth except that sky is predicted as vegetation. cityscapesscripts
    # averages the IoU over the classes seen in the ground truth or the prediction:
    #   road, building, car, person: 1 ; sky: 0 (all missed) ; vegetation: 0 (TP 0, FP > 0)
    #   IoU = 4/6. By category: flat, construction, vehicle, human 1; sky 0, nature 0 -> 4/6.
    from cityscapesscripts.helpers.labels import name2label

    name = "cityscapes_fine_sem_seg_val"
    sky, vegetation = name2label["sky"].trainId, name2label["vegetation"].trainId
    present = set()

    def output(record):
        sem = np.asarray(Image.open(record["sem_seg_file_name"])).astype(np.int64)
        present.update(np.unique(sem).tolist())
        sem[sem == sky] = vegetation
        return {"sem_seg": gt_sem_seg_output(sem, 19)}

    res = run_evaluator(CityscapesSemSegEvaluator(name), name, output)["sem_seg"]
    expected_classes = {name2label[n].trainId for n in ("road", "building", "sky", "car", "person")}
    assert present == expected_classes  # the ground truth the computation assumes
    assert res["IoU"] == pytest.approx(100 * 4 / 6)
    assert res["IoU_sup"] == pytest.approx(100 * 4 / 6)


def test_cityscapes_instance_ap_of_an_imperfect_prediction(cityscapes_root, tmp_path, monkeypatch):
    # Prediction = ground-truth instances (score 1) except one car of the first image.
    # cityscapesscripts' AP per class is the area under its precision/recall curve: the found
    # cars have precision 1 up to recall (n - 1)/n, so AP(car) = (n - 1)/n at every IoU
    # threshold; AP(person) = 1; classes without ground truth or prediction are left out.
    # With n = 4 cars in the two images: AP = AP50 = ((4 - 1)/4 + 1) / 2 = 87.5.
    monkeypatch.chdir(tmp_path)  # cityscapesscripts writes matches.json into the working dir
    name = "cityscapes_fine_instance_seg_val"
    meta = MetadataCatalog.get(name)
    records = DatasetCatalog.get(name)
    ids = [_gt_instance_ids(r) for r in records]
    cars = [(r["file_name"], i) for r, im in zip(records, ids) for i in np.unique(im)
            if i // 1000 == 26]  # label id 26 = car
    persons = [i for im in ids for i in np.unique(im) if i // 1000 == 24]  # 24 = person
    assert len(cars) == 4 and len(persons) == 4  # the ground truth the computation assumes
    res = run_evaluator(
        CityscapesInstanceEvaluator(name), name, lambda r: _gt_instances(r, meta, skip=cars[:1])
    )["segm"]
    assert res["AP"] == pytest.approx(100 * (3 / 4 + 1) / 2)
    assert res["AP50"] == pytest.approx(100 * (3 / 4 + 1) / 2)
