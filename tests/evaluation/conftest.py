"""Fixtures for the evaluator tests (helpers live in eval_helpers.py: a module named
``conftest`` is not importable reliably when several test folders have one)."""

import pytest

from eval_helpers import build_coco_sample, unregister


@pytest.fixture
def coco_sample_dataset(tmp_path):
    """The real COCO sample registered as ``test_coco_sample_panoptic`` (panoptic + sem seg)."""
    from mask2former.data.datasets.register_coco_panoptic_annos_semseg import (
        get_coco_panoptic_metadata,
        register_coco_panoptic_annos_sem_seg,
    )

    p = build_coco_sample(tmp_path)
    name = "test_coco_sample_panoptic"
    unregister(name)
    register_coco_panoptic_annos_sem_seg(
        name,
        get_coco_panoptic_metadata(),
        p["image_root"],
        p["panoptic_root"],
        p["panoptic_json"],
        p["sem_seg_root"],
        p["instances_json"],
    )
    yield name
    unregister(name)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A small generated synthetic dataset (datasets root containing ``synthetic/``)."""
    from mask2former.data.synthetic import generate_synthetic_dataset

    root = tmp_path_factory.mktemp("synthetic_root")
    generate_synthetic_dataset(str(root), num_train=3, num_val=4, seed=1, image_size=96)
    return root
