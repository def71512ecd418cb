#!/usr/bin/env python
"""Build ADE20K instance annotations (COCO format, 100 thing classes) from the raw release.

Inputs under ``ADEChallengeData2016/``: ``images/{training,validation}/*.jpg``,
``annotations_instance/{training,validation}/*.png`` (R = instance category 1..100, G = instance
id, 0 = none) and optionally ``categoryMapping.txt``. Outputs
``ade20k_instance_{train,val}.json`` whose category ids are 0-based ADE-150 ids (shared with
``ade20k_panoptic_*``) and whose masks are RLE.

    python datasets/prepare_ade20k_ins_seg.py [--dataset-dir DIR] [--workers N]
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
from mask2former.data.datasets.builtin_categories import ADE20K_INSTANCE_CATEGORIES  # noqa: E402
from mask2former.data.datasets.panoptic import mask_to_coco_annotation  # noqa: E402


def convert(item, ins_dir, mapping):
    index, stem = item
    ins = np.asarray(Image.open(os.path.join(ins_dir, stem + ".png")).convert("RGB"))
    h, w = ins.shape[:2]
    image_id = ade20k_image_id(stem, index)
    cats, inst = ins[..., 0].astype(np.int64), ins[..., 1].astype(np.int64)
    anns = []
    for cat, iid in np.unique(np.stack([cats[inst > 0], inst[inst > 0]], 1), axis=0):
        if int(cat) not in mapping:
            raise ValueError(f"{stem}: instance category {cat} is not in the category mapping")
        ann = mask_to_coco_annotation((cats == cat) & (inst == iid))
        ann.update(image_id=image_id, category_id=int(mapping[int(cat)]), iscrowd=0)
        anns.append(ann)
    return {"id": image_id, "file_name": stem + ".jpg", "height": h, "width": w}, anns


def main(argv=None):
    args, mapping = parse_ade20k_instance_args(__doc__.split("\n")[0], argv)
    categories = [{"id": c["id"], "name": c["name"]} for c in ADE20K_INSTANCE_CATEGORIES]
    for split, dirname in (("train", "training"), ("val", "validation")):
        image_dir = os.path.join(args.dataset_dir, "images", dirname)
        ins_dir = os.path.join(args.dataset_dir, "annotations_instance", dirname)
        stems = [os.path.splitext(n)[0] for n in list_files(image_dir, ".jpg")]
        list_files(ins_dir, ".png")
        fn = functools.partial(convert, ins_dir=ins_dir, mapping=mapping)
        results = run_parallel(fn, list(enumerate(stems)), args.workers, f"ADE20K instance {split}")
        images, annotations = [], []
        for image, anns in results:
            images.append(image)
            for ann in anns:
                ann["id"] = len(annotations) + 1
                annotations.append(ann)
        out = {"images": images, "annotations": annotations, "categories": categories}
        with open(os.path.join(args.dataset_dir, f"ade20k_instance_{split}.json"), "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
