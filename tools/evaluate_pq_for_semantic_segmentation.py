#!/usr/bin/env python
"""Panoptic quality (PQ, SQ, RQ) and mIoU of semantic-segmentation predictions.

Each class region of an image is one segment (see :mod:`mask2former.evaluation.semantic_pq`),
as in the original Mask2Former tool of the same name. The predictions are the file that
Detectron2's ``SemSegEvaluator`` writes (``train_net.py --eval-only`` on a semantic dataset
writes it to ``OUTPUT_DIR/inference/sem_seg_predictions.json``): a list of
``{"file_name", "category_id" (dataset id), "segmentation" (RLE)}``. The ground truth is the
``sem_seg_file_name`` of each record of the registered dataset::

    python train_net.py --config-file configs/ade20k/semantic/r50.yaml --eval-only \\
        MODEL.WEIGHTS model.pkl OUTPUT_DIR out
    python tools/evaluate_pq_for_semantic_segmentation.py --dataset-name ade20k_sem_seg_val \\
        --json-file out/inference/sem_seg_predictions.json --output out/semantic_pq.json

Predictions are matched to dataset records by ``file_name`` (or, when the files were moved, by
the file name without folder and extension). Images of the dataset without predictions are left
out (with a warning); a prediction for an image that is not in the dataset is an error. Pixels
that no prediction covers count as "no prediction" (a miss for the ground-truth class).
"""

import argparse
import json
import logging
import os
import sys
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.utils.file_io import PathManager

logger = logging.getLogger("mask2former.evaluate_pq_for_semantic_segmentation")


def load_predictions(json_file: str) -> Dict[str, List[Dict]]:
    """Read a ``sem_seg_predictions.json``: {file_name: [{"category_id", "segmentation"}]}."""
    if not PathManager.exists(json_file):
        raise FileNotFoundError(
            f"{json_file} does not exist. It is written by SemSegEvaluator into its output folder "
            "(train_net.py --eval-only writes OUTPUT_DIR/inference/sem_seg_predictions.json)."
        )
    with PathManager.open(json_file) as f:
        try:
            entries = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{json_file} is not valid JSON: {e}") from None
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and {"file_name", "category_id", "segmentation"} <= set(e)
        for e in entries
    ):
        raise ValueError(
            f"{json_file} is not a SemSegEvaluator prediction file: expected a list of "
            '{"file_name", "category_id", "segmentation"} entries.'
        )
    by_file = defaultdict(list)
    for e in entries:
        by_file[e["file_name"]].append(e)
    return dict(by_file)


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def match_records(records: List[Dict], predictions: Dict[str, List[Dict]]) -> List[Tuple]:
    """Pair each predicted file with its dataset record: [(record, prediction entries)].

    Raises:
        ValueError: a predicted file is not in the dataset, or nothing matches.
    """
    by_name = {r["file_name"]: r for r in records}
    by_stem = defaultdict(list)
    for r in records:
        by_stem[_stem(r["file_name"])].append(r)
    pairs, unknown = [], []
    for file_name, entries in predictions.items():
        record = by_name.get(file_name)
        if record is None and len(by_stem.get(_stem(file_name), [])) == 1:
            record = by_stem[_stem(file_name)][0]
        if record is None:
            unknown.append(file_name)
        else:
            pairs.append((record, entries))
    if unknown:
        raise ValueError(
            f"{len(unknown)} predicted images are not in the dataset (e.g. {unknown[:3]}): "
            "was --dataset-name the dataset the predictions were made on?"
        )
    if len(pairs) < len(records):
        logger.warning(
            f"Predictions cover {len(pairs)} of the {len(records)} images of the dataset; the "
            "others are left out of PQ and mIoU."
        )
    return pairs


def prediction_map(
    entries: List[Dict], shape: Tuple[int, int], dataset_to_contiguous: Optional[Dict[int, int]]
) -> np.ndarray:
    """Paint the RLE entries of one image into an int array [H, W] of contiguous ids (-1 where
    no entry covers the pixel; a later entry overwrites an earlier one)."""
    pred = np.full(shape, -1, dtype=np.int64)
    for e in entries:
        cat = e["category_id"]
        if dataset_to_contiguous is not None:
            if cat not in dataset_to_contiguous:
                raise ValueError(
                    f"{e['file_name']}: category_id {cat} is not a dataset id of this dataset "
                    f"(known: {sorted(dataset_to_contiguous)[:5]}...)"
                )
            cat = dataset_to_contiguous[cat]
        rle = dict(e["segmentation"])
        if isinstance(rle.get("counts"), str):
            rle["counts"] = rle["counts"].encode("ascii")
        if tuple(rle["size"]) != tuple(shape):
            raise ValueError(
                f"{e['file_name']}: predicted mask of size {tuple(rle['size'])}, ground truth "
                f"of size {tuple(shape)}"
            )
        pred[mask_util.decode(rle).astype(bool)] = cat
    return pred


def read_ground_truth(path: str) -> np.ndarray:
    """A semantic ground-truth image as an int64 array [H, W]."""
    with PathManager.open(path, "rb") as f:
        return np.asarray(Image.open(f), dtype=np.int64)


def evaluate(dataset_name: str, json_file: str, ignore_label: Optional[int] = None) -> Dict:
    """PQ / SQ / RQ (all classes; things and stuff separately when the dataset has things)
    and mIoU of the predictions in ``json_file`` on the registered ``dataset_name``."""
    from mask2former.evaluation.semantic_pq import SemanticPQ

    predictions = load_predictions(json_file)
    if dataset_name not in DatasetCatalog.list():
        raise KeyError(f"dataset {dataset_name!r} is not registered")
    meta = MetadataCatalog.get(dataset_name)
    classes = meta.get("stuff_classes", None)
    if classes is None:
        raise ValueError(
            f"dataset {dataset_name!r} has no 'stuff_classes' (not a semantic dataset)"
        )
    if ignore_label is None:
        ignore_label = meta.get("ignore_label", None)
        if ignore_label is None:
            raise ValueError(f"dataset {dataset_name!r} has no 'ignore_label'; pass --ignore-label")
    id_map = meta.get("stuff_dataset_id_to_contiguous_id", None)
    thing_ids = list(meta.get("thing_dataset_id_to_contiguous_id", {}).values())
    scorer = SemanticPQ(len(classes), ignore_label, classes, thing_ids)
    pairs = match_records(DatasetCatalog.get(dataset_name), predictions)
    for record, entries in pairs:
        gt = read_ground_truth(record["sem_seg_file_name"])
        scorer.add(gt, prediction_map(entries, gt.shape, id_map))
    return scorer.summarize()


def format_results(results: Dict) -> str:
    lines = [f"{'':10s}| {'PQ':>6s} {'SQ':>6s} {'RQ':>6s} {'N':>5s}", "-" * 38]
    for group in ("All", "Things", "Stuff"):
        if group in results:
            r = results[group]
            lines.append(f"{group:10s}| {r['PQ']:6.2f} {r['SQ']:6.2f} {r['RQ']:6.2f} {r['N']:5d}")
    lines.append(f"mIoU: {results['mIoU']:.2f}  pACC: {results['pACC']:.2f}  "
                 f"({results['num_images']} images)")
    return "\n".join(lines)


def main(argv=None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset-name", default="ade20k_sem_seg_val",
                        help="registered semantic dataset the predictions were made on")
    parser.add_argument("--json-file", required=True,
                        help="sem_seg_predictions.json written by SemSegEvaluator")
    parser.add_argument("--ignore-label", type=int, default=None,
                        help="void label of the ground truth (default: the dataset's)")
    parser.add_argument("--output", default=None, help="write the results as JSON to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    import mask2former  # noqa: F401  (registers the datasets)

    results = evaluate(args.dataset_name, args.json_file, args.ignore_label)
    print(format_results(results))
    if args.output:
        PathManager.mkdirs(os.path.dirname(os.path.abspath(args.output)))
        with PathManager.open(args.output, "w") as f:
            json.dump(results, f, indent=2)
        logger.info(f"results written to {args.output}")
    return results


if __name__ == "__main__":
    try:
        main()
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
