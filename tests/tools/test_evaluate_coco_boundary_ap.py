"""Boundary IoU / Boundary AP (mask2former.evaluation.boundary_iou and
tools/evaluate_coco_boundary_ap.py) on small masks whose values are worked out by hand, and the
command line on the results file Detectron2's COCOEvaluator writes."""

import json

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import COCOEvaluator
from detectron2.structures import BitMasks, Instances

from mask2former.data.datasets.testing import unregister
from mask2former.evaluation.boundary_iou import (
    BoundaryCOCOeval,
    boundary_iou,
    boundary_width,
    mask_to_boundary,
)

from helpers import load_script

H = W = 64  # diagonal 90.51 px: d = round(0.02 * 90.51) = round(1.81) = 2


def box(y0, y1, x0, x1):
    """Boolean 64x64 mask of rows y0..y1 and columns x0..x1 (inclusive)."""
    m = np.zeros((H, W), bool)
    m[y0 : y1 + 1, x0 : x1 + 1] = True
    return m


# The two hand-computed pairs (ground truth, prediction), d = 2:
# Pair A: 20x20 square rows 10-29 x columns 10-29; prediction shifted right by 2 px (columns 12-31).
#   Boundaries: each square minus its 16x16 interior (rows 12-27 and columns 12-27 resp. 14-29):
#   400 - 256 = 144 px each. Intersection: the squares overlap on rows 10-29 x columns 12-29
#   (360 px); inside it, the two interiors cover rows 12-27 x columns 12-29 (288 px), so the
#   boundaries share 360 - 288 = 72 px (rows 10-11 and 28-29 x columns 12-29).
#   Boundary IoU = 72 / (144 + 144 - 72) = 72/216 = 1/3.   Mask IoU = 360 / 440 = 9/11 = 0.818.
# Pair B: 20x20 square rows 36-55 x columns 36-55; prediction one column wider (columns 36-56).
#   GT boundary 144 px; prediction 420 px, interior rows 38-53 x columns 38-54 (272 px): 148 px.
#   The prediction's interior contains the ground truth's, so the shared boundary is the ground
#   truth minus the prediction's interior: 400 - 272 = 128 px.
#   Boundary IoU = 128 / (144 + 148 - 128) = 128/164 = 0.780.   Mask IoU = 400/420 = 0.952.
GT_A, DT_A = box(10, 29, 10, 29), box(10, 29, 12, 31)
GT_B, DT_B = box(36, 55, 36, 55), box(36, 55, 36, 56)
# With one ground truth and one detection per category, AP at an IoU threshold t is 1 if IoU >= t
# else 0; COCO AP averages over t = 0.50, 0.55, ..., 0.95 and then over the categories.
#   Boundary: A (1/3) passes no threshold -> 0/10; B (0.780) passes 0.50..0.75 -> 6/10.
#     AP = (0 + 0.6)/2 = 30.0, AP50 = (0 + 1)/2 = 50.0, AP75 = (0 + 1)/2 = 50.0.
#   Mask: A (0.818) passes 0.50..0.80 -> 7/10; B (0.952) passes all 10 -> 10/10.
#     AP = (0.7 + 1.0)/2 = 85.0, AP50 = 100.0, AP75 = 100.0.
BOUNDARY = {"AP": 30.0, "AP50": 50.0, "AP75": 50.0}
MASK = {"AP": 85.0, "AP50": 100.0, "AP75": 100.0}


def test_boundary_width():
    assert boundary_width(64, 64) == 2  # 0.02 * 90.51 = 1.81
    assert boundary_width(480, 640) == 16  # 0.02 * 800
    assert boundary_width(10, 10) == 1  # 0.28 rounds to 0: at least 1 pixel
    assert boundary_width(64, 64, dilation_ratio=0.05) == 5  # 4.53


def test_boundary_of_a_square_is_a_ring_of_width_d():
    b = mask_to_boundary(GT_A)
    assert b.sum() == 400 - 16 * 16 == 144
    assert (b == (GT_A & ~box(12, 27, 12, 27))).all()


def test_image_border_counts_as_background():
    # a square in the corner: its pixels on the image border are boundary pixels too
    b = mask_to_boundary(box(0, 19, 0, 19))
    assert (b == (box(0, 19, 0, 19) & ~box(2, 17, 2, 17))).all()
    full = mask_to_boundary(np.ones((H, W), bool))
    assert full.sum() == H * W - 60 * 60


def test_boundary_iou_by_hand():
    assert boundary_iou(GT_A, DT_A) == pytest.approx(1 / 3)
    assert boundary_iou(GT_B, DT_B) == pytest.approx(128 / 164)
    assert boundary_iou(GT_A, GT_A) == 1.0
    assert boundary_iou(GT_A, GT_B) == 0.0
    # a wider boundary, d = round(0.05 * 90.51) = 5: interiors rows 15-24 x columns 15-24 and
    # 15-24 x 17-26 (100 px each), boundaries 400 - 100 = 300 px each; the interiors cover
    # rows 15-24 x columns 15-26 (120 px) of the 360-px overlap -> shared 240 -> 240/360
    assert boundary_iou(GT_A, DT_A, dilation_ratio=0.05) == pytest.approx(240 / 360)


def _rle(mask):
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def write_gt_json(path):
    """COCO instance ground truth: one 64x64 image, GT_A of category 1 and GT_B of category 2."""
    anns = []
    for i, (mask, cat) in enumerate(((GT_A, 1), (GT_B, 2)), start=1):
        rle = _rle(mask)
        anns.append({"id": i, "image_id": 1, "category_id": cat, "iscrowd": 0,
                     "segmentation": rle, "area": float(mask.sum()),
                     "bbox": mask_util.toBbox(rle).tolist()})
    path.write_text(json.dumps({
        "images": [{"id": 1, "width": W, "height": H, "file_name": "img.jpg"}],
        "annotations": anns,
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    }))
    return path


def results(masks_and_cats, scores=None):
    """COCO results (the format of COCOEvaluator's coco_instances_results.json)."""
    out = []
    for i, (mask, cat) in enumerate(masks_and_cats):
        rle = _rle(mask)
        out.append({"image_id": 1, "category_id": cat, "segmentation": rle,
                    "bbox": mask_util.toBbox(rle).tolist(),
                    "score": 1.0 if scores is None else scores[i]})
    return out


def _coco(gt_file, dets):
    from pycocotools.coco import COCO

    gt = COCO(str(gt_file))
    return gt, gt.loadRes(dets)


def test_boundary_ap_by_hand(tmp_path):
    gt, dt = _coco(write_gt_json(tmp_path / "gt.json"), results([(DT_A, 1), (DT_B, 2)]))
    ev = BoundaryCOCOeval(gt, dt, dilation_ratio=0.02)
    ev.evaluate()
    assert np.ravel(ev.ious[1, 1]) == pytest.approx([1 / 3])  # [detections, ground truths]
    assert np.ravel(ev.ious[1, 2]) == pytest.approx([128 / 164])
    ev.accumulate()
    ev.summarize()
    assert 100 * ev.stats[:3] == pytest.approx([BOUNDARY["AP"], BOUNDARY["AP50"], BOUNDARY["AP75"]])


def test_boundary_iou_matrix_follows_cocoeval_detection_order(tmp_path):
    # two detections for category 1: COCOeval orders them by descending score
    gt, dt = _coco(write_gt_json(tmp_path / "gt.json"),
                   results([(DT_A, 1), (GT_A, 1)], scores=[0.2, 0.9]))
    ev = BoundaryCOCOeval(gt, dt)
    ev.evaluate()
    assert ev.ious[1, 1][:, 0] == pytest.approx([1.0, 1 / 3])


def test_bad_dilation_ratio(tmp_path):
    gt, dt = _coco(write_gt_json(tmp_path / "gt.json"), results([(DT_A, 1)]))
    with pytest.raises(ValueError, match="dilation_ratio"):
        BoundaryCOCOeval(gt, dt, dilation_ratio=0)


# ---------------------------------------------------------------- the command-line tool

DATASET = "test_boundary_ap_tool"


def _cocoevaluator_results(gt_file, out_dir):
    """Run Detectron2's COCOEvaluator on the predictions DT_A (class 0 = category 1) and DT_B
    (class 1 = category 2): it writes coco_instances_results.json and reports mask AP."""
    unregister(DATASET)
    DatasetCatalog.register(DATASET, lambda: [{"image_id": 1, "file_name": "img.jpg"}])
    MetadataCatalog.get(DATASET).set(json_file=str(gt_file), thing_classes=["a", "b"],
                                     thing_dataset_id_to_contiguous_id={1: 0, 2: 1})
    try:
        ev = COCOEvaluator(DATASET, tasks=("segm",), distributed=False, output_dir=str(out_dir))
        ev.reset()
        inst = Instances((H, W))
        inst.pred_masks = torch.as_tensor(np.stack([DT_A, DT_B]))
        inst.pred_boxes = BitMasks(inst.pred_masks).get_bounding_boxes()
        inst.pred_classes = torch.tensor([0, 1])
        inst.scores = torch.tensor([0.9, 0.8])
        ev.process([{"image_id": 1, "height": H, "width": W}], [{"instances": inst}])
        return ev.evaluate()
    finally:
        unregister(DATASET)


def test_cli_on_cocoevaluator_results(tmp_path, capsys):
    gt_file = write_gt_json(tmp_path / "gt.json")
    d2 = _cocoevaluator_results(gt_file, tmp_path / "inference")
    for k, v in MASK.items():  # Detectron2's mask AP agrees with the hand computation
        assert d2["segm"][k] == pytest.approx(v), k
    dt_file = tmp_path / "inference" / "coco_instances_results.json"
    tool = load_script("tools/evaluate_coco_boundary_ap.py", "evaluate_coco_boundary_ap")
    out = tmp_path / "out" / "boundary_ap.json"
    got = tool.main(["--gt-json-file", str(gt_file), "--dt-json-file", str(dt_file),
                     "--output", str(out)])
    assert "Average Precision" in capsys.readouterr().out
    written = json.loads(out.read_text())
    assert written["dilation_ratio"] == 0.02
    for k, v in BOUNDARY.items():
        assert got[k] == pytest.approx(v), k
        assert written["boundary"][k] == pytest.approx(v), k
    assert np.isnan(written["boundary"]["APl"])  # no large object in the ground truth
    segm = tool.main(["--gt-json-file", str(gt_file), "--dt-json-file", str(dt_file),
                      "--iou-type", "segm"])
    for k, v in MASK.items():
        assert segm[k] == pytest.approx(v), k


def test_cli_errors_are_clear(tmp_path):
    tool = load_script("tools/evaluate_coco_boundary_ap.py", "evaluate_coco_boundary_ap")
    gt_file = write_gt_json(tmp_path / "gt.json")
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(ValueError, match="no detections"):
        tool.main(["--gt-json-file", str(gt_file), "--dt-json-file", str(empty)])
    stray = tmp_path / "stray.json"
    stray.write_text(json.dumps([dict(results([(DT_A, 1)])[0], image_id=7)]))
    with pytest.raises(ValueError, match="not in"):
        tool.main(["--gt-json-file", str(gt_file), "--dt-json-file", str(stray)])
    with pytest.raises(FileNotFoundError, match="results file"):
        tool.main(["--gt-json-file", str(gt_file), "--dt-json-file", str(tmp_path / "none.json")])
