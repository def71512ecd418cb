"""Evaluation with an unreadable image: it is evaluated as a black image and reported."""
import logging
import os

import pytest
import torch
from detectron2.data import DatasetCatalog, build_detection_test_loader
from detectron2.evaluation import COCOPanopticEvaluator, DatasetEvaluators, inference_on_dataset
from detectron2.modeling import build_model

from mask2former.data.dataset_mappers import RobustTestMapper
from mask2former.evaluation import SkippedImagesReporter
from mask2former.data.robust_loading import BadSampleError

from helpers import QUICKSTART_CONFIG, TINY_QUICKSTART_OPTS, make_cfg


@pytest.fixture(scope="module")
def val_root(tmp_path_factory):
    from mask2former.data.datasets import register_synthetic
    from mask2former.data.synthetic import generate_synthetic_dataset

    root = str(tmp_path_factory.mktemp("eval_data"))
    generate_synthetic_dataset(root, num_train=0, num_val=3, seed=0, image_size=64)
    register_synthetic(root)
    return root


def test_unreadable_val_image_is_reported_and_metrics_still_computed(val_root, tmp_path, caplog):
    dicts = DatasetCatalog.get("synthetic_panoptic_val")
    bad = dicts[1]["file_name"]
    with open(bad, "r+b") as f:  # truncate the JPEG in place
        f.truncate(os.path.getsize(bad) // 3)
    cfg = make_cfg(QUICKSTART_CONFIG, *TINY_QUICKSTART_OPTS)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    loader = build_detection_test_loader(cfg, "synthetic_panoptic_val",
                                         mapper=RobustTestMapper(cfg))
    evaluator = DatasetEvaluators([
        COCOPanopticEvaluator("synthetic_panoptic_val", str(tmp_path)),
        SkippedImagesReporter("synthetic_panoptic_val"),
    ])
    with caplog.at_level(logging.WARNING):
        results = inference_on_dataset(model, loader, evaluator)
    assert results["skipped_images"] == {"count": 1.0}
    assert "PQ" in results["panoptic_seg"]
    assert "1 image(s) could not be read" in caplog.text and bad in caplog.text


def test_unreadable_image_of_unknown_size_is_a_clear_error(tmp_path):
    cfg = make_cfg()
    p = tmp_path / "x.jpg"
    p.write_bytes(b"garbage")
    with pytest.raises(BadSampleError, match="size is unknown"):
        RobustTestMapper(cfg)({"file_name": str(p)})
