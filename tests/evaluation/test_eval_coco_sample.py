"""Ground truth fed back as predictions on the real COCO panoptic sample gives PQ / AP / mIoU 100."""

import numpy as np
import pytest
from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import COCOEvaluator, COCOPanopticEvaluator, SemSegEvaluator

from mask2former.evaluation import InstanceSegEvaluator

from eval_helpers import (
    gt_instances_output,
    gt_panoptic_output,
    gt_sem_seg_output,
    panoptic_record_instances,
    run_evaluator,
)


def test_coco_sample_loads_with_contiguous_ids(coco_sample_dataset):
    records = DatasetCatalog.get(coco_sample_dataset)
    assert len(records) == 2
    meta = MetadataCatalog.get(coco_sample_dataset)
    assert len(meta.stuff_classes) == 133 and len(meta.thing_classes) == 80
    for r in records:
        assert {"file_name", "pan_seg_file_name", "sem_seg_file_name", "segments_info"} <= set(r)
        for s in r["segments_info"]:
            assert 0 <= s["category_id"] < 133
            assert s["isthing"] == (s["category_id"] < 80)


def test_coco_sample_pq_100(coco_sample_dataset, tmp_path):
    ev = COCOPanopticEvaluator(coco_sample_dataset, str(tmp_path / "pq"))
    res = run_evaluator(ev, coco_sample_dataset, lambda r: {"panoptic_seg": gt_panoptic_output(r)})
    for k in ("PQ", "SQ", "RQ", "PQ_th", "PQ_st"):
        assert res["panoptic_seg"][k] == pytest.approx(100.0), k


def test_coco_sample_pq_drops_when_a_segment_is_wrong(coco_sample_dataset, tmp_path):
    def wrong(record):
        ids, info = gt_panoptic_output(record)
        info = [dict(s) for s in info]
        stuff = next(s for s in info if not s["isthing"])
        stuff["category_id"] = (stuff["category_id"] + 1 - 80) % 53 + 80  # another stuff class
        return {"panoptic_seg": (ids, info)}

    ev = COCOPanopticEvaluator(coco_sample_dataset, str(tmp_path / "pq"))
    res = run_evaluator(ev, coco_sample_dataset, wrong)
    assert res["panoptic_seg"]["PQ_st"] < 99.0
    assert res["panoptic_seg"]["PQ_th"] == pytest.approx(100.0)


def test_coco_sample_miou_100(coco_sample_dataset):
    ev = SemSegEvaluator(coco_sample_dataset, distributed=False)
    res = run_evaluator(
        ev,
        coco_sample_dataset,
        lambda r: {"sem_seg": gt_sem_seg_output(Image.open(r["sem_seg_file_name"]), 133)},
    )
    assert res["sem_seg"]["mIoU"] == pytest.approx(100.0)
    assert res["sem_seg"]["pACC"] == pytest.approx(100.0)


@pytest.mark.parametrize("evaluator_cls", [COCOEvaluator, InstanceSegEvaluator])
def test_coco_sample_mask_ap_100(coco_sample_dataset, tmp_path, evaluator_cls):
    def output(record):
        masks, classes = panoptic_record_instances(record)
        return {"instances": gt_instances_output(masks, classes, masks.shape[1:])}

    ev = evaluator_cls(
        coco_sample_dataset, tasks=("segm",), distributed=False, output_dir=str(tmp_path / "ap")
    )
    res = run_evaluator(ev, coco_sample_dataset, output)
    for k in ("AP", "AP50", "AP75"):
        assert res["segm"][k] == pytest.approx(100.0), k
    assert res["segm"]["AP-person"] == pytest.approx(100.0)


def test_coco_sample_semantic_maps_match_panoptic(coco_sample_dataset):
    from eval_helpers import read_pan_ids

    for r in DatasetCatalog.get(coco_sample_dataset):
        sem = np.asarray(Image.open(r["sem_seg_file_name"]))
        ids = read_pan_ids(r["pan_seg_file_name"])
        for s in r["segments_info"]:
            assert (sem[ids == s["id"]] == s["category_id"]).all()
        assert (sem[ids == 0] == 255).all()
