#!/usr/bin/env python
"""Convert ADE20K-150 semantic labels to Detectron2's convention.

Reads ``ADEChallengeData2016/annotations/{training,validation}/*.png`` (0 = other/void,
1..150 = classes) and writes ``annotations_detectron2/{training,validation}/*.png`` with labels
0..149 and 255 = void (the layout of Detectron2's ``ade20k_sem_seg_*`` and of
``ade20k_panoptic_*``'s semantic maps).

    python datasets/prepare_ade20k_sem_seg.py [--dataset-dir $DETECTRON2_DATASETS/ADEChallengeData2016]
"""

import argparse
import functools
import os

import numpy as np
from PIL import Image

from prepare_utils import default_workers, list_files, run_parallel


def convert(name: str, src: str, dst: str) -> None:
    label = np.asarray(Image.open(os.path.join(src, name)))
    if label.ndim != 2:
        raise ValueError(f"{name}: expected a single-channel label PNG, got shape {label.shape}")
    out = (label.astype(np.int32) - 1).astype(np.uint8)  # 0 -> 255 (void)
    Image.fromarray(out).save(os.path.join(dst, name))


def main(argv=None):
    default_dir = os.path.join(os.getenv("DETECTRON2_DATASETS", "datasets"), "ADEChallengeData2016")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset-dir", default=default_dir)
    parser.add_argument("--workers", type=int, default=default_workers())
    args = parser.parse_args(argv)
    for split in ("training", "validation"):
        src = os.path.join(args.dataset_dir, "annotations", split)
        dst = os.path.join(args.dataset_dir, "annotations_detectron2", split)
        os.makedirs(dst, exist_ok=True)
        names = list_files(src, ".png")
        run_parallel(
            functools.partial(convert, src=src, dst=dst),
            names,
            args.workers,
            f"ADE20K sem seg {split}",
        )


if __name__ == "__main__":
    main()
