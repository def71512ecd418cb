"""tools/convert-pretrained-swin-model-to-d2.py: an official ImageNet Swin checkpoint (random
weights, official layout) becomes a Detectron2 pickle that DetectionCheckpointer loads into the
backbone of the configs/coco/panoptic/swin_t.yaml model."""

import json
import os
import subprocess
import sys

import torch

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from mask2former.modeling.backbone.swin import relative_position_index

from helpers import REPO as ROOT
from helpers import STATE_DICT_DIR, make_cfg

TOOL = os.path.join(ROOT, "tools", "convert-pretrained-swin-model-to-d2.py")
LISTING = os.path.join(STATE_DICT_DIR, "coco_panoptic_swin_t.json")
OUTPUT_NORMS = tuple(f"norm{i}." for i in range(4))  # added by the segmentation variant


def official_swin_t_state_dict():
    """Random weights in the layout of swin_tiny_patch4_window7_224.pth's "model" entry: the
    backbone keys of the released Mask2Former listing (without the per-stage output norms),
    plus the classification model's final norm, head and attn_mask buffers."""
    with open(LISTING) as f:
        listing = json.load(f)["state_dict"]
    g = torch.Generator().manual_seed(0)
    state = {}
    for key, (shape, dtype) in listing.items():
        if not key.startswith("backbone.") or key[len("backbone.") :].startswith(OUTPUT_NORMS):
            continue
        name = key[len("backbone.") :]
        if dtype == "int64":  # relative_position_index, the same for every window-7 Swin
            state[name] = relative_position_index(7)
        else:
            state[name] = torch.randn(shape, generator=g)
    state["norm.weight"], state["norm.bias"] = torch.randn(768, generator=g), torch.randn(
        768, generator=g
    )
    state["head.weight"], state["head.bias"] = torch.randn(1000, 768, generator=g), torch.randn(
        1000, generator=g
    )
    for stage, (blocks, windows) in enumerate([(2, 64), (2, 16), (6, 4), (2, 1)]):
        for j in range(1, blocks, 2):
            state[f"layers.{stage}.blocks.{j}.attn_mask"] = torch.zeros(windows, 49, 49)
    return state


def swin_t_cfg():
    return make_cfg("coco/panoptic/swin_t.yaml")


class _RecordingCheckpointer(DetectionCheckpointer):
    def _load_model(self, checkpoint):
        self.incompatible = super()._load_model(checkpoint)
        return self.incompatible


def _run_tool(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True, cwd=ROOT)


def test_converted_swin_loads_into_backbone(tmp_path):
    state = official_swin_t_state_dict()
    src, dst = tmp_path / "swin_tiny_patch4_window7_224.pth", tmp_path / "swin_tiny.pkl"
    torch.save({"model": state}, src)

    proc = _run_tool(str(src), str(dst))
    assert proc.returncode == 0, proc.stderr
    assert "head.*" in proc.stdout and "*.attn_mask" in proc.stdout

    # the model of configs/coco/panoptic/swin_t.yaml, whose MODEL.WEIGHTS is such a file
    model = build_model(swin_t_cfg())
    head_before = {k: v.clone() for k, v in model.sem_seg_head.state_dict().items()}
    checkpointer = _RecordingCheckpointer(model)
    checkpointer.load(str(dst))
    inc = checkpointer.incompatible

    assert inc.unexpected_keys == []
    assert inc.incorrect_shapes == []
    # Every backbone tensor is loaded except the per-stage output norms (ImageNet Swin has a
    # single final norm): the original project trains them from scratch as well.
    missing_backbone = sorted(k for k in inc.missing_keys if k.startswith("backbone."))
    assert missing_backbone == sorted(
        f"backbone.norm{i}.{p}" for i in range(4) for p in ("weight", "bias")
    )
    loaded = model.state_dict()
    for name, tensor in state.items():
        if name.startswith(("head.", "norm.")) or name.endswith("attn_mask"):
            assert f"backbone.{name}" not in loaded
        else:
            assert torch.equal(loaded[f"backbone.{name}"], tensor), name
    # the name-matching heuristics put nothing into the head
    for k, v in model.sem_seg_head.state_dict().items():
        assert torch.equal(v, head_before[k]), k


def test_rejects_a_non_swin_checkpoint(tmp_path):
    src = tmp_path / "resnet.pth"
    torch.save({"model": {"conv1.weight": torch.zeros(64, 3, 7, 7)}}, src)
    proc = _run_tool(str(src), str(tmp_path / "out.pkl"))
    assert proc.returncode != 0
    assert "not a Swin Transformer" in proc.stderr
    assert not (tmp_path / "out.pkl").exists()


def test_requires_pkl_output(tmp_path):
    proc = _run_tool(str(tmp_path / "swin.pth"), str(tmp_path / "out.pth"))
    assert proc.returncode != 0 and ".pkl" in proc.stderr
