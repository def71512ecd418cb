"""YouTube-VIS video AP (mask2former/evaluation/ytvis_evaluation.py, ytvis_eval.py).

The references here are written independently of the module: the video IoU is computed with
numpy loops over frames on the boolean masks the tracks were encoded from, and the AP with a
plain greedy matcher and COCO's 101-point interpolated precision (no COCOeval).
"""

import json
import logging
import os
import re
import subprocess
import sys
import zipfile

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import inference_on_dataset

from helpers import REPO
from mask2former.data.datasets.testing import unregister
from mask2former.evaluation import YTVISEvaluator
from mask2former.evaluation.ytvis_eval import main as ytvis_eval_main
from mask2former.evaluation.ytvis_evaluation import (
    METRIC_NAMES,
    YTVIS,
    evaluate_ytvis,
    load_results,
    video_iou,
)

THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALLS = np.linspace(0.0, 1.0, 101)
# all / small / medium / large on the mean non-empty track area (SPEC §9)
RANGES = {"all": (0, 1e10), "s": (0, 128**2), "m": (128**2, 256**2), "l": (256**2, 1e10)}


# --------------------------------------------------------------------------------------------
# building tracks and files
# --------------------------------------------------------------------------------------------
def rle(mask):
    r = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    r["counts"] = r["counts"].decode("ascii")
    return r


def encode_track(frames):
    """[bool (H, W) or None per frame] -> [RLE with str counts or None per frame]."""
    return [None if m is None else rle(m) for m in frames]


def box(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def ytvis_json(videos, tracks, categories):
    """videos: {id: (T, H, W)}; tracks: [(video_id, category_id, segmentations)]."""
    return {
        "videos": [
            {
                "id": v,
                "length": t,
                "height": h,
                "width": w,
                "file_names": [f"v{v}/{i:05d}.jpg" for i in range(t)],
            }
            for v, (t, h, w) in videos.items()
        ],
        "categories": [{"id": c, "name": f"class{c}"} for c in categories],
        "annotations": [
            {"id": i + 1, "video_id": v, "category_id": c, "segmentations": segs, "iscrowd": 0}
            for i, (v, c, segs) in enumerate(tracks)
        ],
    }


def write_json(path, obj):
    path.write_text(json.dumps(obj))
    return str(path)


# --------------------------------------------------------------------------------------------
# independent references
# --------------------------------------------------------------------------------------------
def reference_video_iou(d_frames, g_frames):
    """sum_t |d ∩ g| / sum_t |d ∪ g| with numpy, frame by frame (None = absent)."""
    inter = union = 0
    for d, g in zip(d_frames, g_frames):
        if d is None and g is None:
            continue
        if d is None:
            union += int(g.sum())
        elif g is None:
            union += int(d.sum())
        else:
            inter += int(np.logical_and(d, g).sum())
            union += int(np.logical_or(d, g).sum())
    return inter / union if union else 0.0


def mean_area(frames):
    areas = [int(m.sum()) for m in frames if m is not None and m.any()]
    return float(np.mean(areas)) if areas else 0.0


def reference_eval(gts, dts, categories, area, max_det, thresholds=THRESHOLDS):
    """Greedy COCO-style matching and 101-point interpolated AP, written from scratch.

    gts / dts: dicts {"video", "cat", "frames"} (+ "score" for dts). Returns (ap, ar): the mean
    over IoU thresholds and categories with ground truth in the area range, or -1 if none.
    """
    lo, hi = RANGES[area]
    inside = lambda a: lo <= a <= hi  # noqa: E731
    aps, ars = [], []
    for cat in categories:
        g_all = [g for g in gts if g["cat"] == cat]
        d_all = [d for d in dts if d["cat"] == cat]
        n_gt = sum(inside(mean_area(g["frames"])) for g in g_all)
        if n_gt == 0:
            continue
        for thr in thresholds:
            counted = []  # (score, is_true_positive) of the detections that are not ignored
            for video in sorted({x["video"] for x in g_all + d_all}):
                G = [g for g in g_all if g["video"] == video]
                g_ignored = [not inside(mean_area(g["frames"])) for g in G]
                D = sorted([d for d in d_all if d["video"] == video], key=lambda d: -d["score"])
                taken = [False] * len(G)
                for d in D[:max_det]:
                    ious = [reference_video_iou(d["frames"], g["frames"]) for g in G]
                    ok = [j for j in range(len(G)) if not taken[j] and ious[j] >= thr]
                    regular = [j for j in ok if not g_ignored[j]]
                    pool = regular or ok  # a regular ground truth is preferred
                    if pool:
                        j = max(pool, key=lambda j: ious[j])
                        taken[j] = True
                        if not g_ignored[j]:
                            counted.append((d["score"], True))
                    elif inside(mean_area(d["frames"])):
                        counted.append((d["score"], False))
            counted.sort(key=lambda e: -e[0])
            tp = np.cumsum([e[1] for e in counted])
            fp = np.cumsum([not e[1] for e in counted])
            recall = tp / n_gt
            precision = tp / np.maximum(tp + fp, 1)
            ars.append(recall[-1] if len(counted) else 0.0)
            # interpolated precision: the best precision at any recall >= r
            q = []
            for r in RECALLS:
                reached = np.nonzero(recall >= r)[0]
                q.append(precision[reached[0] :].max() if len(reached) else 0.0)
            aps.append(np.mean(q))
    if not aps:
        return -1.0, -1.0
    return float(np.mean(aps)), float(np.mean(ars))


# --------------------------------------------------------------------------------------------
# data sets
# --------------------------------------------------------------------------------------------
def hand_built():
    """2 videos, 3 ground-truth tracks, 4 predictions; every IoU is worked out by hand.

    Video 1: 4 frames of 10x10. Video 2: 3 frames of 10x10. All tracks are small.
      g1 (cat 1, video 1): rows 0-1 (20 px) in frames 0-3.                       area 80
      g2 (cat 2, video 1): row 5 (10 px) in frames 1, 2; absent in 0, 3.
      g3 (cat 1, video 2): row 9 (10 px) in frames 0-2.
      d1 (cat 1, video 1, score .9): = g1 in frames 0-2, only row 0 (10 px) in frame 3
          -> IoU (20+20+20+10) / (20+20+20+20) = 70/80 = 0.875
      d2 (cat 2, video 1, score .8): row 5 in frames 1-3, absent in 0
          -> frame 3 only in d2: IoU (10+10) / (10+10+10) = 2/3
      d3 (cat 1, video 1, score .3): rows 0-1, cols 0-5 (12 px) in frames 0-3
          -> IoU 48/80 = 0.6 with g1 (a duplicate: g1 is taken by d1 whenever d3 could match)
      d4 (cat 1, video 2, score .5): = g3 in frames 0, 1, absent in 2
          -> frame 2 only in g3: IoU 20/30 = 2/3
    Category 1 (g1, g3; detections by score d1, d4, d3):
      thresholds .50-.65 (4): d1 TP, d4 TP, d3 FP -> recall .5, 1, 1; precision 1 at all
          101 recall points -> AP 1, recall 1
      thresholds .70-.85 (4): d1 TP, d4 FP, d3 FP -> precision 1 up to recall .5 (51 of the 101
          points 0, .01, ..., .50), 0 beyond -> AP 51/101, recall .5
      thresholds .90, .95 (2): nothing matches -> AP 0, recall 0
      AP = (4 + 4*51/101) / 10; AP50 = 1; AP75 = 51/101; AR = (4 + 4*.5) / 10 = .6
    Category 2 (g2; d2): TP at thresholds .50-.65 only -> AP = AR = 4/10; AP50 1, AP75 0.
    Means over the 2 categories:
      AP = ((4 + 204/101)/10 + .4) / 2,  AP50 = 1,  AP75 = 51/101 / 2,  APs = AP,
      APm = APl = -1 (no medium or large track),  AR1 = AR10 = (.6 + .4) / 2 = .5
      (AR1: the top-scored detection of each video and category is d1, d4, d2: same recalls).
    """
    h = w = 10
    row = lambda r0, r1, c1=10: box(h, w, r0, r1, 0, c1)  # noqa: E731
    gts = [
        (1, 1, [row(0, 2)] * 4),
        (1, 2, [None, row(5, 6), row(5, 6), None]),
        (2, 1, [row(9, 10)] * 3),
    ]
    dts = [
        (1, 1, 0.9, [row(0, 2), row(0, 2), row(0, 2), row(0, 1)]),
        (1, 2, 0.8, [None, row(5, 6), row(5, 6), row(5, 6)]),
        (1, 1, 0.3, [row(0, 2, 6)] * 4),
        (2, 1, 0.5, [row(9, 10), row(9, 10), None]),
    ]
    gt = ytvis_json(
        {1: (4, h, w), 2: (3, h, w)},
        [(v, c, encode_track(f)) for v, c, f in gts],
        categories=[1, 2],
    )
    results = [
        {"video_id": v, "category_id": c, "score": s, "segmentations": encode_track(f)}
        for v, c, s, f in dts
    ]
    ap = ((4 + 4 * 51 / 101) / 10 + 0.4) / 2
    expected = {
        "AP": ap,
        "AP50": 1.0,
        "AP75": 51 / 101 / 2,
        "APs": ap,
        "APm": -1.0,
        "APl": -1.0,
        "AR1": 0.5,
        "AR10": 0.5,
    }
    return gt, results, {k: 100 * v for k, v in expected.items()}


def sized_videos():
    """Ground truth with tracks in every area range, in every segmentation format."""
    h, w = 320, 480
    small, medium, large = (20, 30), (150, 150), (280, 300)  # 600, 22500, 84000 px
    videos = {5: (3, h, w), 9: (2, h, w)}

    def moving(size, y, x, frames, step=5):
        return [
            (
                None
                if f is None
                else box(
                    h, w, y + f * step, y + f * step + size[0], x + f * step, x + f * step + size[1]
                )
            )
            for f in frames
        ]

    tracks = [
        (5, 1, encode_track(moving(small, 0, 0, [0, 1, None]))),
        (5, 1, encode_track(moving(medium, 100, 200, [0, 1, 2]))),
        (5, 2, encode_track(moving(large, 10, 150, [None, 1, 2]))),
        (9, 2, encode_track(moving(small, 200, 10, [0, 1]))),
        (9, 3, encode_track(moving(medium, 50, 50, [0, None]))),
    ]
    # one track as polygons, one as uncompressed RLE (the two other formats of the JSON)
    polys = []
    for f in range(2):
        y0, x0 = 300 - 10 * f, 400
        polys.append([[x0, y0, x0 + 40, y0, x0 + 40, y0 + 15, x0, y0 + 15]])
    tracks.append((9, 1, polys))
    m = box(h, w, 0, 100, 0, 200)
    flat = m.flatten(order="F").astype(np.int64)
    runs, cur, n = [], 0, 0
    for v in flat:
        if v != cur:
            runs.append(n)
            cur, n = v, 0
        n += 1
    runs.append(n)
    tracks.append((9, 3, [{"size": [h, w], "counts": runs}, None]))
    return ytvis_json(videos, tracks, categories=[1, 2, 3, 4])


def decode_segmentation(seg, h, w):
    """A frame of the JSON as a bool mask (pycocotools decoding), None if absent."""
    if seg is None:
        return None
    if isinstance(seg, list):
        r = mask_util.merge(mask_util.frPyObjects(seg, h, w))
    elif isinstance(seg["counts"], list):
        r = mask_util.frPyObjects(seg, h, w)
    else:
        r = seg
    return mask_util.decode(r).astype(bool)


def gt_as_results(gt):
    sizes = {v["id"]: (v["height"], v["width"]) for v in gt["videos"]}
    return [
        {
            "video_id": a["video_id"],
            "category_id": a["category_id"],
            "score": 1.0,
            "segmentations": encode_track(
                [decode_segmentation(s, *sizes[a["video_id"]]) for s in a["segmentations"]]
            ),
        }
        for a in gt["annotations"]
    ]


def score(gt, results):
    gt_api = YTVIS(gt)
    return evaluate_ytvis(gt_api, gt_api.loadRes(results))[0]


# --------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------
def test_ground_truth_as_prediction_scores_100():
    gt = sized_videos()
    metrics = score(gt, gt_as_results(gt))
    assert list(metrics) == list(METRIC_NAMES)
    for name in METRIC_NAMES[:-2] + ("AR10",):  # every area range has tracks here
        assert metrics[name] == pytest.approx(100.0), name
    # AR1 keeps one track per video and category: class1 has 2 tracks in video 5 and 1 in
    # video 9 (2 of 3 recalled), class2 one per video (1), class3 2 in video 9 (1 of 2)
    assert metrics["AR1"] == pytest.approx(100 * (2 / 3 + 1 + 1 / 2) / 3)


def test_hand_built_partial_overlaps():
    gt, results, expected = hand_built()
    metrics = score(gt, results)
    for name in METRIC_NAMES:
        assert metrics[name] == pytest.approx(expected[name], abs=1e-9), name


def random_tracks(rng, num_tracks, t, h, w):
    """Random blobs with random absent frames (and some empty present frames)."""
    tracks = []
    for _ in range(num_tracks):
        base = rng.random((h, w)) < rng.uniform(0.1, 0.6)
        frames = []
        for _ in range(t):
            u = rng.random()
            if u < 0.25:
                frames.append(None)
            elif u < 0.3:
                frames.append(np.zeros((h, w), bool))
            else:
                frames.append(base ^ (rng.random((h, w)) < 0.2))
        tracks.append(frames)
    return tracks


def test_video_iou_matches_direct_implementation():
    rng = np.random.default_rng(0)
    t, h, w = 6, 13, 17
    dts = random_tracks(rng, 7, t, h, w) + [[None] * t]
    gts = random_tracks(rng, 5, t, h, w) + [[None] * t]
    ious = video_iou([encode_track(d) for d in dts], [encode_track(g) for g in gts])
    assert ious.shape == (len(dts), len(gts))
    expected = np.array([[reference_video_iou(d, g) for g in gts] for d in dts])
    np.testing.assert_allclose(ious, expected, rtol=0, atol=1e-12)
    assert 0.05 < expected[:7, :5].mean() < 0.95  # genuinely partial overlaps


def random_prediction_set(seed=3):
    """GT tracks of all sizes in 4 videos and perturbed / wrong-class / spurious predictions."""
    rng = np.random.default_rng(seed)
    t, h, w = 4, 300, 400
    sizes = [(20, 30), (60, 90), (140, 150), (200, 250), (280, 330)]
    cats = [1, 2, 3]
    gts, dts = [], []

    def moving_box(y, x, sh, sw, present):
        out = []
        for f in range(t):
            if not present[f]:
                out.append(None)
                continue
            dy, dx = rng.integers(-(sh // 12), sh // 12 + 1, 2)
            y0, x0 = max(0, y + f * 4 + dy), max(0, x + f * 4 + dx)
            out.append(box(h, w, y0, min(h, y0 + sh), x0, min(w, x0 + sw)))
        return out

    for video in range(1, 5):
        for _ in range(int(rng.integers(2, 5))):
            sh, sw = sizes[int(rng.integers(len(sizes)))]
            y, x = int(rng.integers(0, h - sh)), int(rng.integers(0, w - sw))
            present = rng.random(t) > 0.2
            present[int(rng.integers(t))] = True
            g = {
                "video": video,
                "cat": int(rng.choice(cats)),
                "frames": moving_box(y, x, sh, sw, present),
            }
            gts.append(g)
            for _ in range(int(rng.integers(0, 4))):  # perturbed copies of the ground truth
                jitter = rng.integers(-int(0.15 * sh), int(0.15 * sh) + 1, 2)
                p = present.copy() if rng.random() < 0.6 else rng.random(t) > 0.3
                cat = g["cat"] if rng.random() < 0.8 else int(rng.choice(cats))
                dts.append(
                    {
                        "video": video,
                        "cat": cat,
                        "frames": moving_box(
                            min(max(0, y + int(jitter[0])), h - 1),
                            min(max(0, x + int(jitter[1])), w - 1),
                            int(sh * rng.uniform(0.85, 1.15)),
                            int(sw * rng.uniform(0.85, 1.15)),
                            p,
                        ),
                    }
                )
        for _ in range(int(rng.integers(1, 4))):  # spurious tracks
            sh, sw = sizes[int(rng.integers(len(sizes)))]
            dts.append(
                {
                    "video": video,
                    "cat": int(rng.choice(cats)),
                    "frames": moving_box(
                        int(rng.integers(0, h - sh)),
                        int(rng.integers(0, w - sw)),
                        sh,
                        sw,
                        rng.random(t) > 0.2,
                    ),
                }
            )
    for d in dts:  # a model writes empty masks where a track is absent: some of those too
        d["frames"] = [
            np.zeros((h, w), bool) if m is None and rng.random() < 0.5 else m for m in d["frames"]
        ]
    scores = rng.permutation(len(dts)) / len(dts) + 0.01  # distinct scores
    for d, s in zip(dts, scores):
        d["score"] = float(s)
    gt = ytvis_json(
        {v: (t, h, w) for v in range(1, 5)},
        [(g["video"], g["cat"], encode_track(g["frames"])) for g in gts],
        cats + [4],
    )
    results = [
        {
            "video_id": d["video"],
            "category_id": d["cat"],
            "score": d["score"],
            "segmentations": encode_track(d["frames"]),
        }
        for d in dts
    ]
    return gt, results, gts, dts, cats + [4]


def test_ap_matches_independent_implementation():
    gt, results, gts, dts, cats = random_prediction_set()
    metrics = score(gt, results)
    expected = {}
    for name, area, max_det in (
        ("AP", "all", 100),
        ("APs", "s", 100),
        ("APm", "m", 100),
        ("APl", "l", 100),
        ("AR1", "all", 1),
        ("AR10", "all", 10),
    ):
        ap, ar = reference_eval(gts, dts, cats, area, max_det)
        expected[name] = 100 * (ar if name.startswith("AR") else ap)
    for name, thr in (("AP50", THRESHOLDS[0]), ("AP75", THRESHOLDS[5])):
        expected[name] = 100 * reference_eval(gts, dts, cats, "all", 100, [thr])[0]
    assert all(0 < expected[k] < 100 for k in expected), expected  # a non-trivial case
    for name in METRIC_NAMES:
        assert metrics[name] == pytest.approx(expected[name], abs=1e-6), name


# --------------------------------------------------------------------------------------------
# the Detectron2 evaluator
# --------------------------------------------------------------------------------------------
DATASET_ID_TO_CONTIGUOUS = {1: 2, 2: 0, 3: 1, 4: 3}  # deliberately not the identity


@pytest.fixture
def registered_ytvis(tmp_path):
    """register(name, gt_dict) -> registers a tiny video dataset whose metadata has the
    YouTube-VIS JSON and the id map (as the YouTube-VIS registration does)."""
    names = []

    def register(name, gt):
        json_file = write_json(tmp_path / f"{name}.json", gt)
        records = [
            {
                "video_id": v["id"],
                "length": v["length"],
                "height": v["height"],
                "width": v["width"],
                "file_names": v["file_names"],
            }
            for v in gt["videos"]
        ]
        unregister(name)
        DatasetCatalog.register(name, lambda: records)
        MetadataCatalog.get(name).set(
            json_file=json_file,
            thing_dataset_id_to_contiguous_id=DATASET_ID_TO_CONTIGUOUS,
            thing_classes=[c["name"] for c in gt["categories"]],
            evaluator_type="ytvis",
        )
        names.append(name)
        return name

    yield register
    for name in names:
        unregister(name)


class GroundTruthVideoModel(torch.nn.Module):
    """A fake video model whose outputs are the ground-truth tracks of each clip (score 1)."""

    def __init__(self, gt):
        super().__init__()
        self.gt = gt
        self.calls = 0

    def forward(self, batched_inputs):
        self.calls += 1
        outputs = []
        for clip in batched_inputs:
            t, h, w = clip["length"], clip["height"], clip["width"]
            anns = [a for a in self.gt["annotations"] if a["video_id"] == clip["video_id"]]
            masks = torch.zeros((len(anns), t, h, w), dtype=torch.bool)
            for i, a in enumerate(anns):
                for f, seg in enumerate(a["segmentations"]):
                    m = decode_segmentation(seg, h, w)
                    if m is not None:
                        masks[i, f] = torch.from_numpy(m)
            outputs.append(
                {
                    "image_size": (h, w),
                    "pred_scores": torch.ones(len(anns)),
                    "pred_labels": torch.tensor(
                        [DATASET_ID_TO_CONTIGUOUS[a["category_id"]] for a in anns],
                        dtype=torch.int64,
                    ),
                    "pred_masks": masks,
                }
            )
        return outputs


def run_inference(name, gt, output_dir):
    loader = [[record] for record in DatasetCatalog.get(name)]  # batches of one clip
    model = GroundTruthVideoModel(gt)
    results = inference_on_dataset(model, loader, YTVISEvaluator(name, output_dir=str(output_dir)))
    assert model.calls == len(loader)
    return results


def test_evaluator_in_inference_on_dataset(registered_ytvis, tmp_path):
    gt = sized_videos()
    name = registered_ytvis("ytvis_eval_test_sized", gt)
    results = run_inference(name, gt, tmp_path / "out")
    assert list(results) == ["segm"]
    segm = results["segm"]
    for metric in METRIC_NAMES[:-2] + ("AR10",):
        assert segm[metric] == pytest.approx(100.0), metric
    assert segm["AP-class1"] == pytest.approx(100.0) and np.isnan(segm["AP-class4"])

    # results.json: the benchmark format with dataset category ids and str RLE counts
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(written) == len(gt["annotations"])
    lengths = {v["id"]: v["length"] for v in gt["videos"]}
    for r in written:
        assert set(r) == {"video_id", "score", "category_id", "segmentations"}
        assert r["category_id"] in {1, 2, 3}
        assert len(r["segmentations"]) == lengths[r["video_id"]]
        assert all(isinstance(s["counts"], str) for s in r["segmentations"])
    # results.zip holds the same results.json at its root, and scores the same
    with zipfile.ZipFile(tmp_path / "out" / "results.zip") as z:
        assert z.namelist() == ["results.json"]
        assert json.loads(z.read("results.json")) == written
    rescored = score(gt, load_results(str(tmp_path / "out" / "results.zip")))
    assert rescored == {k: segm[k] for k in METRIC_NAMES}


def test_evaluator_partial_predictions_round_trip(registered_ytvis, tmp_path):
    """The hand-built predictions through process()/evaluate() give the hand-computed AP."""
    gt, results, expected = hand_built()
    name = registered_ytvis("ytvis_eval_test_hand", gt)
    evaluator = YTVISEvaluator(name, distributed=False, output_dir=str(tmp_path))
    evaluator.reset()
    for record in DatasetCatalog.get(name):
        mine = [r for r in results if r["video_id"] == record["video_id"]]
        t, h, w = record["length"], record["height"], record["width"]
        masks = np.zeros((len(mine), t, h, w), bool)
        for i, r in enumerate(mine):
            for f, seg in enumerate(r["segmentations"]):
                if seg is not None:
                    masks[i, f] = mask_util.decode(seg)
        evaluator.process(
            [record],
            [
                {
                    "image_size": (h, w),
                    "pred_scores": [r["score"] for r in mine],
                    "pred_labels": [DATASET_ID_TO_CONTIGUOUS[r["category_id"]] for r in mine],
                    "pred_masks": list(masks),
                }
            ],
        )
    segm = evaluator.evaluate()["segm"]
    for metric in METRIC_NAMES:
        assert segm[metric] == pytest.approx(expected[metric], abs=1e-9), metric
    # absent frames were written as empty masks: the written file scores the same
    rescored = score(gt, load_results(str(tmp_path / "results.json")))
    assert rescored == {k: segm[k] for k in METRIC_NAMES}


def test_split_without_annotations_writes_submission_only(registered_ytvis, tmp_path, caplog):
    gt = sized_videos()
    del gt["annotations"]  # like valid.json / test.json of YouTube-VIS
    name = registered_ytvis("ytvis_eval_test_noanno", gt)
    full = sized_videos()
    with caplog.at_level(logging.INFO, logger="mask2former.evaluation.ytvis_evaluation"):
        results = run_inference(name, full, tmp_path / "sub")
    assert results == {}
    zip_path = tmp_path / "sub" / "results.zip"
    assert (tmp_path / "sub" / "results.json").is_file() and zip_path.is_file()
    assert str(zip_path) in caplog.text and "benchmark server" in caplog.text
    # the submission scores 100 against the (here known) annotations
    assert score(full, load_results(str(zip_path)))["AP"] == pytest.approx(100.0)


def test_evaluator_clear_errors(registered_ytvis):
    gt, _, _ = hand_built()
    name = registered_ytvis("ytvis_eval_test_err", gt)
    evaluator = YTVISEvaluator(name)
    record = DatasetCatalog.get(name)[0]  # video 1: 4 frames of 10x10
    out = {"pred_scores": [0.5], "pred_labels": [0], "pred_masks": np.zeros((1, 3, 10, 10), bool)}
    with pytest.raises(ValueError, match="3 frames but the video has 4"):
        evaluator.process([record], [out])
    out["pred_masks"] = np.zeros((1, 4, 10, 12), bool)
    with pytest.raises(ValueError, match="resize"):
        evaluator.process([record], [out])
    out["pred_masks"], out["pred_labels"] = np.zeros((1, 4, 10, 10), bool), [7]
    with pytest.raises(ValueError, match="label 7 is not a contiguous id"):
        evaluator.process([record], [out])
    unregister("ytvis_eval_test_nometa")
    MetadataCatalog.get("ytvis_eval_test_nometa").set(json_file="x.json")
    try:
        with pytest.raises(ValueError, match="thing_dataset_id_to_contiguous_id"):
            YTVISEvaluator("ytvis_eval_test_nometa")
    finally:
        unregister("ytvis_eval_test_nometa")


# --------------------------------------------------------------------------------------------
# the offline CLI
# --------------------------------------------------------------------------------------------
def test_cli_writes_metrics_with_minus_100_for_empty_ranges(tmp_path, capsys):
    gt, results, expected = hand_built()
    gt_file = write_json(tmp_path / "valid.json", gt)
    res_file = write_json(tmp_path / "results.json", results)
    out = tmp_path / "metrics" / "metrics.json"
    assert ytvis_eval_main(["--gt", gt_file, "--results", res_file, "--output", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert list(metrics) == list(METRIC_NAMES)
    assert metrics["APm"] == metrics["APl"] == -100  # no medium or large track
    for name in METRIC_NAMES:
        assert metrics[name] == pytest.approx(expected[name], abs=1e-9), name
    printed = capsys.readouterr().out
    assert "AP50" in printed and f"{expected['AP']:.3f}" in printed


def test_cli_as_module(tmp_path):
    gt, results, expected = hand_built()
    out = tmp_path / "metrics.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mask2former.evaluation.ytvis_eval",
            "--gt",
            write_json(tmp_path / "valid.json", gt),
            "--results",
            write_json(tmp_path / "results.json", results),
            "--output",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["AP"] == pytest.approx(expected["AP"], abs=1e-9)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: {"results": r}, "must be a JSON list"),
        (
            lambda r: [dict(r[0], video_id=99)] + r[1:],
            "video_id 99 is not a video of the ground truth",
        ),
        (
            lambda r: [dict(r[0], segmentations=r[0]["segmentations"][:3])] + r[1:],
            "has 3 entries but video 1 has 4 frames",
        ),
        (lambda r: r[:1] + [dict(r[1], category_id=42)] + r[2:], r"results\[1\]: category_id 42"),
        (
            lambda r: [dict(r[0], segmentations=[rle(np.ones((5, 5), bool))] * 4)],
            r"mask size \[5, 5\] differs from the video size \[10, 10\]",
        ),
    ],
    ids=["not-a-list", "unknown-video", "wrong-length", "unknown-category", "wrong-size"],
)
def test_cli_clear_errors(tmp_path, capsys, mutate, message):
    gt, results, _ = hand_built()
    gt_file = write_json(tmp_path / "valid.json", gt)
    res_file = write_json(tmp_path / "results.json", mutate(results))
    out = tmp_path / "metrics.json"
    assert ytvis_eval_main(["--gt", gt_file, "--results", res_file, "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ytvis_eval: error:")
    assert re.search(message, err), err
    assert not out.exists()
    with pytest.raises(ValueError, match=message):  # the same from the Python API
        YTVIS(gt).loadRes(mutate(results))


def test_cli_missing_files_and_unannotated_gt(tmp_path, capsys):
    gt, results, _ = hand_built()
    res_file = write_json(tmp_path / "results.json", results)
    assert ytvis_eval_main(["--gt", str(tmp_path / "nope.json"), "--results", res_file]) == 1
    assert "annotation file not found" in capsys.readouterr().err
    del gt["annotations"]
    gt_file = write_json(tmp_path / "test.json", gt)
    assert ytvis_eval_main(["--gt", gt_file, "--results", res_file]) == 1
    assert "benchmark server" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{not json")
    assert ytvis_eval_main(["--gt", str(tmp_path / "bad.json"), "--results", res_file]) == 1
    assert "not valid JSON" in capsys.readouterr().err


@pytest.mark.slow  # three interpreters import torch and Detectron2
def test_evaluator_gathers_two_workers(tmp_path):
    """Two gloo workers each see half of the videos; worker 0 scores all of them."""
    import socket

    gt, results, expected = hand_built()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = os.path.join(REPO, "tests", "evaluation", "ytvis_two_workers.py")
    proc = subprocess.run(
        [
            sys.executable,
            script,
            write_json(tmp_path / "gt.json", gt),
            write_json(tmp_path / "res.json", results),
            str(tmp_path),
            str(port),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "rank1.json").read_text()) == {}
    segm = json.loads((tmp_path / "rank0.json").read_text())["segm"]
    for metric in METRIC_NAMES:
        assert segm[metric] == pytest.approx(expected[metric], abs=1e-9), metric
    assert len(json.loads((tmp_path / "results" / "results.json").read_text())) == len(results)
