"""Evaluators on the real COCO panoptic sample: ground truth fed back as predictions gives
PQ / AP / mIoU 100 (the wiring), and known errors give the PQ / AP / mIoU computed by hand."""

import json

import numpy as np
import pytest
from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import COCOEvaluator, COCOPanopticEvaluator, SemSegEvaluator

from mask2former.evaluation import InstanceSegEvaluator

from eval_helpers import (
    COCO_SAMPLE,
    edited_panoptic_output,
    gt_instances_output,
    gt_panoptic_output,
    gt_sem_seg_output,
    panoptic_record_instances,
    read_pan_ids,
    run_evaluator,
)

# The errors of the hand-computed tests. Segment ids and areas are those of the sample's
# panoptic_examples.json (a test checks that the areas are the pixel counts of the PNGs).
# Segment ids are per image: several ids occur in both images.
# Image 142238: 13 persons (+ 1 crowd), 1 sports ball, tree-merged, sky-other-merged, grass-merged.
# Image 439180: 13 persons (+ 1 crowd), 2 trucks, 9 horses (+ 1 crowd), gravel, tree, sky, grass.
IMG1, IMG2 = 142238, 439180
PERSON_DROPPED = 3937500  # a person of image 142238 (3528 px): predicted as nothing
BALL, BALL_AREA = 16757838, 175  # the sports ball of image 142238
TREE1, TREE1_AREA = 2330219, 130762  # tree-merged of image 142238
TREE2_AREA = 91045  # tree-merged of image 439180 (same segment id 2330219 there)
GRAVEL, GRAVEL_AREA = 11881084, 11074  # gravel of image 439180
# contiguous ids (index in the 133 COCO panoptic classes)
PERSON, TRUCK, HORSE, SPORTS_BALL, KITE = 0, 7, 17, 32, 33
GRAVEL_C, TREE_C, SKY_C, GRASS_C, RUG_C = 90, 116, 119, 125, 132


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


def test_sample_areas_are_pixel_counts(coco_sample_dataset):
    """The areas the hand computations below use are the pixel counts of the PNGs."""
    records = {r["image_id"]: r for r in DatasetCatalog.get(coco_sample_dataset)}
    ids1 = read_pan_ids(records[IMG1]["pan_seg_file_name"])
    ids2 = read_pan_ids(records[IMG2]["pan_seg_file_name"])
    assert (ids1 == BALL).sum() == BALL_AREA and (ids1 == TREE1).sum() == TREE1_AREA
    assert (ids2 == TREE1).sum() == TREE2_AREA and (ids2 == GRAVEL).sum() == GRAVEL_AREA
    pan = json.loads((COCO_SAMPLE / "panoptic_examples.json").read_text())
    for ann in pan["annotations"]:
        ids = ids1 if ann["image_id"] == IMG1 else ids2
        for seg in ann["segments_info"]:
            assert (ids == seg["id"]).sum() == seg["area"], seg["id"]


def _imperfect_panoptic(record):
    """Image 142238: one person dropped, the sports ball merged into the tree segment.
    Image 439180: the gravel segment labelled rug-merged (a class in neither image)."""
    if record["image_id"] == IMG1:
        ids, info = edited_panoptic_output(record, drop=[PERSON_DROPPED], merge={BALL: TREE1})
    else:
        ids, info = edited_panoptic_output(record, relabel={GRAVEL: RUG_C})
    return {"panoptic_seg": (ids, info)}


def test_coco_sample_pq_of_an_imperfect_prediction(coco_sample_dataset, tmp_path):
    # Hand computation (panopticapi's rules; every untouched segment is a match with IoU 1;
    # the crowd segments fed back as predictions lie on crowd regions and are ignored):
    #   person: 26 non-crowd, 25 matched, 1 FN -> PQ = 25 / (25 + 0.5) ; SQ 1 ; RQ = PQ
    #   sports ball: merged away -> FN -> PQ 0, SQ 0 (no TP), RQ 0
    #   truck (2), horse (9): all matched -> 1
    #   tree-merged: image 142238 IoU = 130762 / (130762 + 175) (the ball's pixels are extra),
    #                image 439180 IoU 1 -> PQ = SQ = (1 + 130762/130937) / 2, RQ 1
    #   gravel: FN -> 0 ; rug-merged: FP -> 0 ; sky-other-merged, grass-merged: 1
    # Classes seen: 4 things + 5 stuff (gravel, tree, sky, grass, rug).
    tree = (1 + TREE1_AREA / (TREE1_AREA + BALL_AREA)) / 2
    person = 25 / 25.5
    pq_th = (person + 0 + 1 + 1) / 4  # 74.51
    pq_st = (0 + tree + 1 + 1 + 0) / 5  # 59.99
    pq = (person + 2 + tree + 2) / 9  # 66.44
    sq = (1 + 0 + 1 + 1 + 0 + tree + 1 + 1 + 0) / 9
    rq = (person + 2 + 1 + 2) / 9
    ev = COCOPanopticEvaluator(coco_sample_dataset, str(tmp_path / "pq"))
    res = run_evaluator(ev, coco_sample_dataset, _imperfect_panoptic)["panoptic_seg"]
    assert res["PQ_th"] == pytest.approx(100 * pq_th)
    assert res["PQ_st"] == pytest.approx(100 * pq_st)
    assert res["PQ"] == pytest.approx(100 * pq)
    assert res["SQ"] == pytest.approx(100 * sq)
    assert res["RQ"] == pytest.approx(100 * rq)


def test_coco_sample_miou_of_an_imperfect_prediction(coco_sample_dataset):
    # Semantic prediction = ground truth, except: the sports ball's pixels predicted as
    # tree-merged (image 142238) and the gravel's as rug-merged (image 439180).
    # Detectron2 averages IoU over the classes present in the ground truth (8 here: person,
    # truck, horse, sports ball, gravel, tree, sky, grass); rug-merged is not in the ground truth.
    #   sports ball: 0 ; gravel: 0 ; tree: (130762 + 91045) / (130762 + 91045 + 175) ; others 1
    #   pixel accuracy: all non-void pixels right except 175 + 11074
    def output(record):
        sem = np.asarray(Image.open(record["sem_seg_file_name"])).astype(np.int64)
        ids = read_pan_ids(record["pan_seg_file_name"])
        if record["image_id"] == IMG1:
            sem[ids == BALL] = TREE_C
        else:
            sem[ids == GRAVEL] = RUG_C
        return {"sem_seg": gt_sem_seg_output(sem, 133)}

    tree = (TREE1_AREA + TREE2_AREA) / (TREE1_AREA + TREE2_AREA + BALL_AREA)
    pan = json.loads((COCO_SAMPLE / "panoptic_examples.json").read_text())
    non_void = sum(s["area"] for a in pan["annotations"] for s in a["segments_info"])
    ev = SemSegEvaluator(coco_sample_dataset, distributed=False)
    res = run_evaluator(ev, coco_sample_dataset, output)["sem_seg"]
    assert res["mIoU"] == pytest.approx(100 * (5 + tree) / 8)  # 74.99
    assert res["pACC"] == pytest.approx(100 * (1 - (BALL_AREA + GRAVEL_AREA) / non_void))
    assert res["IoU-sports ball"] == 0 and res["IoU-gravel"] == 0


@pytest.mark.parametrize("evaluator_cls", [COCOEvaluator, InstanceSegEvaluator])
def test_coco_sample_mask_ap_of_an_imperfect_prediction(coco_sample_dataset, tmp_path,
                                                        evaluator_cls):
    # Instance prediction = the non-crowd thing segments (score 1), except: one person of
    # image 142238 is missing and the sports ball is predicted as a kite.
    # Hand computation (COCO AP: 101 recall points, mean over IoU 0.50:0.95 and categories):
    #   person: 25 of 26 found, all with IoU 1 and precision 1: recall reaches 25/26 = 0.9615,
    #           so precision is 1 at the recall points 0.00..0.96 (97 of 101) -> AP 97/101
    #   sports ball: not found -> AP 0 ; truck, horse: AP 1
    #   kite: no ground truth -> left out of the mean
    #   AP = AP50 = AP75 = (97/101 + 0 + 1 + 1) / 4 = 74.01
    def output(record):
        masks, classes = panoptic_record_instances(record)
        ids = read_pan_ids(record["pan_seg_file_name"])
        # (segment ids are per image: 3937500 is also a person of image 439180)
        in_img1 = record["image_id"] == IMG1
        keep = [
            i for i, m in enumerate(masks) if not (in_img1 and (ids[m] == PERSON_DROPPED).all())
        ]
        classes = [KITE if c == SPORTS_BALL else c for c in classes]
        masks, classes = masks[keep], [classes[i] for i in keep]
        return {"instances": gt_instances_output(masks, classes, masks.shape[1:])}

    ev = evaluator_cls(
        coco_sample_dataset, tasks=("segm",), distributed=False, output_dir=str(tmp_path / "ap")
    )
    res = run_evaluator(ev, coco_sample_dataset, output)["segm"]
    ap = 100 * (97 / 101 + 0 + 1 + 1) / 4
    for k in ("AP", "AP50", "AP75"):
        assert res[k] == pytest.approx(ap), k
    assert res["AP-person"] == pytest.approx(100 * 97 / 101)
    assert res["AP-sports ball"] == 0
    assert res["AP-truck"] == pytest.approx(100) and res["AP-horse"] == pytest.approx(100)


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
