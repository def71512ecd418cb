"""Panoptic conversion helpers against the real COCO sample and the published conversions."""

import json
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
import pytest
from PIL import Image

from mask2former.data.datasets.panoptic import (
    id2rgb,
    load_panoptic_json,
    panoptic_to_instance_annotations,
    panoptic_to_semantic,
    rgb2id,
)
from mask2former.data.datasets.register_coco_panoptic_annos_semseg import (
    get_coco_panoptic_metadata,
)

from helpers import COCO_SAMPLE

SAMPLE = Path(COCO_SAMPLE)


def _sample():
    pan = json.loads((SAMPLE / "panoptic_examples.json").read_text())
    det = json.loads((SAMPLE / "panoptic_coco_detection_format.json").read_text())
    return pan, det


def test_rgb_id_round_trip_and_panopticapi_agreement():
    from panopticapi.utils import id2rgb as api_id2rgb, rgb2id as api_rgb2id

    ids = np.random.default_rng(0).integers(0, 256**3, (7, 9))
    assert (rgb2id(id2rgb(ids)) == ids).all()
    assert (id2rgb(ids) == api_id2rgb(ids)).all()
    png = np.asarray(Image.open(SAMPLE / "panoptic_examples" / "000000142238.png"))
    assert (rgb2id(png) == api_rgb2id(png)).all()
    with pytest.raises(ValueError):
        id2rgb(np.array([[-1]]))


def test_instances_match_published_detection_format():
    """Our panoptic->instance conversion equals panopticapi's published conversion."""
    pan, det = _sample()
    categories = json.loads((SAMPLE / "panoptic_coco_categories.json").read_text())
    thing_ids = {c["id"] for c in categories if c["isthing"]}
    ref = {(a["image_id"], a["category_id"], a["area"]): a for a in det["annotations"]}
    n = 0
    for ann in pan["annotations"]:
        ids = rgb2id(np.asarray(Image.open(SAMPLE / "panoptic_examples" / ann["file_name"])))
        ours = panoptic_to_instance_annotations(
            ids, ann["segments_info"], thing_ids, ann["image_id"], start_id=1
        )
        assert [a["id"] for a in ours] == list(range(1, len(ours) + 1))
        for a in ours:
            r = ref[(a["image_id"], a["category_id"], a["area"])]
            assert a["bbox"] == r["bbox"] and a["iscrowd"] == r["iscrowd"]
            theirs = mask_util.decode(
                mask_util.frPyObjects(r["segmentation"], *ids.shape)
                if isinstance(r["segmentation"]["counts"], list)
                else r["segmentation"]
            )
            assert (mask_util.decode(a["segmentation"]) == theirs).all()
            n += 1
    # every thing segment (crowd included) of the two images was converted
    assert (
        n
        == sum(
            s["category_id"] in thing_ids for a in pan["annotations"] for s in a["segments_info"]
        )
        == 43
    )


def test_semantic_from_panoptic_uses_contiguous_ids():
    pan, _ = _sample()
    meta = get_coco_panoptic_metadata()
    ann = pan["annotations"][1]
    ids = rgb2id(np.asarray(Image.open(SAMPLE / "panoptic_examples" / ann["file_name"])))
    sem = panoptic_to_semantic(ids, ann["segments_info"], meta["stuff_dataset_id_to_contiguous_id"])
    assert sem.dtype == np.uint8 and (sem[ids == 0] == 255).all()
    horse = meta["stuff_classes"].index("horse")
    assert (sem == horse).sum() == sum(
        s["area"] for s in ann["segments_info"] if s["category_id"] == 19
    )


def test_load_panoptic_json_converts_ids(tmp_path):
    meta = get_coco_panoptic_metadata()
    recs = load_panoptic_json(
        str(SAMPLE / "panoptic_examples.json"),
        str(SAMPLE / "input_images"),
        str(SAMPLE / "panoptic_examples"),
        None,
        meta,
    )
    assert [r["image_id"] for r in recs] == [142238, 439180]
    assert recs[0]["height"] == 427 and recs[0]["file_name"].endswith("000000142238.jpg")
    seg = recs[0]["segments_info"][0]
    assert seg["category_id"] == 0 and seg["isthing"] is True  # person
    sky = [s for s in recs[0]["segments_info"] if not s["isthing"]]
    assert {meta["stuff_classes"][s["category_id"]] for s in sky} >= {"sky-other-merged"}

    bad = json.loads((SAMPLE / "panoptic_examples.json").read_text())
    bad["annotations"][0]["segments_info"][0]["category_id"] = 12  # unused COCO id
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="category id 12"):
        load_panoptic_json(
            str(tmp_path / "bad.json"),
            str(SAMPLE / "input_images"),
            str(SAMPLE / "panoptic_examples"),
            None,
            meta,
        )
