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

from detectron2.modeling import build_model

from mask2former.layers import MSDeformAttn, available_backends

from helpers import REPO as ROOT
from helpers import make_cfg

SMALL_CONFIG = os.path.join(ROOT, "tests", "modeling", "backbone", "small_swin_maskformer.yaml")


@pytest.fixture(scope="module")
def model():
    cfg = make_cfg(SMALL_CONFIG)
    torch.manual_seed(0)
    return build_model(cfg).eval()


@pytest.fixture(params=["native", "pytorch"])
def op_backend(request, model):
    """Runs a test with each deformable-attention backend (compiled CPU kernel, grid_sample).

    The pixel decoder passes the level sizes as Python ints, so neither backend reads a tensor
    back to the host (which Dynamo cannot trace: a graph break per call).
    """
    if request.param == "native" and "native-cpu" not in available_backends():
        pytest.fail("mask2former._C is not built; run `.venv/bin/python setup.py build_ext --inplace`")
    layers = [m for m in model.modules() if isinstance(m, MSDeformAttn)]
    assert layers
    saved = [m.backend for m in layers]
    for m in layers:
        m.backend = request.param
    yield request.param
    for m, b in zip(layers, saved):
        m.backend = b


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


def test_pixel_decoder_has_no_graph_breaks(model, features, op_backend):
    ex = _explain(model.sem_seg_head.pixel_decoder.forward_features, features)
    assert ex.graph_break_count == 0, _breaks(ex)
    assert ex.graph_count == 1


def test_transformer_decoder_has_no_graph_breaks(model, features):
    with torch.no_grad():
        mask_features, _, multi_scale = model.sem_seg_head.pixel_decoder.forward_features(features)
    ex = _explain(model.sem_seg_head.predictor, multi_scale, mask_features)
    assert ex.graph_break_count == 0, _breaks(ex)


def test_sem_seg_head_has_no_graph_breaks(model, features, op_backend):
    ex = _explain(model.sem_seg_head, features)
    assert ex.graph_break_count == 0, _breaks(ex)
    assert ex.graph_count == 1


def test_compiled_pixel_decoder_matches_eager(model, features, op_backend):
    """fullgraph=True: compilation itself fails on any graph break."""
    decoder = model.sem_seg_head.pixel_decoder
    dynamo.reset()
    compiled = torch.compile(decoder.forward_features, backend="aot_eager", fullgraph=True)
    with torch.no_grad():
        want = decoder.forward_features(features)
        got = compiled(features)
    dynamo.reset()
    torch.testing.assert_close(got[0], want[0])
    torch.testing.assert_close(got[1], want[1])
    for g, w in zip(got[2], want[2], strict=True):
        torch.testing.assert_close(g, w)


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
