"""torch.compile on CPU: the decoders trace into single graphs (no graph breaks), and a compiled
model gives the eager outputs.

Graph breaks are counted with ``torch._dynamo.explain`` (no code generation, seconds). The full
model is compiled with the "aot_eager" backend (Dynamo capture + AOTAutograd, without Inductor's
C++ code generation, which takes minutes on 2 cores).
"""

import os

import pytest
import torch
import torch._dynamo as dynamo

from detectron2.config import get_cfg
from detectron2.modeling import build_model

from mask2former import add_maskformer2_config

# Known gap (issue 9), kept visible: the pixel decoder turns its `spatial_shapes` tensor back
# into Python numbers (`.tolist()` in msdeformattn.py get_reference_points and
# _forward_features_fp32, and in layers/ms_deform_attn.py ms_deform_attn_pytorch), which Dynamo
# cannot trace: 6 graph breaks. strict: the test fails as soon as the breaks are gone, so the
# marker gets removed then.
PIXEL_DECODER_BREAKS = pytest.mark.xfail(
    strict=True,
    reason="spatial_shapes.tolist() in the pixel decoder and the op break the graph",
)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SMALL_CONFIG = os.path.join(ROOT, "tests", "modeling", "backbone", "small_swin_maskformer.yaml")


@pytest.fixture(scope="module")
def model():
    cfg = get_cfg()
    add_maskformer2_config(cfg)
    cfg.merge_from_file(SMALL_CONFIG)
    torch.manual_seed(0)
    return build_model(cfg).eval()


@pytest.fixture(scope="module")
def features(model):
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return model.backbone(x)


def _breaks(explanation):
    """Readable list of the graph breaks: reason and the user code line that caused it."""
    out = []
    for b in explanation.break_reasons:
        where = b.user_stack[-1] if b.user_stack else None
        loc = f"{os.path.relpath(where.filename, ROOT)}:{where.lineno}" if where else "?"
        out.append(f"{loc}: {b.reason.splitlines()[0][:120]}")
    return out


def _explain(fn, *args):
    dynamo.reset()
    with torch.no_grad():
        return dynamo.explain(fn)(*args)


def test_backbone_has_no_graph_breaks(model):
    x = torch.randn(1, 3, 64, 96)
    ex = _explain(model.backbone, x)
    assert ex.graph_break_count == 0, _breaks(ex)
    assert ex.graph_count == 1


@PIXEL_DECODER_BREAKS
def test_pixel_decoder_has_no_graph_breaks(model, features):
    ex = _explain(model.sem_seg_head.pixel_decoder.forward_features, features)
    assert ex.graph_break_count == 0, _breaks(ex)


def test_transformer_decoder_has_no_graph_breaks(model, features):
    with torch.no_grad():
        mask_features, _, multi_scale = model.sem_seg_head.pixel_decoder.forward_features(features)
    ex = _explain(model.sem_seg_head.predictor, multi_scale, mask_features)
    assert ex.graph_break_count == 0, _breaks(ex)


@PIXEL_DECODER_BREAKS
def test_sem_seg_head_has_no_graph_breaks(model, features):
    ex = _explain(model.sem_seg_head, features)
    assert ex.graph_break_count == 0, _breaks(ex)


@pytest.mark.slow
def test_compiled_model_matches_eager(model):
    image = torch.rand(3, 60, 90, generator=torch.Generator().manual_seed(1)) * 255
    inputs = [{"image": image, "height": 60, "width": 90}]
    dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager")
    with torch.no_grad():
        want = model(inputs)[0]
        got = compiled(inputs)[0]
    assert sorted(got) == sorted(want)
    torch.testing.assert_close(got["sem_seg"], want["sem_seg"], rtol=1e-4, atol=1e-5)
    assert torch.equal(got["panoptic_seg"][0], want["panoptic_seg"][0])
    torch.testing.assert_close(got["instances"].scores, want["instances"].scores)
    dynamo.reset()
