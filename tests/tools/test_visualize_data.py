"""tools/visualize_data.py: draw a registered dataset's ground truth."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from helpers import REPO as ROOT
from helpers import load_script

from detectron2.data.catalog import Metadata

PY = sys.executable


def _load_tool():
    return load_script("tools/visualize_data.py", "visualize_data_tool")


vd = _load_tool()


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from mask2former.data.synthetic import generate_synthetic_dataset

    root = tmp_path_factory.mktemp("datasets")
    generate_synthetic_dataset(str(root), num_train=2, num_val=3, seed=3, image_size=96)
    return str(root)


def _meta():
    from mask2former.data.datasets.register_synthetic import get_synthetic_metadata

    meta = Metadata(name="_vis_test")
    meta.set(**get_synthetic_metadata())
    return meta


def _region_change(a, b, mask):
    return np.abs(a[mask].astype(float).mean(0) - b[mask].astype(float).mean(0)).max()


def test_choose_kind():
    rec = {"file_name": "x.jpg", "pan_seg_file_name": "p.png", "segments_info": [],
           "sem_seg_file_name": "s.png", "annotations": []}
    assert vd.choose_kind(rec) == "panoptic"
    assert vd.choose_kind({"annotations": [{"bbox": 0}], "sem_seg_file_name": "s"}) == "instance"
    assert vd.choose_kind({"sem_seg_file_name": "s"}) == "semantic"
    assert vd.choose_kind({"file_name": "x"}) == "none"
    with pytest.raises(KeyError, match="no instance annotation"):
        vd.choose_kind(rec, "instance")


def test_draw_record_colours_each_segment(synthetic_root):
    """The panoptic drawing tints each segment with its class colour (things from the full list)."""
    from detectron2.data.datasets.coco_panoptic import load_coco_panoptic_json
    from panopticapi.utils import rgb2id

    from mask2former.utils.visualizer import full_class_metadata

    d = os.path.join(synthetic_root, "synthetic")
    meta = _meta()
    records = load_coco_panoptic_json(
        os.path.join(d, "annotations", "panoptic_val.json"), os.path.join(d, "images", "val"),
        os.path.join(d, "panoptic_val"), meta.as_dict(),
    )
    meta = full_class_metadata(meta, len(meta.stuff_classes))
    rec = records[0]
    rec["sem_seg_file_name"] = os.path.join(d, "panoptic_semseg_val", "000000.png")
    image = np.asarray(Image.open(rec["file_name"]).convert("RGB"))
    pan = rgb2id(np.asarray(Image.open(rec["pan_seg_file_name"]).convert("RGB")))
    for kind in ("panoptic", "semantic"):
        drawn = vd.draw_record(rec, meta, kind)
        assert drawn.shape == image.shape
        for seg in rec["segments_info"]:
            mask = pan == seg["id"]
            if mask.sum() > 200:
                assert _region_change(image, drawn, mask) > 3, (kind, seg)
    # scale resizes the drawing
    assert vd.draw_record(rec, meta, "panoptic", scale=2.0).shape[:2] == (192, 192)


def test_cli_annotation_source(synthetic_root, tmp_path):
    env = dict(os.environ, DETECTRON2_DATASETS=synthetic_root)
    out = tmp_path / "gt"
    code = (
        "import sys, runpy; sys.argv = sys.argv[1:]; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    script = os.path.join(ROOT, "tools", "visualize_data.py")
    res = subprocess.run(
        [PY, "-c", code, script, "--dataset", "synthetic_panoptic_val", "--output-dir", str(out),
         "--num", "2"], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert sorted(os.listdir(out)) == ["000000.png", "000001.png"]
    assert Image.open(out / "000000.png").size == (96, 96)
    res = subprocess.run(
        [PY, script, "--dataset", "no_such_dataset", "--output-dir", str(out)],
        env=env, capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert res.returncode == 2 and "not registered" in res.stdout + res.stderr


def test_draw_training_sample():
    """A mapped training sample (CHW image in INPUT.FORMAT, instances with bool masks)."""
    import torch
    from detectron2.structures import Instances

    image = np.full((64, 80, 3), 100, np.uint8)
    masks = torch.zeros(2, 64, 80, dtype=torch.bool)
    masks[0, 5:30, 5:30] = True
    masks[1, 40:60, 50:75] = True
    inst = Instances((64, 80), gt_classes=torch.tensor([0, 6]), gt_masks=masks)
    sample = {"image": torch.from_numpy(image[:, :, ::-1].copy()).permute(2, 0, 1), "instances": inst}
    from mask2former.utils.visualizer import full_class_metadata

    meta = full_class_metadata(_meta(), 7)
    drawn = vd.draw_training_sample(sample, meta, "BGR")
    assert drawn.shape == (64, 80, 3)
    for m in masks.numpy():
        assert _region_change(image, drawn, m) > 10
    untouched = ~(masks[0] | masks[1]).numpy()
    untouched[:, :] &= np.pad(np.ones((54, 70), bool), 5)  # away from outlines at the border
    assert _region_change(image, drawn, untouched) < 12
