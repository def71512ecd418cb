"""tools/export_onnx.py: the inference network (backbone + sem_seg_head, deformable attention
via its "pytorch" backend) exported at a fixed size runs in onnxruntime on CPU and gives the
same pred_logits / pred_masks as PyTorch."""

import os

import pytest
import torch

from helpers import REPO as ROOT
from helpers import deterministic_init_, load_script, make_cfg


from mask2former.layers import MSDeformAttn

SMALL_CONFIG = os.path.join(ROOT, "tests", "modeling", "backbone", "small_swin_maskformer.yaml")


def _load_tool():
    return load_script("tools/export_onnx.py", "export_onnx")



def small_swin_cfg():
    """The released Swin Mask2Former architecture, scaled down so export takes seconds."""
    return make_cfg(SMALL_CONFIG)


@pytest.mark.slow  # ~15 s alone, over 30 s on a busy 2-core machine
def test_onnxruntime_matches_pytorch(tmp_path):
    tool = _load_tool()
    torch.manual_seed(0)
    net = tool.build_inference_network(small_swin_cfg())
    # the parity fixtures' weights (mask2former.utils.testing.deterministic_init_): unlike the
    # default init, every deformable-attention offset and weight is non-trivial
    deterministic_init_(net)
    deform = [m for m in net.modules() if isinstance(m, MSDeformAttn)]
    assert deform and all(m.backend == "pytorch" for m in deform)

    # 80x96: the 1/32 map (3x3) is smaller than a Swin window, the 1/4 map (20x24) is not a
    # multiple of it, so the padded and shifted-window paths are part of the graph.
    path = str(tmp_path / "model.onnx")
    example = tool.export_onnx(net, path, 80, 96)
    assert os.path.getsize(path) > 0

    image = torch.rand(1, 3, 80, 96, generator=torch.Generator().manual_seed(1)) * 255
    assert not torch.equal(image, example)  # not only the traced input
    with torch.no_grad():
        want = dict(zip(tool.OUTPUT_NAMES, net(image)))
    got = tool.run_onnxruntime(path, image)
    assert got["pred_logits"].shape == (1, 8, 6)
    assert got["pred_masks"].shape == (1, 8, 20, 24)
    errors = {name: tool.max_rel_err(got[name], want[name]) for name in tool.OUTPUT_NAMES}
    print("onnxruntime vs PyTorch max rel err:", {k: f"{v:.1e}" for k, v in errors.items()})
    assert all(e <= 1e-5 for e in errors.values()), errors  # README: max rel. error <= 1e-5


def test_rejects_size_not_divisible():
    tool = _load_tool()
    with pytest.raises(ValueError, match="multiples of 32"):
        tool.parse_size("100x96", 32)
    with pytest.raises(ValueError, match="HxW"):
        tool.parse_size("96", 32)
    assert tool.parse_size("64X96", 32) == (64, 96)


def test_weights_are_loaded_safely_and_must_fit(tmp_path):
    from mask2former.checkpoint import CheckpointShapeError

    tool = _load_tool()
    cfg = small_swin_cfg()
    torch.manual_seed(0)
    state = tool.build_inference_network(cfg).state_dict()  # no MODEL.WEIGHTS: random init
    good = {k: v + 0.5 if v.is_floating_point() else v for k, v in state.items()}
    torch.save({"model": good}, tmp_path / "good.pth")
    cfg.MODEL.WEIGHTS = str(tmp_path / "good.pth")
    loaded = tool.build_inference_network(cfg).state_dict()
    name = "sem_seg_head.predictor.class_embed.weight"
    assert torch.equal(loaded[name], good[name])

    bad = dict(good)
    bad[name] = torch.zeros(3, bad[name].shape[1])  # another number of classes
    torch.save({"model": bad}, tmp_path / "bad.pth")
    cfg.MODEL.WEIGHTS = str(tmp_path / "bad.pth")
    with pytest.raises(CheckpointShapeError, match="class_embed"):
        tool.build_inference_network(cfg)
