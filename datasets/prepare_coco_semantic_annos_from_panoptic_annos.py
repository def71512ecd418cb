#!/usr/bin/env python
"""Derive COCO semantic maps (133 contiguous classes, 255 = void) from COCO panoptic annotations.

Inputs under ``coco/``: ``annotations/panoptic_{train,val}2017.json`` and
``panoptic_{train,val}2017/*.png``. Outputs ``panoptic_semseg_{train,val}2017/*.png``; the class
order is that of ``coco_2017_*_panoptic_with_sem_seg`` (Detectron2's COCO_CATEGORIES).

    python datasets/prepare_coco_semantic_annos_from_panoptic_annos.py [--dataset-dir DIR]
"""

import argparse
import functools
import json
import os
import sys

import numpy as np
from PIL import Image

from prepare_utils import default_workers, run_parallel
from mask2former.data.datasets.builtin_categories import COCO_PANOPTIC_CATEGORIES  # noqa: E402
from mask2former.data.datasets.panoptic import panoptic_to_semantic, rgb2id  # noqa: E402

ID_TO_CONTIGUOUS = {c["id"]: i for i, c in enumerate(COCO_PANOPTIC_CATEGORIES)}


def convert(ann, pan_dir, out_dir):
    pan = rgb2id(np.asarray(Image.open(os.path.join(pan_dir, ann["file_name"])).convert("RGB")))
    unknown = {s["category_id"] for s in ann["segments_info"]} - set(ID_TO_CONTIGUOUS)
    if unknown:
        raise ValueError(
            f"{ann['file_name']}: unknown COCO panoptic category ids {sorted(unknown)}"
        )
    sem = panoptic_to_semantic(pan, ann["segments_info"], ID_TO_CONTIGUOUS)
    Image.fromarray(sem).save(os.path.join(out_dir, os.path.splitext(ann["file_name"])[0] + ".png"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--dataset-dir", default=os.path.join(os.getenv("DETECTRON2_DATASETS", "datasets"), "coco")
    )
    parser.add_argument("--splits", nargs="+", default=["train2017", "val2017"])
    parser.add_argument("--workers", type=int, default=default_workers())
    args = parser.parse_args(argv)
    for split in args.splits:
        json_file = os.path.join(args.dataset_dir, "annotations", f"panoptic_{split}.json")
        pan_dir = os.path.join(args.dataset_dir, f"panoptic_{split}")
        for path in (json_file, pan_dir):
            if not os.path.exists(path):
                sys.exit(f"error: expected '{path}' does not exist (see datasets/README.md).")
        out_dir = os.path.join(args.dataset_dir, f"panoptic_semseg_{split}")
        os.makedirs(out_dir, exist_ok=True)
        with open(json_file) as f:
            anns = json.load(f)["annotations"]
        run_parallel(
            functools.partial(convert, pan_dir=pan_dir, out_dir=out_dir),
            anns,
            args.workers,
            f"COCO semantic {split}",
        )


if __name__ == "__main__":
    main()
