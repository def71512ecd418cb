"""YouTube-VIS evaluation: video AP on pycocotools' COCOeval, and a Detectron2 evaluator.

Video AP (SPEC §9) is COCO's mask AP with videos in place of images and tracks in place of
masks. Only three things differ from COCO, and only those are overridden:

* the data: :class:`YTVIS` is pycocotools' ``COCO`` API over a YouTube-VIS JSON whose "images"
  are the videos; each annotation is a track with one entry per frame in ``segmentations``
  (RLE, polygons or ``None`` where the object is absent). Its ``area`` is the track's mean
  *non-empty* frame area and ``annToRLE`` returns the per-frame RLE list;
* the IoU of a predicted and a ground-truth track (:func:`video_iou`):
  ``sum_t |P_t ∩ G_t| / sum_t |P_t ∪ G_t|`` (a frame where only one is present adds its area to
  the union) — :meth:`YTVISeval.computeIoU`;
* the area ranges: small < 128², medium 128²..256², large > 256² (:class:`YTVISeval`).

Matching, accumulation (10 IoU thresholds 0.50:0.05:0.95, 101 recall points, maxDets 1/10/100)
and the summary are COCOeval's. :func:`evaluate_ytvis` returns AP, AP50, AP75, APs, APm, APl,
AR1, AR10 in percent (-100 where a range has no ground-truth track, COCO's -1).

:class:`YTVISEvaluator` is the Detectron2 :class:`DatasetEvaluator` of the video model: it
converts each clip's outputs to the results format (``{"video_id", "score", "category_id",
"segmentations"}``), writes ``results.json`` and ``results.zip`` (the file the YouTube-VIS
benchmark server accepts) and computes the metrics when the split has public annotations.
"""

import contextlib
import copy
import io
import json
import logging
import math
import os
import zipfile
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm
from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import create_small_table

__all__ = [
    "METRIC_NAMES",
    "AREA_RANGES",
    "YTVIS",
    "YTVISeval",
    "YTVISEvaluator",
    "video_iou",
    "evaluate_ytvis",
    "load_results",
    "video_outputs_to_results",
    "write_results",
]

logger = logging.getLogger(__name__)

#: The summary metrics, in COCOeval.stats order (stats[0:8]).
METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10")
#: [min, max] mean track area of the ranges all / small / medium / large (SPEC §9).
AREA_RANGES = [[0, 1e5**2], [0, 128**2], [128**2, 256**2], [256**2, 1e5**2]]


# --------------------------------------------------------------------------------------------
# Track masks
# --------------------------------------------------------------------------------------------
def _frame_to_rle(seg, height: int, width: int, where: str):
    """One frame's segmentation (compressed / uncompressed RLE, polygons, or None) as a
    compressed RLE of size (height, width), or None where the object is absent."""
    if seg is None:
        return None
    if isinstance(seg, list):  # polygons [[x0, y0, x1, y1, ...], ...]
        polys = [p for p in seg if len(p) >= 6]
        if not polys:
            return mask_util.encode(np.zeros((height, width, 1), np.uint8, order="F"))[0]
        return mask_util.merge(mask_util.frPyObjects(polys, height, width))
    if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
        raise ValueError(
            f"{where}: a frame's segmentation must be an RLE dict {{'size', 'counts'}}, a list "
            f"of polygons or null, got {type(seg).__name__} {str(seg)[:80]}"
        )
    if list(seg["size"]) != [height, width]:
        raise ValueError(
            f"{where}: mask size {list(seg['size'])} differs from the video size "
            f"[{height}, {width}]; masks must be at the video's original resolution"
        )
    if isinstance(seg["counts"], list):  # uncompressed RLE
        return mask_util.frPyObjects(seg, height, width)
    return seg


def _mean_nonempty_area(rles: Sequence) -> float:
    """Mean area over the frames where the track is present and non-empty (0 if none)."""
    present = [r for r in rles if r is not None]
    areas = mask_util.area(present).astype(np.float64) if present else np.zeros(0)
    areas = areas[areas > 0]
    return float(areas.mean()) if len(areas) else 0.0


def video_iou(dt_tracks: Sequence[Sequence], gt_tracks: Sequence[Sequence]) -> np.ndarray:
    """Video IoU of every (predicted, ground-truth) track pair.

    Args:
        dt_tracks, gt_tracks: D and G tracks, each a list of T compressed RLEs (None where the
            track is absent); all of the same video (same T and frame size).

    Returns:
        float array [D, G]: ``sum_t |d_t ∩ g_t| / sum_t |d_t ∪ g_t|`` (0 where the union is 0).
    """
    D, G = len(dt_tracks), len(gt_tracks)
    if D == 0 or G == 0:
        return np.zeros((D, G))
    num_frames = {len(t) for t in list(dt_tracks) + list(gt_tracks)}
    if len(num_frames) != 1:
        raise ValueError(f"video_iou: tracks of one video have different lengths {num_frames}")
    inter = np.zeros((D, G))
    union = np.zeros((D, G))
    for t in range(num_frames.pop()):
        d_idx = [i for i, trk in enumerate(dt_tracks) if trk[t] is not None]
        g_idx = [j for j, trk in enumerate(gt_tracks) if trk[t] is not None]
        d_area, g_area = np.zeros(D), np.zeros(G)
        if d_idx:
            d_area[d_idx] = mask_util.area([dt_tracks[i][t] for i in d_idx])
        if g_idx:
            g_area[g_idx] = mask_util.area([gt_tracks[j][t] for j in g_idx])
        union += d_area[:, None] + g_area[None, :]
        if d_idx and g_idx:
            # with every gt marked "crowd", pycocotools' IoU is |d ∩ g| / |d|
            frac = np.asarray(
                mask_util.iou(
                    [dt_tracks[i][t] for i in d_idx],
                    [gt_tracks[j][t] for j in g_idx],
                    [1] * len(g_idx),
                )
            ).reshape(len(d_idx), len(g_idx))
            inter[np.ix_(d_idx, g_idx)] += np.rint(frac * d_area[d_idx][:, None])
    union -= inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


# --------------------------------------------------------------------------------------------
# Dataset API and COCOeval subclass
# --------------------------------------------------------------------------------------------
def _read_json(path: str, what: str):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} {path} is not valid JSON: {e}") from None


def _video_size(video: dict, where: str) -> Tuple[int, int, int]:
    missing = [k for k in ("id", "height", "width") if k not in video]
    if missing or ("length" not in video and "file_names" not in video):
        raise ValueError(
            f"{where}: video entry {str(video)[:100]} lacks {missing or ['length']} "
            "(a YouTube-VIS video has 'id', 'height', 'width', 'length', 'file_names')"
        )
    length = video["length"] if "length" in video else len(video["file_names"])
    return int(length), int(video["height"]), int(video["width"])


def _track_rles(segs, video: dict, where: str) -> List:
    length, height, width = _video_size(video, where)
    if not isinstance(segs, list):
        raise ValueError(
            f"{where}: 'segmentations' must be a list with one entry per frame, got "
            f"{type(segs).__name__}"
        )
    if len(segs) != length:
        raise ValueError(
            f"{where}: 'segmentations' has {len(segs)} entries but video {video['id']} has "
            f"{length} frames (one entry per frame, null where the object is absent)"
        )
    return [_frame_to_rle(s, height, width, f"{where}, frame {t}") for t, s in enumerate(segs)]


class YTVIS(COCO):
    """pycocotools' COCO API over a YouTube-VIS dataset; its "images" are the videos.

    Each annotation is one track (``id``, ``video_id``, ``category_id``, ``segmentations``);
    the index stores a normalised copy with ``image_id`` (= ``video_id``), ``iscrowd``, the
    frames converted to compressed RLE and ``area`` = the mean non-empty frame area, so that
    COCOeval's per-image bookkeeping applies to videos unchanged.

    Args:
        dataset: path of a YouTube-VIS JSON or its loaded dict (``videos``, ``categories``,
            optional ``annotations``: absent or empty for splits without public ground truth).
    """

    def __init__(self, dataset=None):
        super().__init__()
        if dataset is None:
            return
        source = "YouTube-VIS annotations"
        if isinstance(dataset, (str, os.PathLike)):
            source = f"YouTube-VIS annotation file {dataset}"
            dataset = _read_json(os.fspath(dataset), "YouTube-VIS annotation file")
        self.dataset = self._normalise(dataset, source)
        self.createIndex()

    @staticmethod
    def _normalise(dataset, source: str) -> dict:
        if (
            not isinstance(dataset, dict)
            or not isinstance(dataset.get("videos"), list)
            or not (isinstance(dataset.get("categories"), list))
        ):
            raise ValueError(
                f"{source}: expected a JSON object with lists 'videos' and 'categories' (and "
                f"'annotations'), got {type(dataset).__name__} with keys "
                f"{sorted(dataset) if isinstance(dataset, dict) else '-'}"
            )
        videos = {}
        for v in dataset["videos"]:
            _video_size(v, source)
            videos[v["id"]] = v
        cat_ids = {c["id"] for c in dataset["categories"]}
        anns = []
        for k, ann in enumerate(dataset.get("annotations") or []):
            where = f"{source}, annotation {ann.get('id', k)}"
            for key in ("id", "video_id", "category_id", "segmentations"):
                if key not in ann:
                    raise ValueError(f"{where}: missing '{key}'")
            if ann["video_id"] not in videos:
                raise ValueError(f"{where}: video_id {ann['video_id']!r} is not in 'videos'")
            if ann["category_id"] not in cat_ids:
                raise ValueError(f"{where}: category_id {ann['category_id']!r} not in 'categories'")
            rles = _track_rles(ann["segmentations"], videos[ann["video_id"]], where)
            anns.append(
                dict(
                    {k: v for k, v in ann.items() if k not in ("segmentations", "areas", "bboxes")},
                    segmentations=rles,
                    image_id=ann["video_id"],
                    iscrowd=int(ann.get("iscrowd", 0)),
                    area=_mean_nonempty_area(rles),
                )
            )
        return {
            "videos": list(dataset["videos"]),
            "images": list(dataset["videos"]),  # COCO's index: videos are the "images"
            "categories": list(dataset["categories"]),
            "annotations": anns,
        }

    def createIndex(self):
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            super().createIndex()

    @property
    def has_annotations(self) -> bool:
        return len(self.dataset.get("annotations", [])) > 0

    def annToRLE(self, ann):
        """The track's per-frame compressed RLEs (None where absent)."""
        return ann["segmentations"]

    def loadRes(self, results):
        """The predicted tracks as a :class:`YTVIS` over the same videos and categories.

        Args:
            results: list of ``{"video_id", "score", "category_id", "segmentations"}`` (the
                results.json format), or the path of a results .json / .zip.

        Raises:
            ValueError: naming the first entry that is not in the format or does not fit the
                ground truth (unknown video or category, wrong number of frames, mask size).
        """
        if isinstance(results, (str, os.PathLike)):
            results = load_results(os.fspath(results))
        if not isinstance(results, list):
            raise ValueError(
                "YouTube-VIS results must be a JSON list of {'video_id', 'score', "
                f"'category_id', 'segmentations'}}, got {type(results).__name__}"
            )
        anns = []
        for i, r in enumerate(results):
            where = f"results[{i}]"
            if not isinstance(r, dict):
                raise ValueError(f"{where}: expected an object, got {type(r).__name__}")
            missing = [
                k for k in ("video_id", "score", "category_id", "segmentations") if k not in r
            ]
            if missing:
                raise ValueError(f"{where}: missing {missing}")
            if r["video_id"] not in self.imgs:
                raise ValueError(
                    f"{where}: video_id {r['video_id']!r} is not a video of the ground truth "
                    f"({len(self.imgs)} videos); were the results made on another split?"
                )
            if r["category_id"] not in self.cats:
                raise ValueError(
                    f"{where}: category_id {r['category_id']!r} is not a category of the ground "
                    f"truth (ids {sorted(self.cats)}); results use the dataset's category ids"
                )
            score = r["score"]
            if (
                isinstance(score, bool)
                or not isinstance(score, (int, float))
                or not math.isfinite(score)
            ):
                raise ValueError(f"{where}: score must be a finite number, got {score!r}")
            rles = _track_rles(r["segmentations"], self.imgs[r["video_id"]], where)
            anns.append(
                {
                    "id": i + 1,
                    "video_id": r["video_id"],
                    "image_id": r["video_id"],
                    "category_id": r["category_id"],
                    "score": float(score),
                    "segmentations": rles,
                    "iscrowd": 0,
                    "area": _mean_nonempty_area(rles),
                }
            )
        res = YTVIS()
        res.dataset = {
            "videos": self.dataset["videos"],
            "images": self.dataset["images"],
            "categories": copy.deepcopy(self.dataset["categories"]),
            "annotations": anns,
        }
        res.createIndex()
        return res


class YTVISeval(COCOeval):
    """COCOeval over videos: video IoU of tracks and YouTube-VIS area ranges (see module doc).

    ``ytvis_gt`` / ``ytvis_dt`` are :class:`YTVIS` (ground truth / ``gt.loadRes(results)``).
    """

    def __init__(self, ytvis_gt=None, ytvis_dt=None):
        super().__init__(ytvis_gt, ytvis_dt, iouType="segm")
        self.params.areaRng = copy.deepcopy(AREA_RANGES)

    def computeIoU(self, imgId, catId):
        """Video IoU [D, G] of video ``imgId``'s tracks, detections by descending score."""
        p = self.params
        if p.useCats:
            gt = self._gts[imgId, catId]
            dt = self._dts[imgId, catId]
        else:
            gt = [g for c in p.catIds for g in self._gts[imgId, c]]
            dt = [d for c in p.catIds for d in self._dts[imgId, c]]
        if len(gt) == 0 and len(dt) == 0:
            return []
        order = np.argsort([-d["score"] for d in dt], kind="mergesort")
        dt = [dt[i] for i in order[: p.maxDets[-1]]]
        return video_iou([d["segmentation"] for d in dt], [g["segmentation"] for g in gt])


def evaluate_ytvis(gt: YTVIS, dt: YTVIS) -> Tuple["OrderedDict[str, float]", Dict[str, float], str]:
    """Video AP of the predicted tracks ``dt`` against ``gt``.

    Returns:
        (metrics, per_category, summary): ``metrics`` maps :data:`METRIC_NAMES` to percent
        (-100 where no ground-truth track falls in the area range); ``per_category`` maps each
        category name to its AP in percent (nan without ground truth); ``summary`` is
        COCOeval's printed summary.
    """
    if not gt.has_annotations:
        raise ValueError(
            "the ground truth has no annotations (a split without public ground truth): its "
            "results are scored by the YouTube-VIS benchmark server"
        )
    ev = YTVISeval(gt, dt)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    metrics = OrderedDict((name, float(ev.stats[i] * 100)) for i, name in enumerate(METRIC_NAMES))
    precision = ev.eval["precision"]  # [T, R, K, A, M]
    per_category = {}
    for k, cat_id in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        per_category[gt.cats[cat_id]["name"]] = float(p.mean() * 100) if p.size else float("nan")
    summary = "\n".join(line for line in buf.getvalue().splitlines() if "Average" in line)
    return metrics, per_category, summary


# --------------------------------------------------------------------------------------------
# Results files
# --------------------------------------------------------------------------------------------
def load_results(path: str):
    """The results list of a ``results.json`` or of a ``results.zip`` holding one."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"results file not found: {path}")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if os.path.basename(n) == "results.json"]
            if not names:
                raise ValueError(f"{path}: the zip holds no results.json (it has {z.namelist()})")
            try:
                return json.loads(z.read(names[0]))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{names[0]} is not valid JSON: {e}") from None
    return _read_json(path, "results file")


def write_results(results: list, output_dir: str) -> Tuple[str, str]:
    """Write ``results.json`` and ``results.zip`` (holding results.json at its root, the file
    the YouTube-VIS benchmark server accepts) into ``output_dir``; returns both paths."""
    os.makedirs(output_dir, exist_ok=True)
    text = json.dumps(results)
    json_path = os.path.join(output_dir, "results.json")
    zip_path = os.path.join(output_dir, "results.zip")
    with open(json_path, "w") as f:
        f.write(text)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("results.json", text)
    return json_path, zip_path


def _as_numpy(x):
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def video_outputs_to_results(
    output: dict,
    video_id,
    contiguous_to_dataset_id: Dict[int, int],
    length: Optional[int] = None,
    size: Optional[Tuple[int, int]] = None,
) -> List[dict]:
    """Convert one clip's video-model output to results entries.

    Args:
        output: ``{"pred_scores": [N], "pred_labels": [N] (contiguous ids), "pred_masks":
            N masks (T, H, W) bool}`` (a tensor [N, T, H, W] or a list).
        contiguous_to_dataset_id: the inverse of ``thing_dataset_id_to_contiguous_id``.
        length, size: the video's frame count and (height, width), checked when given.

    Returns:
        ``[{"video_id", "score", "category_id", "segmentations": [RLE with str counts] * T}]``.
    """
    for key in ("pred_scores", "pred_labels", "pred_masks"):
        if key not in output:
            raise ValueError(
                f"video {video_id}: the model output lacks '{key}' (a video model returns "
                f"'pred_scores', 'pred_labels', 'pred_masks'; got keys {sorted(output)})"
            )
    scores = _as_numpy(output["pred_scores"]).reshape(-1)
    labels = _as_numpy(output["pred_labels"]).reshape(-1)
    masks = output["pred_masks"]
    if not (len(scores) == len(labels) == len(masks)):
        raise ValueError(
            f"video {video_id}: {len(scores)} scores, {len(labels)} labels and {len(masks)} "
            "masks; the model must return one of each per predicted track"
        )
    if hasattr(video_id, "item"):  # numpy / torch scalar -> JSON-serialisable int
        video_id = video_id.item()
    results = []
    for score, label, mask in zip(scores, labels, masks):
        mask = _as_numpy(mask).astype(bool)
        if mask.ndim != 3:
            raise ValueError(
                f"video {video_id}: a predicted mask has shape {mask.shape}, not (T, H, W)"
            )
        if length is not None and mask.shape[0] != length:
            raise ValueError(
                f"video {video_id}: the model returned masks for {mask.shape[0]} frames but the "
                f"video has {length}; evaluation needs a mask for every frame"
            )
        if size is not None and tuple(mask.shape[1:]) != tuple(size):
            raise ValueError(
                f"video {video_id}: masks of size {tuple(mask.shape[1:])}, expected the video's "
                f"{tuple(size)}; the model must resize them to the input's height/width"
            )
        if int(label) not in contiguous_to_dataset_id:
            raise ValueError(
                f"video {video_id}: predicted label {int(label)} is not a contiguous id of the "
                f"dataset ({sorted(contiguous_to_dataset_id)})"
            )
        rles = mask_util.encode(np.asfortranarray(mask.transpose(1, 2, 0).astype(np.uint8)))
        for rle in rles:
            rle["counts"] = rle["counts"].decode("ascii")
        results.append(
            {
                "video_id": video_id,
                "score": float(score),
                "category_id": int(contiguous_to_dataset_id[int(label)]),
                "segmentations": list(rles),
            }
        )
    return results


# --------------------------------------------------------------------------------------------
# Detectron2 evaluator
# --------------------------------------------------------------------------------------------
class YTVISEvaluator(DatasetEvaluator):
    """YouTube-VIS evaluator of a video model, for Detectron2's ``inference_on_dataset``.

    ``process`` takes per-clip inputs (``"video_id"``, ``"length"``, ``"height"``, ``"width"``)
    and the model's outputs (``"pred_scores"``, ``"pred_labels"`` contiguous ids,
    ``"pred_masks"`` N x (T, H, W) bool). ``evaluate`` gathers the predictions of all workers,
    writes ``results.json`` and ``results.zip`` to ``output_dir`` and, when the dataset's
    ``json_file`` has annotations, returns ``{"segm": {"AP", "AP50", "AP75", "APs", "APm",
    "APl", "AR1", "AR10", "AP-<class>"...}}`` in percent. Splits without public annotations get
    the files only (the benchmark server scores them) and an empty result.

    Metadata used: ``json_file`` (the YouTube-VIS JSON) and
    ``thing_dataset_id_to_contiguous_id``.
    """

    def __init__(
        self, dataset_name: str, distributed: bool = True, output_dir: Optional[str] = None
    ):
        meta = MetadataCatalog.get(dataset_name)
        missing = [
            k for k in ("json_file", "thing_dataset_id_to_contiguous_id") if not hasattr(meta, k)
        ]
        if missing:
            raise ValueError(
                f"YTVISEvaluator needs {missing} in the metadata of '{dataset_name}' (register "
                "YouTube-VIS datasets with register_ytvis_instances, which sets them)"
            )
        self._dataset_name = dataset_name
        self._distributed = distributed
        self._output_dir = output_dir
        self._contiguous_to_dataset_id = {
            v: k for k, v in meta.thing_dataset_id_to_contiguous_id.items()
        }
        self._gt = YTVIS(PathManager.get_local_path(meta.json_file))
        self.reset()

    def reset(self):
        self._predictions = []
        self._video_ids = []

    def process(self, inputs, outputs):
        if isinstance(outputs, dict):  # VideoMaskFormer returns one clip's dict, as the original
            outputs = [outputs]
        for inp, out in zip(inputs, outputs):
            size = (inp["height"], inp["width"]) if "height" in inp and "width" in inp else None
            self._video_ids.append(inp["video_id"])
            self._predictions.extend(
                video_outputs_to_results(
                    out, inp["video_id"], self._contiguous_to_dataset_id, inp.get("length"), size
                )
            )

    def evaluate(self):
        predictions, video_ids = self._predictions, self._video_ids
        if self._distributed:
            comm.synchronize()
            predictions = [p for part in comm.gather(predictions, dst=0) for p in part]
            video_ids = [v for part in comm.gather(video_ids, dst=0) for v in part]
            if not comm.is_main_process():
                return {}
        paths = None
        if self._output_dir:
            paths = write_results(predictions, self._output_dir)
            logger.info(
                "%s: wrote %d predicted tracks of %d videos to %s and %s",
                self._dataset_name,
                len(predictions),
                len(set(video_ids)),
                *paths,
            )
        if not self._gt.has_annotations:
            if paths is None:
                logger.warning(
                    "%s has no public ground truth and no output_dir was given: the predictions "
                    "were not saved. Pass output_dir to write results.json / results.zip for "
                    "the YouTube-VIS benchmark server.",
                    self._dataset_name,
                )
            else:
                logger.info(
                    "%s has no public ground truth: submit %s to the YouTube-VIS benchmark "
                    "server (CodaLab), which scores it; no metrics are computed here.",
                    self._dataset_name,
                    paths[1],
                )
            return OrderedDict()
        not_seen = set(self._gt.imgs) - set(video_ids)
        if not_seen:
            logger.warning(
                "%s: %d of %d ground-truth videos were not evaluated (e.g. %s); their tracks "
                "count as missed.",
                self._dataset_name,
                len(not_seen),
                len(self._gt.imgs),
                sorted(not_seen)[:5],
            )
        metrics, per_category, summary = evaluate_ytvis(self._gt, self._gt.loadRes(predictions))
        logger.info("YouTube-VIS evaluation of %s:\n%s", self._dataset_name, summary)
        logger.info("Video AP in percent:\n%s", create_small_table(metrics))
        metrics.update((f"AP-{name}", ap) for name, ap in per_category.items())
        return OrderedDict(segm=metrics)
