"""The synthetic dataset through every evaluator (GT as prediction -> 100), and
InstanceSegEvaluator's behaviour on wrong / invalid predictions."""

import numpy as np
import pytest
import pycocotools.mask as mask_util
from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import COCOEvaluator, COCOPanopticEvaluator, SemSegEvaluator

from mask2former.data.datasets import register_synthetic
from mask2former.evaluation import InstanceSegEvaluator

from eval_helpers import (
    gt_instances_output,
    gt_panoptic_output,
    gt_sem_seg_output,
    panoptic_record_instances,
    run_evaluator,
)

SYN_NAMES = [
    f"synthetic_{v}_{s}" for v in ("panoptic", "instance", "sem_seg") for s in ("train", "val")
]


@pytest.fixture(scope="module")
def synthetic(synthetic_root):
    from mask2former.data.datasets.testing import unregister

    register_synthetic(str(synthetic_root))
    yield
    for n in SYN_NAMES:
        unregister(n)


def _instances_from_panoptic(record, remap=None):
    masks, classes = panoptic_record_instances(record)
    if remap:
        classes = [remap(c) for c in classes]
    return {"instances": gt_instances_output(masks, classes, masks.shape[1:])}


def test_synthetic_pq_100(synthetic, tmp_path):
    ev = COCOPanopticEvaluator("synthetic_panoptic_val", str(tmp_path))
    res = run_evaluator(
        ev, "synthetic_panoptic_val", lambda r: {"panoptic_seg": gt_panoptic_output(r)}
    )
    for k in ("PQ", "PQ_th", "PQ_st"):
        assert res["panoptic_seg"][k] == pytest.approx(100.0), k


@pytest.mark.parametrize("name", ["synthetic_panoptic_val", "synthetic_sem_seg_val"])
def test_synthetic_miou_100(synthetic, name):
    ev = SemSegEvaluator(name, distributed=False)
    res = run_evaluator(
        ev, name, lambda r: {"sem_seg": gt_sem_seg_output(Image.open(r["sem_seg_file_name"]), 7)}
    )
    assert res["sem_seg"]["mIoU"] == pytest.approx(100.0)


@pytest.mark.parametrize("evaluator_cls", [COCOEvaluator, InstanceSegEvaluator])
def test_synthetic_panoptic_ap_100(synthetic, tmp_path, evaluator_cls):
    ev = evaluator_cls(
        "synthetic_panoptic_val", tasks=("segm",), distributed=False, output_dir=str(tmp_path)
    )
    res = run_evaluator(ev, "synthetic_panoptic_val", _instances_from_panoptic)
    assert res["segm"]["AP"] == pytest.approx(100.0)
    assert {"AP-circle", "AP-square", "AP-triangle", "AP-star"} <= set(res["segm"])


def test_synthetic_instance_view_ap_100(synthetic, tmp_path):
    def output(record):
        anns = record["annotations"]
        masks = np.stack([mask_util.decode(a["segmentation"]).astype(bool) for a in anns])
        return {
            "instances": gt_instances_output(
                masks, [a["category_id"] for a in anns], masks.shape[1:]
            )
        }

    ev = COCOEvaluator(
        "synthetic_instance_val", tasks=("segm",), distributed=False, output_dir=str(tmp_path)
    )
    assert run_evaluator(ev, "synthetic_instance_val", output)["segm"]["AP"] == pytest.approx(100)


def test_instance_evaluator_penalises_wrong_classes(synthetic, tmp_path):
    # circle <-> square swapped: those classes get AP 0, the others stay 100
    swap = {0: 1, 1: 0}
    ev = InstanceSegEvaluator(
        "synthetic_panoptic_val", tasks=("segm",), distributed=False, output_dir=str(tmp_path)
    )
    res = run_evaluator(
        ev,
        "synthetic_panoptic_val",
        lambda r: _instances_from_panoptic(r, lambda c: swap.get(c, c)),
    )
    assert res["segm"]["AP"] < 90.0
    present = [k for k in ("AP-triangle", "AP-star") if np.isfinite(res["segm"][k])]
    assert present and all(res["segm"][k] == pytest.approx(100.0) for k in present)


def test_instance_evaluator_rejects_stuff_class_predictions(synthetic, tmp_path):
    stuff_id = MetadataCatalog.get("synthetic_panoptic_val").stuff_dataset_id_to_contiguous_id[11]
    ev = InstanceSegEvaluator("synthetic_panoptic_val", distributed=False, output_dir=str(tmp_path))
    ev.reset()
    record = DatasetCatalog.get("synthetic_panoptic_val")[0]
    bad = _instances_from_panoptic(record, lambda c: stuff_id)
    with pytest.raises(ValueError, match="not a thing class"):
        ev.process([record], [bad])


def test_instance_evaluator_explains_missing_instance_annotations():
    from mask2former.data.datasets.testing import unregister

    name = "test_panoptic_without_json_file"
    unregister(name)
    DatasetCatalog.register(name, lambda: [{"file_name": "x.jpg", "image_id": 1}])
    MetadataCatalog.get(name).set(thing_dataset_id_to_contiguous_id={1: 0})
    try:
        with pytest.raises(ValueError, match="no 'json_file'"):
            InstanceSegEvaluator(name)
    finally:
        unregister(name)
