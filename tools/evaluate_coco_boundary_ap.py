#!/usr/bin/env python
"""Boundary AP (Cheng et al. 2021) of COCO-format instance segmentation results.

The results are the file Detectron2's COCOEvaluator writes (``train_net.py --eval-only`` on an
instance or panoptic dataset: ``OUTPUT_DIR/inference/coco_instances_results.json``); the ground
truth is the COCO instance JSON of the dataset (for COCO: ``instances_val2017.json``)::

    python tools/evaluate_coco_boundary_ap.py \\
        --gt-json-file datasets/coco/annotations/instances_val2017.json \\
        --dt-json-file out/inference/coco_instances_results.json --output out/boundary_ap.json

``--iou-type segm`` gives the usual mask AP of the same files for comparison. Boundary IoU and
its evaluator are in :mod:`mask2former.evaluation.boundary_iou`.
"""

import argparse
import contextlib
import io
import json
import logging
import os
import sys
from typing import Dict

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

logger = logging.getLogger("mask2former.evaluate_coco_boundary_ap")

# Order of COCOeval.stats for segmentation
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl",
              "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def _load_json(path: str, what: str):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path} does not exist")
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{what} {path} is not valid JSON: {e}") from None


def load_coco_pair(gt_json_file: str, dt_json_file: str):
    """(COCO ground truth, COCO results) with clear errors for unusable files."""
    gt = _load_json(gt_json_file, "ground-truth file")
    if not isinstance(gt, dict) or not {"images", "annotations", "categories"} <= set(gt):
        raise ValueError(f"{gt_json_file} is not a COCO instance annotation file")
    results = _load_json(dt_json_file, "results file")
    if not isinstance(results, list) or not results:
        raise ValueError(
            f"{dt_json_file} holds no detections: expected a non-empty list of "
            '{"image_id", "category_id", "segmentation", "score"} (COCOEvaluator\'s '
            "coco_instances_results.json)"
        )
    required = ("image_id", "category_id", "segmentation", "score")
    missing = [k for k in required if k not in results[0]]
    if missing:
        raise ValueError(f"{dt_json_file}: detections lack {missing}; Boundary AP needs masks")
    image_ids = {im["id"] for im in gt["images"]}
    stray = sorted({r["image_id"] for r in results} - image_ids)
    if stray:
        raise ValueError(
            f"{len(stray)} image ids of the results are not in {gt_json_file} (e.g. {stray[:3]}): "
            "were the results made on this dataset?"
        )
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
    return coco_gt, coco_dt


def evaluate(gt_json_file: str, dt_json_file: str, iou_type: str = "boundary",
             dilation_ratio: float = 0.02) -> Dict[str, float]:
    """AP / AR (in percent) of the results with Boundary IoU (``iou_type="boundary"``) or
    mask IoU (``"segm"``). Metrics that cannot be computed (no ground truth in an area range)
    are NaN."""
    from mask2former.evaluation.boundary_iou import BoundaryCOCOeval

    coco_gt, coco_dt = load_coco_pair(gt_json_file, dt_json_file)
    if iou_type == "boundary":
        coco_eval = BoundaryCOCOeval(coco_gt, coco_dt, dilation_ratio=dilation_ratio)
    elif iou_type == "segm":
        coco_eval = COCOeval(coco_gt, coco_dt, "segm")
    else:
        raise ValueError(f"iou_type must be 'boundary' or 'segm', got {iou_type!r}")
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    return {
        name: (100 * float(v) if v >= 0 else float("nan"))
        for name, v in zip(STAT_NAMES, coco_eval.stats)
    }


def main(argv=None) -> Dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gt-json-file", required=True, help="COCO instance annotations")
    parser.add_argument("--dt-json-file", required=True,
                        help="COCO results, e.g. COCOEvaluator's coco_instances_results.json")
    parser.add_argument("--iou-type", default="boundary", choices=("boundary", "segm"))
    parser.add_argument("--dilation-ratio", type=float, default=0.02,
                        help="boundary width as a fraction of the image diagonal")
    parser.add_argument("--output", default=None, help="write the metrics as JSON to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    print(f"{args.iou_type} IoU (dilation ratio {args.dilation_ratio}):")
    metrics = evaluate(args.gt_json_file, args.dt_json_file, args.iou_type, args.dilation_ratio)
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w") as f:
            json.dump({args.iou_type: metrics, "dilation_ratio": args.dilation_ratio}, f, indent=2)
        logger.info(f"results written to {args.output}")
    return metrics


if __name__ == "__main__":
    try:
        main()
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
