"""PQ of semantic segmentations (mask2former.evaluation.semantic_pq and
tools/evaluate_pq_for_semantic_segmentation.py): a hand-computed example, a cross-check against
panopticapi's own per-image PQ code, and the command line on SemSegEvaluator's real output."""

import json

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import SemSegEvaluator

from mask2former.data.datasets.testing import unregister
from mask2former.evaluation.semantic_pq import SemanticPQ, segment_matches, semantic_confusion

from helpers import load_script

VOID = 255
K = 4  # classes 0..3


def hand_example():
    """Two 10x10 images (ground truth, prediction) of the hand-computed example below.

    Image 1, ground truth: class 0 in columns 0-4 (50 px); class 1 in rows 0-7 of columns 5-9
    (40 px); rows 8-9 of columns 5-9 are void (10 px).
    Image 1, prediction: class 0 in columns 0-5 except the 2x2 block rows 0-1 x columns 0-1,
    which is class 2; class 1 in columns 6-9 except the 2x2 block rows 8-9 x columns 8-9, which
    is class 3 (it lies entirely on void ground truth).
    Image 2, ground truth: class 2 everywhere (100 px). Prediction: class 2 in rows 0-3 (40 px),
    class 1 in rows 4-9 (60 px).
    """
    gt1 = np.full((10, 10), VOID, np.int64)
    gt1[:, :5] = 0
    gt1[:8, 5:] = 1
    p1 = np.zeros((10, 10), np.int64)
    p1[:, :6] = 0
    p1[:2, :2] = 2
    p1[:, 6:] = 1
    p1[8:, 8:] = 3
    gt2 = np.full((10, 10), 2, np.int64)
    p2 = np.full((10, 10), 2, np.int64)
    p2[4:] = 1
    return [(gt1, p1), (gt2, p2)]


# Hand computation (segment = all pixels of one class in one image; union leaves out the
# predicted pixels on void ground truth):
# Image 1
#   class 0: gt 50 px; pred 60 - 4 (class-2 block) = 56 px, 2 of them (column 5, rows 8-9) on
#            void; intersection 50 - 4 = 46; union 50 + 56 - 46 - 2 = 58; IoU 46/58 > 0.5 -> TP.
#   class 1: gt 40; pred 40 - 4 (class-3 block) = 36, 4 on void (rows 8-9, columns 6-7);
#            intersection rows 0-7 x columns 6-9 = 32; union 40 + 36 - 32 - 4 = 40; IoU 0.8 -> TP.
#   class 2: no gt, pred 4 px not on void -> FP.
#   class 3: no gt, pred 4 px all on void (> half) -> ignored.
# Image 2
#   class 2: gt 100, pred 40, intersection 40, union 100: IoU 0.4 <= 0.5 -> FN and FP.
#   class 1: no gt, pred 60 -> FP.
# Totals: class 0 TP 1 (IoU 46/58); class 1 TP 1 (IoU 0.8), FP 1; class 2 FP 2, FN 1;
#         class 3 nothing (left out of the averages: N = 3).
PQ_0, PQ_1, PQ_2 = 46 / 58, 0.8 / (1 + 0.5), 0.0 / (2 * 0.5 + 0.5)
SQ_0, SQ_1, SQ_2 = 46 / 58, 0.8, 0.0  # SQ of a class without TP counts as 0 (panopticapi)
RQ_0, RQ_1, RQ_2 = 1.0, 1 / 1.5, 0.0
PQ = 100 * (PQ_0 + PQ_1 + PQ_2) / 3  # 44.21
SQ = 100 * (SQ_0 + SQ_1 + SQ_2) / 3  # 53.10
RQ = 100 * (RQ_0 + RQ_1 + RQ_2) / 3  # 55.56
# mIoU as Detectron2 (summed confusion, void ground truth left out, classes present in gt):
#   class 0: tp 46, gt 50, pred on non-void 56 - 2 = 54 -> 46 / (50 + 54 - 46) = 46/58
#   class 1: tp 32, gt 40, pred on non-void (36 - 4) + 60 = 92 -> 32 / (40 + 92 - 32) = 0.32
#   class 2: tp 40, gt 100, pred 4 + 40 = 44 -> 40 / (100 + 44 - 40) = 40/104
MIOU = 100 * (46 / 58 + 0.32 + 40 / 104) / 3  # 49.92
PACC = 100 * (46 + 32 + 40) / 190  # 190 non-void gt pixels


def test_confusion_matrix_counts_void_and_missing_predictions():
    gt = np.array([[0, 1, VOID], [1, 1, 0]])
    pred = np.array([[0, 0, 1], [-1, 1, 0]])  # -1: no prediction
    conf = semantic_confusion(gt, pred, 2, VOID)
    # rows: gt 0, gt 1, void; columns: pred 0, pred 1, none
    assert conf.tolist() == [[2, 0, 0], [1, 1, 1], [0, 1, 0]]
    with pytest.raises(ValueError, match="outside 0..1"):
        semantic_confusion(np.array([[5]]), np.array([[0]]), 2, VOID)
    with pytest.raises(ValueError, match="differ in size"):
        semantic_confusion(np.zeros((2, 2)), np.zeros((2, 3)), 2, VOID)


def test_hand_computed_example_per_image():
    (gt1, p1), (gt2, p2) = hand_example()
    m1 = segment_matches(semantic_confusion(gt1, p1, K, VOID))
    assert m1["tp"].tolist() == [1, 1, 0, 0]
    assert m1["fp"].tolist() == [0, 0, 1, 0]  # class 3 lies on void: ignored
    assert m1["fn"].tolist() == [0, 0, 0, 0]
    assert m1["iou"] == pytest.approx([46 / 58, 0.8, 0, 0])
    m2 = segment_matches(semantic_confusion(gt2, p2, K, VOID))
    assert m2["tp"].tolist() == [0, 0, 0, 0]
    assert m2["fp"].tolist() == [0, 1, 1, 0]
    assert m2["fn"].tolist() == [0, 0, 1, 0]


def test_hand_computed_example_pq_and_miou():
    scorer = SemanticPQ(K, VOID, ["a", "b", "c", "d"], thing_ids=[1, 2])
    for gt, pred in hand_example():
        scorer.add(gt, pred)
    res = scorer.summarize()
    assert res["All"]["N"] == 3
    assert res["All"]["PQ"] == pytest.approx(PQ)
    assert res["All"]["SQ"] == pytest.approx(SQ)
    assert res["All"]["RQ"] == pytest.approx(RQ)
    assert res["Things"]["PQ"] == pytest.approx(100 * (PQ_1 + PQ_2) / 2)
    assert res["Stuff"]["PQ"] == pytest.approx(100 * PQ_0) and res["Stuff"]["N"] == 1
    assert res["mIoU"] == pytest.approx(MIOU)
    assert res["pACC"] == pytest.approx(PACC)
    assert res["per_class"]["c"] == {"PQ": 0.0, "SQ": 0.0, "RQ": 0.0, "TP": 0, "FP": 2, "FN": 1}
    assert "d" not in res["per_class"]


def test_iou_of_exactly_half_is_no_match():
    # gt class 0 on 4 px, prediction class 0 on 2 of them (class 1 on the others): IoU 0.5
    gt = np.zeros((2, 2), np.int64)
    pred = np.array([[0, 0], [1, 1]])
    m = segment_matches(semantic_confusion(gt, pred, 2, VOID))
    assert m["tp"].tolist() == [0, 0] and m["fn"].tolist() == [1, 0] and m["fp"].tolist() == [1, 1]


def test_agrees_with_panopticapi_per_image_pq(tmp_path):
    """Random semantic maps written as panoptic PNGs (one segment per class) and scored by
    panopticapi's pq_compute_single_core give the same per-class counts and IoU sums."""
    from panopticapi.evaluation import pq_compute_single_core
    from panopticapi.utils import id2rgb

    rng = np.random.default_rng(0)
    k, void = 5, 255
    scorer = SemanticPQ(k, void)
    annotation_set = []
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    for i in range(6):
        # blocky maps so that some classes match (IoU > 0.5) and others do not
        gt = np.kron(rng.integers(0, k + 1, (4, 4)), np.ones((8, 8), np.int64))
        gt[gt == k] = void
        pred = gt.copy()
        noise = np.kron(rng.random((8, 8)) < 0.35, np.ones((4, 4), bool))
        pred[noise] = rng.integers(0, k, noise.sum())
        pred[pred == void] = rng.integers(0, k)
        scorer.add(gt, pred)
        anns = []
        for name, arr in (("gt", gt), ("pred", pred)):
            ids = np.where(arr == void, 0, arr + 1)  # panoptic id = class + 1, 0 = void
            Image.fromarray(id2rgb(ids)).save(tmp_path / name / f"{i}.png")
            segs = [
                {"id": int(c + 1), "category_id": int(c), "iscrowd": 0,
                 "area": int((arr == c).sum())}
                for c in range(k)
                if (arr == c).any()
            ]
            anns.append({"image_id": i, "file_name": f"{i}.png", "segments_info": segs})
        annotation_set.append(tuple(anns))
    categories = {c: {"id": c, "name": str(c), "isthing": 0} for c in range(k)}
    ref = pq_compute_single_core(0, annotation_set, str(tmp_path / "gt"), str(tmp_path / "pred"),
                                 categories)
    for c in range(k):
        stat = ref.pq_per_cat[c]
        assert (scorer.tp[c], scorer.fp[c], scorer.fn[c]) == (stat.tp, stat.fp, stat.fn), c
        assert scorer.iou[c] == pytest.approx(stat.iou), c
    assert scorer.tp.sum() > 0 and scorer.fp.sum() > 0  # the example exercises both cases
    ref_all, _ = ref.pq_average(categories, isthing=None)
    assert scorer.summarize()["All"]["PQ"] == pytest.approx(100 * ref_all["pq"])


# ---------------------------------------------------------------- the command-line tool

DATASET = "test_semantic_pq_tool"


@pytest.fixture
def semantic_dataset(tmp_path):
    """The hand example as a registered semantic dataset (images, ground-truth PNGs)."""
    records = []
    for i, (gt, _) in enumerate(hand_example()):
        img = tmp_path / "images" / f"img{i}.jpg"
        lab = tmp_path / "labels" / f"img{i}.png"
        img.parent.mkdir(exist_ok=True)
        lab.parent.mkdir(exist_ok=True)
        Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(img)
        Image.fromarray(gt.astype(np.uint8)).save(lab)
        records.append({"file_name": str(img), "sem_seg_file_name": str(lab),
                        "height": 10, "width": 10, "image_id": i})
    unregister(DATASET)
    DatasetCatalog.register(DATASET, lambda: records)
    # dataset ids 10, 11, 12, 13 -> contiguous 0..3: the tool must map them back
    MetadataCatalog.get(DATASET).set(
        stuff_classes=["a", "b", "c", "d"], ignore_label=VOID, evaluator_type="sem_seg",
        stuff_dataset_id_to_contiguous_id={10 + i: i for i in range(K)},
    )
    yield records
    unregister(DATASET)


def _semseg_evaluator_output(records, out_dir):
    """Run Detectron2's SemSegEvaluator on the hand example's predictions: it writes
    sem_seg_predictions.json (the tool's input) and reports its own mIoU."""
    ev = SemSegEvaluator(DATASET, distributed=False, output_dir=str(out_dir))
    ev.reset()
    for record, (_, pred) in zip(records, hand_example()):
        scores = torch.nn.functional.one_hot(torch.as_tensor(pred), K).permute(2, 0, 1).float()
        ev.process([record], [{"sem_seg": scores}])
    return ev.evaluate()


def test_cli_on_semseg_evaluator_output(semantic_dataset, tmp_path, capsys):
    d2 = _semseg_evaluator_output(semantic_dataset, tmp_path / "inference")
    assert d2["sem_seg"]["mIoU"] == pytest.approx(MIOU)  # Detectron2 agrees with the hand mIoU
    tool = load_script("tools/evaluate_pq_for_semantic_segmentation.py", "evaluate_pq_semseg")
    out = tmp_path / "results" / "pq.json"
    tool.main(["--dataset-name", DATASET,
               "--json-file", str(tmp_path / "inference" / "sem_seg_predictions.json"),
               "--output", str(out)])
    printed = capsys.readouterr().out
    assert f"{PQ:6.2f}" in printed and "mIoU" in printed
    res = json.loads(out.read_text())
    assert res["num_images"] == 2
    assert res["All"]["PQ"] == pytest.approx(PQ)
    assert res["All"]["SQ"] == pytest.approx(SQ)
    assert res["All"]["RQ"] == pytest.approx(RQ)
    assert res["mIoU"] == pytest.approx(MIOU)


def test_cli_errors_are_clear(semantic_dataset, tmp_path):
    tool = load_script("tools/evaluate_pq_for_semantic_segmentation.py", "evaluate_pq_semseg")
    with pytest.raises(FileNotFoundError, match="sem_seg_predictions.json"):
        tool.main(["--dataset-name", DATASET, "--json-file", str(tmp_path / "missing.json")])
    stranger = tmp_path / "stranger.json"
    rle = mask_util.encode(np.asfortranarray(np.ones((10, 10), np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    stranger.write_text(json.dumps(
        [{"file_name": "/elsewhere/other.jpg", "category_id": 10, "segmentation": rle}]))
    with pytest.raises(ValueError, match="not in the dataset"):
        tool.main(["--dataset-name", DATASET, "--json-file", str(stranger)])
    # moved files are matched by their name; an unknown dataset id is an error
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps(
        [{"file_name": "/elsewhere/img0.jpg", "category_id": 99, "segmentation": rle}]))
    with pytest.raises(ValueError, match="category_id 99"):
        tool.main(["--dataset-name", DATASET, "--json-file", str(moved)])
