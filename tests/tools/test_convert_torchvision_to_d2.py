"""tools/convert-torchvision-to-d2.py: a torchvision ResNet-50 loads into the R50 configs."""

import os
import pickle

import numpy as np
import torch
import torchvision

from helpers import load_script, make_cfg

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model




def _tool():
    return load_script("tools/convert-torchvision-to-d2.py", "convert_torchvision_to_d2")


def test_resnet50_converts_and_loads_into_backbone(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.resnet50()
    src = os.path.join(tmp_path, "resnet50.pth")
    dst = os.path.join(tmp_path, "R-50.pkl")
    torch.save(tv.state_dict(), src)
    assert _tool().main([src, dst]) == 0

    with open(dst, "rb") as f:
        data = pickle.load(f)
    assert data["__author__"] == "torchvision" and data["matching_heuristics"] is True
    converted = data["model"]
    assert all(isinstance(v, np.ndarray) for v in converted.values())
    assert not any(k.startswith("fc.") or "num_batches_tracked" in k for k in converted)

    cfg = make_cfg("coco/panoptic/r50.yaml")
    model = build_model(cfg)
    backbone_keys = {k for k in model.state_dict() if k.startswith("backbone.")}
    # every backbone tensor has a converted counterpart, and nothing else is converted
    assert {"backbone." + k for k in converted} == backbone_keys

    DetectionCheckpointer(model).load(dst)
    state = model.state_dict()
    for k, v in converted.items():
        np.testing.assert_array_equal(state["backbone." + k].numpy(), v, err_msg=k)
    # spot-check the renaming against torchvision's own tensors
    tv_state = tv.state_dict()
    np.testing.assert_array_equal(
        state["backbone.stem.conv1.weight"].numpy(), tv_state["conv1.weight"].numpy()
    )
    np.testing.assert_array_equal(
        state["backbone.res5.2.conv3.norm.running_var"].numpy(),
        tv_state["layer4.2.bn3.running_var"].numpy(),
    )
    np.testing.assert_array_equal(
        state["backbone.res3.0.shortcut.norm.weight"].numpy(),
        tv_state["layer2.0.downsample.1.weight"].numpy(),
    )


def test_rejects_non_resnet_state_dict():
    import pytest

    with pytest.raises(ValueError, match="torchvision ResNet"):
        _tool().convert_torchvision_resnet({"encoder.weight": torch.zeros(1)})
