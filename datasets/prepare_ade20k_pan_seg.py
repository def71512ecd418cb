#!/usr/bin/env python
"""Build ADE20K-150 panoptic annotations (COCO panoptic format) from the raw releases.

Inputs under ``ADEChallengeData2016/``:
    images/{training,validation}/*.jpg
    annotations/{training,validation}/*.png            semantic labels, 0 = void, 1..150
    annotations_instance/{training,validation}/*.png   R = instance category (1..100),
                                                       G = instance id (0 = no instance)
    categoryMapping.txt                                instance category -> ADE-150 id (optional)
Outputs:
    ade20k_panoptic_{train,val}/*.png                  RGB-encoded segment ids
    ade20k_panoptic_{train,val}.json                   categories: 0-based ADE-150 ids + isthing

Stuff segments come from the semantic labels (one per class), thing segments from the instance
labels; thing-class pixels without an instance are void.

    python datasets/prepare_ade20k_pan_seg.py [--dataset-dir DIR] [--workers N]
"""

import functools
import json
import os

import numpy as np
from PIL import Image

from prepare_utils import (
    ade20k_image_id,
    list_files,
    parse_ade20k_instance_args,
    run_parallel,
)
from mask2former.data.datasets.builtin_categories import ADE20K_150_CATEGORIES  # noqa: E402
from mask2former.data.datasets.panoptic import id2rgb  # noqa: E402

_THING_IDS = {c["id"] for c in ADE20K_150_CATEGORIES if c["isthing"]}


def convert(item, sem_dir, ins_dir, out_dir, mapping):
    index, stem = item
    sem = np.asarray(Image.open(os.path.join(sem_dir, stem + ".png"))).astype(np.int64)
    ins = np.asarray(Image.open(os.path.join(ins_dir, stem + ".png")).convert("RGB"))
    h, w = sem.shape
    pan = np.zeros((h, w), np.int64)
    segments = []

    def add(mask, cat_id, k):
        seg_id = (cat_id + 1) * 1000 + k
        pan[mask] = seg_id
        segments.append({"id": seg_id, "category_id": int(cat_id), "iscrowd": 0})

    for label in np.unique(sem):
        cat_id = int(label) - 1
        if label == 0 or cat_id in _THING_IDS:
            continue
        add(sem == label, cat_id, 0)
    cats, inst = ins[..., 0].astype(np.int64), ins[..., 1].astype(np.int64)
    pairs = np.unique(np.stack([cats[inst > 0], inst[inst > 0]], 1), axis=0)
    for k, (cat, iid) in enumerate(pairs):
        if int(cat) not in mapping:
            raise ValueError(f"{stem}: instance category {cat} is not in the category mapping")
        add((cats == cat) & (inst == iid), mapping[int(cat)], k + 1)
    # drop segments fully covered by later ones, then compute area/bbox
    info = []
    for s in segments:
        ys, xs = np.nonzero(pan == s["id"])
        if len(ys) == 0:
            continue
        s["area"] = int(len(ys))
        s["bbox"] = [
            int(xs.min()),
            int(ys.min()),
            int(xs.max() - xs.min() + 1),
            int(ys.max() - ys.min() + 1),
        ]
        info.append(s)
    Image.fromarray(id2rgb(pan)).save(os.path.join(out_dir, stem + ".png"))
    image_id = ade20k_image_id(stem, index)
    image = {"id": image_id, "file_name": stem + ".jpg", "height": h, "width": w}
    return image, {"image_id": image_id, "file_name": stem + ".png", "segments_info": info}


def main(argv=None):
    args, mapping = parse_ade20k_instance_args(__doc__.split("\n")[0], argv)
    categories = [
        {"id": c["id"], "name": c["name"], "isthing": c["isthing"], "color": c["color"]}
        for c in ADE20K_150_CATEGORIES
    ]
    for split, dirname in (("train", "training"), ("val", "validation")):
        image_dir = os.path.join(args.dataset_dir, "images", dirname)
        sem_dir = os.path.join(args.dataset_dir, "annotations", dirname)
        ins_dir = os.path.join(args.dataset_dir, "annotations_instance", dirname)
        out_dir = os.path.join(args.dataset_dir, f"ade20k_panoptic_{split}")
        os.makedirs(out_dir, exist_ok=True)
        stems = [os.path.splitext(n)[0] for n in list_files(image_dir, ".jpg")]
        list_files(sem_dir, ".png"), list_files(ins_dir, ".png")  # clear errors if missing
        fn = functools.partial(
            convert, sem_dir=sem_dir, ins_dir=ins_dir, out_dir=out_dir, mapping=mapping
        )
        results = run_parallel(fn, list(enumerate(stems)), args.workers, f"ADE20K panoptic {split}")
        out = {
            "images": [r[0] for r in results],
            "annotations": [r[1] for r in results],
            "categories": categories,
        }
        with open(os.path.join(args.dataset_dir, f"ade20k_panoptic_{split}.json"), "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
