"""Panoptic quality (PQ) of a semantic segmentation.

As in the original Mask2Former's ``tools/evaluate_pq_for_semantic_segmentation.py``: in each
image, the region of each semantic class (ground truth or prediction) is treated as one segment,
and the segments are scored with the panoptic quality formula of Kirillov et al. (the rules of
the COCO panoptic API, panopticapi):

- a ground-truth and a predicted segment of the same class match when their IoU > 0.5, where
  the union leaves out the predicted pixels that fall on void ground truth;
- an unmatched ground-truth segment is a false negative;
- an unmatched predicted segment is a false positive, unless more than half of it lies on void
  ground truth (then it is ignored);
- per class: PQ = sum(IoU of matches) / (TP + FP/2 + FN/2), SQ = sum(IoU) / TP,
  RQ = TP / (TP + FP/2 + FN/2); the averages run over the classes with TP + FP + FN > 0.

Everything per image follows from one confusion matrix, so the computation is vectorised.
The same matrices (summed over images) give Detectron2's mIoU, reported beside PQ.
"""

from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

__all__ = ["semantic_confusion", "segment_matches", "SemanticPQ"]


def semantic_confusion(
    gt: np.ndarray, pred: np.ndarray, num_classes: int, ignore_label: int
) -> np.ndarray:
    """Pixel confusion matrix of one image, with a void row and column.

    Args:
        gt: int array [H, W] of ground-truth classes in ``0..K-1``; ``ignore_label`` is void.
        pred: int array [H, W] of predicted classes in ``0..K-1``; any other value (e.g.
            ``ignore_label``) means "no prediction" for that pixel.
        num_classes: K.
        ignore_label: the void value of ``gt``.
    Returns:
        int64 array [K+1, K+1]: entry (g, p) counts the pixels of ground-truth class g predicted
        as class p; row K is void ground truth, column K is "no prediction".
    """
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in size")
    k = num_classes
    g = gt.astype(np.int64).ravel()
    valid = (g >= 0) & (g < k)
    bad = ~valid & (g != ignore_label)
    if bad.any():
        raise ValueError(
            f"ground truth has labels {sorted(set(np.unique(g[bad]).tolist()))[:10]} outside "
            f"0..{k - 1} that are not the ignore label {ignore_label}"
        )
    g = np.where(valid, g, k)
    p = pred.astype(np.int64).ravel()
    p = np.where((p >= 0) & (p < k), p, k)
    return np.bincount(g * (k + 1) + p, minlength=(k + 1) ** 2).reshape(k + 1, k + 1)


def segment_matches(conf: np.ndarray) -> Dict[str, np.ndarray]:
    """Panoptic-quality counts of one image from its confusion matrix.

    Args:
        conf: [K+1, K+1] from :func:`semantic_confusion` (one image: one segment per class).
    Returns:
        dict of arrays [K]: "tp", "fp", "fn" (0 or 1) and "iou" (IoU of the match, else 0).
    """
    k = conf.shape[0] - 1
    inter = np.diag(conf)[:k].astype(np.float64)
    gt_area = conf[:k, :].sum(axis=1).astype(np.float64)  # incl. pixels predicted as nothing
    pred_area = conf[:, :k].sum(axis=0).astype(np.float64)  # incl. pixels on void ground truth
    pred_on_void = conf[k, :k].astype(np.float64)
    union = gt_area + pred_area - inter - pred_on_void
    iou = np.divide(inter, union, out=np.zeros(k), where=union > 0)
    tp = (gt_area > 0) & (pred_area > 0) & (iou > 0.5)
    fn = (gt_area > 0) & ~tp
    mostly_void = pred_on_void > 0.5 * pred_area
    fp = (pred_area > 0) & ~tp & ~mostly_void
    return {
        "tp": tp.astype(np.int64),
        "fp": fp.astype(np.int64),
        "fn": fn.astype(np.int64),
        "iou": np.where(tp, iou, 0.0),
    }


class SemanticPQ:
    """Accumulates PQ counts and the confusion matrix over images, then summarises them.

    Args:
        num_classes: K.
        ignore_label: the void value of the ground truth.
        class_names: K names (for the per-class results).
        thing_ids: contiguous ids of the thing classes, if the dataset has any: then
            "Things" / "Stuff" averages are reported too.
    """

    def __init__(
        self,
        num_classes: int,
        ignore_label: int,
        class_names: Optional[Sequence[str]] = None,
        thing_ids: Iterable[int] = (),
    ):
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        self.class_names = list(class_names) if class_names is not None else None
        self.thing_ids = sorted(set(int(i) for i in thing_ids))
        self.reset()

    def reset(self) -> None:
        k = self.num_classes
        self.conf = np.zeros((k + 1, k + 1), dtype=np.int64)
        self.tp = np.zeros(k, np.int64)
        self.fp = np.zeros(k, np.int64)
        self.fn = np.zeros(k, np.int64)
        self.iou = np.zeros(k, np.float64)
        self.num_images = 0

    def add(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """Add one image: ``gt`` / ``pred`` int arrays [H, W] of contiguous class ids."""
        conf = semantic_confusion(gt, pred, self.num_classes, self.ignore_label)
        m = segment_matches(conf)
        self.conf += conf
        self.tp += m["tp"]
        self.fp += m["fp"]
        self.fn += m["fn"]
        self.iou += m["iou"]
        self.num_images += 1

    def _average(self, ids: List[int]) -> Dict[str, float]:
        ids = np.asarray(ids, dtype=np.int64)
        tp, fp, fn, iou = self.tp[ids], self.fp[ids], self.fn[ids], self.iou[ids]
        seen = (tp + fp + fn) > 0
        n = int(seen.sum())
        if n == 0:
            return {"PQ": float("nan"), "SQ": float("nan"), "RQ": float("nan"), "N": 0}
        denom = tp + 0.5 * fp + 0.5 * fn
        pq = np.divide(iou, denom, out=np.zeros(len(ids)), where=denom > 0)
        sq = np.divide(iou, tp, out=np.zeros(len(ids)), where=tp > 0)
        rq = np.divide(tp, denom, out=np.zeros(len(ids)), where=denom > 0)
        return {
            "PQ": 100 * float(pq[seen].mean()),
            "SQ": 100 * float(sq[seen].mean()),
            "RQ": 100 * float(rq[seen].mean()),
            "N": n,
        }

    def miou(self) -> Dict[str, float]:
        """mIoU and pixel accuracy as Detectron2's SemSegEvaluator computes them (over the
        classes present in the ground truth; void ground truth is left out)."""
        k = self.num_classes
        tp = np.diag(self.conf)[:k].astype(np.float64)
        pos_gt = self.conf[:k, :].sum(axis=1).astype(np.float64)
        pos_pred = self.conf[:k, :k].sum(axis=0).astype(np.float64)
        present = pos_gt > 0
        union = pos_gt + pos_pred - tp
        iou = np.divide(tp, union, out=np.zeros(k), where=union > 0)
        total = pos_gt.sum()
        return {
            "mIoU": 100 * float(iou[present].mean()) if present.any() else float("nan"),
            "pACC": 100 * float(tp.sum() / total) if total > 0 else float("nan"),
        }

    def summarize(self) -> Dict:
        """Results in percent: {"All": {PQ, SQ, RQ, N}, ["Things", "Stuff",] "mIoU", "pACC",
        "per_class": {name: {PQ, SQ, RQ, TP, FP, FN}}, "num_images"}."""
        k = self.num_classes
        results = {"All": self._average(list(range(k)))}
        if self.thing_ids:
            stuff = [i for i in range(k) if i not in set(self.thing_ids)]
            results["Things"] = self._average(self.thing_ids)
            results["Stuff"] = self._average(stuff)
        results.update(self.miou())
        names = self.class_names or [str(i) for i in range(k)]
        per_class = {}
        for i in range(k):
            tp, fp, fn = int(self.tp[i]), int(self.fp[i]), int(self.fn[i])
            if tp + fp + fn == 0:
                continue
            denom = tp + 0.5 * fp + 0.5 * fn
            per_class[names[i]] = {
                "PQ": 100 * float(self.iou[i]) / denom,
                "SQ": 100 * float(self.iou[i]) / tp if tp else 0.0,
                "RQ": 100 * tp / denom,
                "TP": tp,
                "FP": fp,
                "FN": fn,
            }
        results["per_class"] = per_class
        results["num_images"] = self.num_images
        return results
