"""Two CPU workers (Detectron2's ``launch``, gloo) each evaluate half of the videos with one
:class:`YTVISEvaluator`; its ``evaluate`` gathers both halves on worker 0. Each worker writes
what ``evaluate`` returned to ``<out>/rank<r>.json``; the results files go to ``<out>/results``.

    python tests/evaluation/ytvis_two_workers.py GT_JSON RESULTS_JSON OUT_DIR PORT

RESULTS_JSON (the results format) is turned back into model outputs, one clip per video.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # the repository
sys.path.insert(0, os.path.dirname(HERE))  # tests/ (helpers)


def worker(gt_file, results_file, out_dir):
    import numpy as np
    import pycocotools.mask as mask_util
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.utils import comm

    from helpers import leave_worker
    from mask2former.evaluation import YTVISEvaluator

    with open(gt_file) as f:
        gt = json.load(f)
    with open(results_file) as f:
        results = json.load(f)
    to_contiguous = {c["id"]: i for i, c in enumerate(gt["categories"])}
    records = [
        {"video_id": v["id"], "length": v["length"], "height": v["height"], "width": v["width"]}
        for v in gt["videos"]
    ]
    DatasetCatalog.register("ytvis_two_workers", lambda: records)
    MetadataCatalog.get("ytvis_two_workers").set(
        json_file=gt_file, thing_dataset_id_to_contiguous_id=to_contiguous
    )
    rank = comm.get_rank()
    evaluator = YTVISEvaluator("ytvis_two_workers", output_dir=os.path.join(out_dir, "results"))
    evaluator.reset()
    for record in records[rank :: comm.get_world_size()]:
        mine = [r for r in results if r["video_id"] == record["video_id"]]
        masks = np.zeros((len(mine), record["length"], record["height"], record["width"]), bool)
        for i, r in enumerate(mine):
            for t, seg in enumerate(r["segmentations"]):
                if seg is not None:
                    masks[i, t] = mask_util.decode(seg)
        evaluator.process(
            [record],
            [
                {
                    "pred_scores": [r["score"] for r in mine],
                    "pred_labels": [to_contiguous[r["category_id"]] for r in mine],
                    "pred_masks": masks,
                }
            ],
        )
    out = evaluator.evaluate()
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(out, f)
    leave_worker()


if __name__ == "__main__":
    from detectron2.engine import launch

    gt_file, results_file, out, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    launch(worker, 2, dist_url=f"tcp://127.0.0.1:{port}", args=(gt_file, results_file, out))
