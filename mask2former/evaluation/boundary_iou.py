"""Boundary IoU and Boundary AP (Cheng et al., "Boundary IoU: Improving Object-Centric Image
Segmentation Evaluation", CVPR 2021).

The boundary region of a mask G is the set of its pixels within distance d of its contour:
``G_d ∩ G = G minus its erosion by d``, with d = ``dilation_ratio`` x the image diagonal
(rounded, at least 1 pixel; ratio 0.02 in the paper). Erosion uses a (2d+1) x (2d+1) square (d
steps of a 3x3 erosion) and treats the outside of the image as background, so pixels at the
image border are boundary pixels. Boundary IoU of a ground truth G and a prediction P is

    |(G_d ∩ G) ∩ (P_d ∩ P)| / |(G_d ∩ G) ∪ (P_d ∩ P)|.

Boundary AP is COCO's mask AP with this IoU in place of mask IoU: :class:`BoundaryCOCOeval`
subclasses pycocotools' ``COCOeval`` and overrides only the IoU computation (matching, crowd
handling, area ranges and the AP/AR summaries are COCOeval's).
"""

import math
from typing import Dict, List

import cv2
import numpy as np
import pycocotools.mask as mask_util
from pycocotools.cocoeval import COCOeval

__all__ = ["boundary_width", "mask_to_boundary", "boundary_iou", "BoundaryCOCOeval"]


def boundary_width(height: int, width: int, dilation_ratio: float = 0.02) -> int:
    """d in pixels: ``dilation_ratio`` x the image diagonal, rounded, at least 1."""
    return max(1, int(round(dilation_ratio * math.hypot(height, width))))


def mask_to_boundary(mask: np.ndarray, dilation_ratio: float = 0.02) -> np.ndarray:
    """The boundary region of a binary mask.

    Args:
        mask: array [H, W] (bool or 0/1).
        dilation_ratio: d as a fraction of the image diagonal.
    Returns:
        bool array [H, W]: the pixels of ``mask`` within d pixels (chessboard distance) of a
        background pixel or of the outside of the image.
    """
    mask = np.ascontiguousarray(np.asarray(mask) != 0, dtype=np.uint8)
    if mask.ndim != 2:
        raise ValueError(f"mask_to_boundary expects a 2-D mask, got shape {mask.shape}")
    d = boundary_width(*mask.shape, dilation_ratio)
    kernel = np.ones((2 * d + 1, 2 * d + 1), np.uint8)
    eroded = cv2.erode(mask, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return (mask > 0) & (eroded == 0)


def boundary_iou(gt: np.ndarray, pred: np.ndarray, dilation_ratio: float = 0.02) -> float:
    """Boundary IoU of two binary masks [H, W] (0 when both boundaries are empty)."""
    g = mask_to_boundary(gt, dilation_ratio)
    p = mask_to_boundary(pred, dilation_ratio)
    union = np.logical_or(g, p).sum()
    return float(np.logical_and(g, p).sum() / union) if union else 0.0


def _boundary_rle(rle: Dict, dilation_ratio: float) -> Dict:
    """RLE of the boundary region of the mask given as an RLE."""
    boundary = mask_to_boundary(mask_util.decode(rle), dilation_ratio)
    return mask_util.encode(np.asfortranarray(boundary.astype(np.uint8)))


class BoundaryCOCOeval(COCOeval):
    """COCOeval whose IoU between a detection and a ground truth is the Boundary IoU of their
    masks (Boundary AP). Use it like ``COCOeval(coco_gt, coco_dt, "segm")``:
    ``evaluate()``, ``accumulate()``, ``summarize()``; ``stats`` then holds Boundary AP/AR.

    Args:
        cocoGt, cocoDt: pycocotools ``COCO`` objects (ground truth, ``cocoGt.loadRes(results)``)
            with segmentation masks.
        dilation_ratio: d as a fraction of the image diagonal (0.02 in the paper).
    """

    def __init__(self, cocoGt=None, cocoDt=None, dilation_ratio: float = 0.02):
        super().__init__(cocoGt, cocoDt, iouType="segm")
        if not dilation_ratio > 0:
            raise ValueError(f"dilation_ratio must be > 0, got {dilation_ratio}")
        self.dilation_ratio = dilation_ratio

    def computeIoU(self, imgId, catId):
        """Boundary IoU matrix [num detections (by descending score, at most maxDets[-1]),
        num ground truths] of one image (and category), the layout COCOeval expects."""
        p = self.params
        cat_ids = [catId] if p.useCats else p.catIds
        gt: List[Dict] = [g for c in cat_ids for g in self._gts[imgId, c]]
        dt: List[Dict] = [d for c in cat_ids for d in self._dts[imgId, c]]
        if not gt and not dt:
            return []
        order = np.argsort([-d["score"] for d in dt], kind="mergesort")
        dt = [dt[i] for i in order][: p.maxDets[-1]]
        # after COCOeval._prepare, "segmentation" of both is an RLE of the full image
        g = [_boundary_rle(a["segmentation"], self.dilation_ratio) for a in gt]
        d = [_boundary_rle(a["segmentation"], self.dilation_ratio) for a in dt]
        iscrowd = [int(a["iscrowd"]) for a in gt]
        return mask_util.iou(d, g, iscrowd)
