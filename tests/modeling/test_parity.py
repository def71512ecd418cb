"""Numerical parity with the original implementation: tools/parity_check.py on the compact
reference fixtures of tests/fixtures/ (their README says where they came from)."""

import os

import pytest
import torch

from helpers import FIXTURES, config_path, parity_tool

IMAGE_FIXTURES = [
    ("parity_coco_panoptic_r50.npz", "coco/panoptic/r50.yaml"),
    ("parity_coco_panoptic_swin_t.npz", "coco/panoptic/swin_t.yaml"),
]
# what every image fixture must have been compared on (more for Swin: the backbone maps)
IMAGE_CHECKS = {
    "input image", "pred_logits", "sem_seg argmax", "sem_seg values", "panoptic_seg",
    "segments_info", "instances.scores", "instances.pred_classes", "instances.pred_masks",
}


# MaskFormer v1 (facebookresearch/MaskFormer): no instance output; panoptic for COCO only
V1_FIXTURES = [
    ("parity_v1_ade20k_semantic_r50.npz", "ade20k/semantic/maskformer_r50.yaml"),
    ("parity_v1_coco_panoptic_r50.npz", "coco/panoptic/maskformer_r50.yaml"),
]
V1_CHECKS = {"input image", "pred_logits", "sem_seg argmax", "sem_seg values"}


def _failed(checks):
    return [f"{n}: {d}" for n, ok, d in checks if not ok]


@pytest.mark.slow
@pytest.mark.parametrize("fixture,config", IMAGE_FIXTURES)
def test_parity_with_original(fixture, config):
    checks = parity_tool().run(os.path.join(FIXTURES, fixture), config_path(config))
    names = {n for n, _, _ in checks}
    assert IMAGE_CHECKS <= names, sorted(IMAGE_CHECKS - names)
    # the kept queries in full and the projection of all of them, for the masks and aux masks
    for base in ("pred_masks", "aux0_pred_masks"):
        assert sum(n.startswith(base) for n in names) == 2, sorted(names)
    if "swin" in fixture:
        assert sum(n.startswith("backbone.res") for n in names) == 8, sorted(names)
    assert not _failed(checks), _failed(checks)


# what the video fixture must have been compared on (Mask2Former-VIS: head outputs on a 3-frame
# clip, then the clip inference)
VIDEO_CHECKS = {
    "input image", "pred_logits", "image_size", "top-k count", "pred_scores (sorted)",
    "pred_labels (multiset)", "pred_masks (T, H, W)",
}


@pytest.mark.slow
def test_video_parity_with_original():
    checks = parity_tool().run(
        os.path.join(FIXTURES, "parity_ytvis2019_r50.npz"), config_path("youtubevis_2019/r50.yaml")
    )
    names = {n for n, _, _ in checks}
    assert VIDEO_CHECKS <= names, sorted(VIDEO_CHECKS - names)
    for base in ("pred_masks", "aux0_pred_masks"):
        assert sum(n.startswith(base + "[") or n.startswith(base + " (all") for n in names) == 2
    assert not _failed(checks), _failed(checks)


@pytest.mark.slow
@pytest.mark.parametrize("fixture,config", V1_FIXTURES)
def test_parity_with_original_maskformer_v1(fixture, config):
    checks = parity_tool().run(os.path.join(FIXTURES, fixture), config_path(config))
    names = {n for n, _, _ in checks}
    want = V1_CHECKS | ({"panoptic_seg", "segments_info"} if "panoptic" in fixture else set())
    assert want <= names, sorted(want - names)
    for base in ("pred_masks", "aux0_pred_masks"):
        assert sum(n.startswith(base) for n in names) == 2, sorted(names)
    assert not _failed(checks), _failed(checks)


@pytest.mark.slow
def test_perturbed_model_fails_the_check(capsys):
    """One backbone convolution 1 % stronger: head outputs and their projections must differ."""
    tool = parity_tool()
    fixture = os.path.join(FIXTURES, "parity_coco_panoptic_r50.npz")
    config = config_path("coco/panoptic/r50.yaml")
    fx = tool.load_fixture(fixture)
    _, model = tool.build_model(fx, config)
    with torch.no_grad():
        model.backbone.res4[0].conv2.weight.mul_(1.01)
    checks = tool.run(fx, config, model=model)
    failed = {n for n, ok, _ in checks if not ok}
    for name in ("pred_logits", "pred_masks[queries", "pred_masks (all queries"):
        assert any(f.startswith(name) for f in failed), (name, checks)
    assert "input image" not in failed
    assert tool.report("perturbed", checks) == 1
    assert "differ: " in capsys.readouterr().out.splitlines()[-1]
