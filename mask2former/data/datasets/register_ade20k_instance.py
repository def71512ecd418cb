"""ADE20K instance segmentation (100 thing classes): ``ade20k_instance_{train,val}``.

Layout: ``ADEChallengeData2016/images/{training,validation}/*.jpg`` and
``ADEChallengeData2016/ade20k_instance_{train,val}.json`` (COCO format, category ids are
0-based ADE20K-150 ids; made by prepare_ade20k_ins_seg.py).
"""

import os

from ._common import load_coco_json_checked, register_dataset
from .builtin_categories import ADE20K_INSTANCE_CATEGORIES

__all__ = ["get_ade20k_instance_metadata", "register_all_ade20k_instance"]


def get_ade20k_instance_metadata():
    return {
        "thing_classes": [c["name"] for c in ADE20K_INSTANCE_CATEGORIES],
        "thing_colors": [list(c["color"]) for c in ADE20K_INSTANCE_CATEGORIES],
        "thing_dataset_id_to_contiguous_id": {
            c["id"]: i for i, c in enumerate(ADE20K_INSTANCE_CATEGORIES)
        },
    }


def register_all_ade20k_instance(root):
    root = os.path.join(root, "ADEChallengeData2016")
    meta = get_ade20k_instance_metadata()
    for split, dirname in (("train", "training"), ("val", "validation")):
        name = f"ade20k_instance_{split}"
        image_root = os.path.join(root, "images", dirname)
        json_file = os.path.join(root, f"ade20k_instance_{split}.json")
        register_dataset(
            name,
            lambda n=name, j=json_file, i=image_root: load_coco_json_checked(n, j, i),
            dict(meta, json_file=json_file, image_root=image_root, evaluator_type="coco"),
        )
