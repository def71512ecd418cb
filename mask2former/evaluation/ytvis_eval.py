"""Offline YouTube-VIS scoring of a results file against an annotated split.

    python -m mask2former.evaluation.ytvis_eval --gt valid.json --results results.json \\
        --output metrics.json

Prints COCOeval's summary and a table of AP, AP50, AP75, APs, APm, APl, AR1, AR10 (percent) and
writes them to ``--output`` as a JSON object (-100 where an area range has no ground-truth
track, COCO's -1). ``--results`` may also be the ``results.zip`` written for the benchmark
server. Exit status 1 with a one-line reason when a file is missing or not in the format.
"""

import argparse
import json
import os
import sys

from detectron2.utils.logger import create_small_table

from .ytvis_evaluation import METRIC_NAMES, YTVIS, evaluate_ytvis

__all__ = ["main"]


def score(gt_path: str, results_path: str):
    """(metrics, per_category, summary, gt, dt) of ``results_path`` against ``gt_path``."""
    gt = YTVIS(gt_path)
    if not gt.has_annotations:
        raise ValueError(
            f"{gt_path} has no annotations (a split without public ground truth): submit the "
            "results to the YouTube-VIS benchmark server to score them"
        )
    dt = gt.loadRes(results_path)
    metrics, per_category, summary = evaluate_ytvis(gt, dt)
    return metrics, per_category, summary, gt, dt


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mask2former.evaluation.ytvis_eval",
        description="Video AP (YouTube-VIS) of a results file against an annotated split.",
    )
    parser.add_argument("--gt", required=True, help="YouTube-VIS annotation JSON (e.g. valid.json)")
    parser.add_argument("--results", required=True, help="results.json (or results.zip)")
    parser.add_argument("--output", help="write the metrics (percent) to this JSON file")
    args = parser.parse_args(argv)
    try:
        metrics, per_category, summary, gt, dt = score(args.gt, args.results)
    except (ValueError, OSError) as e:
        print(f"ytvis_eval: error: {e}", file=sys.stderr)
        return 1
    print(
        f"{len(gt.imgs)} videos, {len(gt.anns)} ground-truth tracks, {len(dt.anns)} predicted "
        "tracks"
    )
    print(summary)
    print(create_small_table(metrics))
    print("Per-category AP: " + ", ".join(f"{k}: {v:.3f}" for k, v in per_category.items()))
    if args.output:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
            with open(args.output, "w") as f:
                json.dump({k: metrics[k] for k in METRIC_NAMES}, f, indent=2)
        except OSError as e:
            print(f"ytvis_eval: error: cannot write {args.output}: {e}", file=sys.stderr)
            return 1
        print(f"metrics written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
