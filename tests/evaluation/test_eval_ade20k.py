"""Raw ADE20K-format sample -> prepare scripts -> registered ade20k_* datasets -> evaluators
fed with the ground truth give PQ / AP / mIoU 100."""

import numpy as np
import pytest
from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.builtin import register_all_ade20k
from detectron2.evaluation import COCOEvaluator, COCOPanopticEvaluator, SemSegEvaluator

from mask2former.data.datasets.register_ade20k_instance import register_all_ade20k_instance
from mask2former.data.datasets.register_ade20k_panoptic import register_all_ade20k_panoptic
from mask2former.data.datasets.testing import write_ade20k_raw_sample
from mask2former.evaluation import InstanceSegEvaluator

from eval_helpers import (
    gt_instances_output,
    gt_panoptic_output,
    gt_sem_seg_output,
    panoptic_record_instances,
    prepare_ade20k,
    registered_at,
    run_evaluator,
)

PAN = ["ade20k_panoptic_train", "ade20k_panoptic_val"]
INS = ["ade20k_instance_train", "ade20k_instance_val"]
SEM = ["ade20k_sem_seg_train", "ade20k_sem_seg_val"]


@pytest.fixture(scope="module")
def ade_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ade_root")
    write_ade20k_raw_sample(str(root / "ADEChallengeData2016"), num_images=2, seed=3)
    prepare_ade20k(root / "ADEChallengeData2016")
    with registered_at(PAN, register_all_ade20k_panoptic, root), registered_at(
        INS, register_all_ade20k_instance, root
    ), registered_at(SEM, register_all_ade20k, root):
        yield root


def test_ade20k_panoptic_pq_100(ade_root, tmp_path):
    records = DatasetCatalog.get("ade20k_panoptic_val")
    assert len(records) == 2 and all(r["segments_info"] for r in records)
    assert any(s["isthing"] for r in records for s in r["segments_info"])
    ev = COCOPanopticEvaluator("ade20k_panoptic_val", str(tmp_path))
    res = run_evaluator(
        ev, "ade20k_panoptic_val", lambda r: {"panoptic_seg": gt_panoptic_output(r)}
    )
    assert res["panoptic_seg"]["PQ"] == pytest.approx(100.0)
    assert res["panoptic_seg"]["PQ_th"] == pytest.approx(100.0)


@pytest.mark.parametrize("name", ["ade20k_panoptic_val", "ade20k_sem_seg_val"])
def test_ade20k_miou_100(ade_root, name):
    ev = SemSegEvaluator(name, distributed=False)
    res = run_evaluator(
        ev, name, lambda r: {"sem_seg": gt_sem_seg_output(Image.open(r["sem_seg_file_name"]), 150)}
    )
    assert res["sem_seg"]["mIoU"] == pytest.approx(100.0)


def test_ade20k_panoptic_instance_ap_100(ade_root, tmp_path):
    def output(record):
        masks, classes = panoptic_record_instances(record)
        return {"instances": gt_instances_output(masks, classes, masks.shape[1:])}

    ev = InstanceSegEvaluator(
        "ade20k_panoptic_val", tasks=("segm",), distributed=False, output_dir=str(tmp_path)
    )
    res = run_evaluator(ev, "ade20k_panoptic_val", output)
    assert res["segm"]["AP"] == pytest.approx(100.0)
    # Detectron2's COCOEvaluator cannot handle the scattered thing ids of ADE20K panoptic:
    # this is what InstanceSegEvaluator is for.
    plain = COCOEvaluator(
        "ade20k_panoptic_val", tasks=("segm",), distributed=False, output_dir=str(tmp_path)
    )
    with pytest.raises(AssertionError):
        run_evaluator(plain, "ade20k_panoptic_val", output)


def test_ade20k_instance_dataset_ap_100(ade_root, tmp_path):
    import pycocotools.mask as mask_util

    meta = MetadataCatalog.get("ade20k_instance_val")
    assert len(meta.thing_classes) == 100

    def output(record):
        anns = [a for a in record["annotations"] if not a.get("iscrowd", 0)]
        masks = np.stack([mask_util.decode(a["segmentation"]).astype(bool) for a in anns])
        return {
            "instances": gt_instances_output(
                masks, [a["category_id"] for a in anns], masks.shape[1:]
            )
        }

    ev = COCOEvaluator(
        "ade20k_instance_val", tasks=("segm",), distributed=False, output_dir=str(tmp_path)
    )
    res = run_evaluator(ev, "ade20k_instance_val", output)
    assert res["segm"]["AP"] == pytest.approx(100.0)


def test_ade20k_instance_and_panoptic_agree(ade_root):
    """Thing segments of the panoptic dataset equal the instance annotations (same ids)."""
    import pycocotools.mask as mask_util

    pan_meta = MetadataCatalog.get("ade20k_panoptic_val")
    ins_meta = MetadataCatalog.get("ade20k_instance_val")
    pan_c2d = {v: k for k, v in pan_meta.thing_dataset_id_to_contiguous_id.items()}
    ins_c2d = {v: k for k, v in ins_meta.thing_dataset_id_to_contiguous_id.items()}
    ins_records = {r["image_id"]: r for r in DatasetCatalog.get("ade20k_instance_val")}
    for r in DatasetCatalog.get("ade20k_panoptic_val"):
        masks, classes = panoptic_record_instances(r)
        anns = ins_records[r["image_id"]]["annotations"]
        got = sorted((pan_c2d[c], int(m.sum())) for m, c in zip(masks, classes))
        want = sorted(
            (ins_c2d[a["category_id"]], int(mask_util.decode(a["segmentation"]).sum()))
            for a in anns
        )
        assert got == want
