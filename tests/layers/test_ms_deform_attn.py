"""Multi-scale deformable attention: native kernels vs the grid_sample reference, autograd,
input validation, tracing (fake tensors, torch.compile, torch.export) and the module."""
import os
import subprocess
import sys

import pytest
import torch

from mask2former.layers import MSDeformAttn, available_backends, ms_deform_attn

from helpers import REPO as ROOT

ops = torch.ops.mask2former if "native-cpu" in available_backends() else None

# (N, M, D, level shapes (H, W), Lq, P): several sizes, odd and 1-pixel levels.
CONFIGS = [
    (1, 1, 1, [(1, 1)], 1, 1),
    (2, 3, 5, [(7, 9), (4, 5), (1, 3)], 11, 4),
    (1, 8, 32, [(16, 16), (8, 8), (4, 4)], 64, 4),
    (3, 2, 7, [(5, 3), (2, 7), (3, 1), (1, 1)], 9, 3),
    (2, 4, 16, [(13, 11)], 17, 2),
]


def _grads(out, inputs, seed=1):
    g = torch.Generator().manual_seed(seed)
    grad_out = torch.randn(out.shape, generator=g, dtype=out.dtype)
    return torch.autograd.grad(out, inputs, grad_out)


def _assert_close_rel(actual, expected, rtol=1e-5, name="output"):
    """Relative error bounded by rtol, measured against the tensor's scale (max |expected|)."""
    scale = expected.abs().max().clamp_min(1e-30)
    try:
        torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * float(scale))
    except AssertionError as e:
        raise AssertionError(f"{name}: {e}") from None


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "N{}M{}D{}L{}Lq{}P{}".format(
    c[0], c[1], c[2], len(c[3]), c[4], c[5]))
def test_native_matches_reference_float32(native_cpu, make_inputs, cfg):
    N, M, D, shapes, Lq, P = cfg
    value, ss, lsi, loc, w = make_inputs(N, M, D, shapes, Lq, P, requires_grad=True, seed=len(shapes))
    out_native = ms_deform_attn(value, ss, lsi, loc, w, backend="native")
    out_ref = ms_deform_attn(value, ss, lsi, loc, w, backend="pytorch")
    assert out_native.shape == (N, Lq, M * D)
    _assert_close_rel(out_native, out_ref)
    for name, gn, gr in zip(("value", "sampling_locations", "attention_weights"),
                            _grads(out_native, (value, loc, w)), _grads(out_ref, (value, loc, w))):
        assert gn.abs().sum() > 0, f"gradient of {name} is all zeros"
        _assert_close_rel(gn, gr, name=f"grad of {name}")


def test_native_matches_reference_float64_tight(native_cpu, make_inputs):
    value, ss, lsi, loc, w = make_inputs(2, 3, 5, [(7, 9), (4, 5), (1, 3)], 11, 4,
                                         dtype=torch.float64, requires_grad=True)
    out_n = ms_deform_attn(value, ss, lsi, loc, w, backend="native")
    out_r = ms_deform_attn(value, ss, lsi, loc, w, backend="pytorch")
    torch.testing.assert_close(out_n, out_r, rtol=1e-12, atol=1e-12)
    for gn, gr in zip(_grads(out_n, (value, loc, w)), _grads(out_r, (value, loc, w))):
        torch.testing.assert_close(gn, gr, rtol=1e-11, atol=1e-11)


def test_points_outside_sample_zero(native_cpu, make_inputs):
    value, ss, lsi, loc, w = make_inputs(1, 2, 4, [(5, 6), (3, 3)], 5, 2, special=False)
    for far in (-1.0, 2.0, float("inf"), float("nan")):
        out = ms_deform_attn(value, ss, lsi, torch.full_like(loc, far), w, backend="native")
        assert torch.equal(out, torch.zeros_like(out)), far
    # A location exactly on the border (0 or 1) sits on the outer edge of the border pixel:
    # half of that pixel (a quarter for the corner) is sampled.
    value1 = torch.arange(1.0, 7.0).view(1, 6, 1, 1)  # one 2x3 level, value = 1..6
    ss1, lsi1 = torch.tensor([[2, 3]]), torch.tensor([0])
    loc1 = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.5, 0.0]]).view(1, 3, 1, 1, 1, 2)
    w1 = torch.ones(1, 3, 1, 1, 1)
    out1 = ms_deform_attn(value1, ss1, lsi1, loc1, w1, backend="native").flatten()
    torch.testing.assert_close(out1, torch.tensor([0.25 * 1, 0.25 * 6, 0.5 * 2]))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_native_reduced_precision_cpu(native_cpu, make_inputs, dtype):
    value, ss, lsi, loc, w = make_inputs(2, 3, 8, [(7, 9), (4, 5)], 11, 4, special=False)
    loc = loc.clamp(0.05, 0.95)
    ref_inputs = [t.to(dtype).double().requires_grad_() for t in (value, loc, w)]
    lp_inputs = [t.to(dtype).requires_grad_() for t in (value, loc, w)]
    out_ref = ms_deform_attn(ref_inputs[0], ss, lsi, ref_inputs[1], ref_inputs[2], backend="native")
    out_lp = ms_deform_attn(lp_inputs[0], ss, lsi, lp_inputs[1], lp_inputs[2], backend="native")
    assert out_lp.dtype == dtype
    tol = 2e-2 if dtype == torch.bfloat16 else 3e-3
    torch.testing.assert_close(out_lp.double(), out_ref, rtol=tol, atol=tol)
    g = torch.randn(out_ref.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    grads_ref = torch.autograd.grad(out_ref, ref_inputs, g)
    grads_lp = torch.autograd.grad(out_lp, lp_inputs, g.to(dtype))
    for a, b in zip(grads_lp, grads_ref):
        assert a.dtype == dtype
        scale = float(b.abs().max())
        torch.testing.assert_close(a.double(), b, rtol=4 * tol, atol=4 * tol * scale)


@pytest.mark.parametrize("backend", ["native", "pytorch"])
def test_gradcheck_float64(native_cpu, make_inputs, backend):
    value, ss, lsi, loc, w = make_inputs(2, 2, 3, [(3, 4), (2, 2)], 3, 2, dtype=torch.float64,
                                         special=False, requires_grad=True)

    def fn(v, l_, a):
        return ms_deform_attn(v, ss, lsi, l_, a, backend=backend)

    assert torch.autograd.gradcheck(fn, (value, loc, w), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_native_noncontiguous_inputs_are_made_contiguous(native_cpu, make_inputs):
    value, ss, lsi, loc, w = make_inputs(2, 3, 4, [(5, 6), (3, 2)], 7, 2)
    value_nc = value.transpose(0, 1).contiguous().transpose(0, 1)
    loc_nc = loc.permute(5, 0, 1, 2, 3, 4).contiguous().permute(1, 2, 3, 4, 5, 0)
    assert not value_nc.is_contiguous() and not loc_nc.is_contiguous()
    out = ms_deform_attn(value_nc, ss, lsi, loc_nc, w, backend="native")
    torch.testing.assert_close(out, ms_deform_attn(value, ss, lsi, loc, w, backend="native"))


def test_auto_backend_uses_native_on_cpu(native_cpu, make_inputs, monkeypatch):
    calls = []
    real = ops.ms_deform_attn_forward

    class Spy:
        def ms_deform_attn_forward(self, *args):
            calls.append(1)
            return real(*args)

    monkeypatch.setattr(torch.ops, "mask2former", Spy())
    inputs = make_inputs(1, 2, 4, [(4, 4)], 3, 2)
    ms_deform_attn(*inputs)
    ms_deform_attn(*inputs, backend="pytorch")
    assert calls == [1]
    assert available_backends()[:2] == ["pytorch", "native-cpu"]


def test_lq_zero(native_cpu, make_inputs):
    value, ss, lsi, loc, w = make_inputs(2, 3, 4, [(3, 3)], 0, 2, special=False)
    assert ms_deform_attn(value, ss, lsi, loc, w, backend="native").shape == (2, 0, 12)


def test_double_backward_raises(native_cpu, make_inputs):
    value, ss, lsi, loc, w = make_inputs(1, 2, 3, [(3, 3)], 2, 2, requires_grad=True)
    out = ms_deform_attn(value, ss, lsi, loc, w, backend="native")
    (gv,) = torch.autograd.grad(out.sum(), value, create_graph=True)
    with pytest.raises(RuntimeError, match="not differentiable"):
        gv.sum().backward()


# ---------------------------------------------------------------- input validation
def _bad_cases(make_inputs):
    v, ss, lsi, loc, w = make_inputs(2, 3, 4, [(4, 5), (2, 3)], 6, 2)
    return {
        "value rank": ((v[0], ss, lsi, loc, w), "value"),
        "spatial_shapes rank": ((v, ss[0], lsi, loc, w), "spatial_shapes"),
        "level_start_index rank": ((v, ss, lsi[None], loc, w), "level_start_index"),
        "locations rank": ((v, ss, lsi, loc[0], w), "sampling_locations"),
        "weights rank": ((v, ss, lsi, loc, w[0]), "attention_weights"),
        "N mismatch": ((v[:1], ss, lsi, loc, w), "sampling_locations"),
        "M mismatch": ((v[:, :, :2], ss, lsi, loc, w), "sampling_locations"),
        "L mismatch": ((v, ss, lsi, loc[:, :, :, :1], w[:, :, :, :1]), "sampling_locations"),
        "P mismatch": ((v, ss, lsi, loc, w[..., :1]), "attention_weights"),
        "last dim not 2": ((v, ss, lsi, loc[..., :1], w), "sampling_locations"),
        "levels in start index": ((v, ss, lsi[:1], loc, w), "level_start_index"),
        "shapes sum != S": ((v[:, :-1], ss, lsi, loc, w), "spatial_shapes"),
        "wrong starts": ((v, ss, lsi + 1, loc, w), "level_start_index"),
        "int value": ((v.long(), ss, lsi, loc, w), "value"),
        "locations dtype": ((v, ss, lsi, loc.double(), w), "sampling_locations"),
        "weights dtype": ((v, ss, lsi, loc, w.half()), "attention_weights"),
        "shapes dtype": ((v, ss.int(), lsi, loc, w), "spatial_shapes"),
        "starts dtype": ((v, ss, lsi.int(), loc, w), "level_start_index"),
        "device": ((v, ss, lsi, loc.to("meta"), w), "sampling_locations"),
        "not a tensor": ((v, ss.numpy(), lsi, loc, w), "spatial_shapes"),
    }


@pytest.mark.parametrize("backend", ["native", "pytorch", "auto"])
def test_python_validation_names_argument(native_cpu, make_inputs, backend):
    for case, (args, name) in _bad_cases(make_inputs).items():
        with pytest.raises(ValueError, match=name):
            ms_deform_attn(*args, backend=backend)
    with pytest.raises(ValueError, match="backend"):
        ms_deform_attn(*make_inputs(1, 1, 1, [(1, 1)], 1, 1), backend="cuda")


@pytest.mark.parametrize("backend", ["native", "pytorch"])
def test_spatial_shapes_as_python_ints(native_cpu, make_inputs, backend):
    """(H, W) pairs as Python ints (what the pixel decoder passes, so nothing is read back from
    a tensor under torch.compile) give the tensor form's outputs, gradients and errors."""
    value, ss, lsi, loc, w = make_inputs(2, 3, 4, [(4, 5), (2, 3)], 6, 2, requires_grad=True)
    pairs = [(4, 5), (2, 3)]
    out_t = ms_deform_attn(value, ss, lsi, loc, w, backend=backend)
    out_l = ms_deform_attn(value, pairs, lsi, loc, w, backend=backend)
    torch.testing.assert_close(out_l, out_t, rtol=0, atol=0)
    for gl, gt in zip(_grads(out_l, (value, loc, w)), _grads(out_t, (value, loc, w))):
        torch.testing.assert_close(gl, gt, rtol=0, atol=0)
    bad = {
        "sum != S": ((value[:, :-1], pairs, lsi, loc, w), "spatial_shapes"),
        "wrong starts": ((value, pairs, lsi + 1, loc, w), "level_start_index"),
        "levels": ((value, pairs[:1], lsi, loc, w), "level_start_index"),
        "negative": ((value, [(-4, -5), (2, 3)], lsi, loc, w), "spatial_shapes"),
        "triples": ((value, [(4, 5, 1), (2, 3, 1)], lsi, loc, w), "spatial_shapes"),
        "floats": ((value, [(4.0, 5.0), (2.0, 3.0)], lsi, loc, w), "spatial_shapes"),
    }
    for case, (args, name) in bad.items():
        with pytest.raises(ValueError, match=name):
            ms_deform_attn(*args, backend=backend)

    torch.manual_seed(0)
    m = MSDeformAttn(d_model=16, n_levels=2, n_heads=4, n_points=2, backend=backend)
    query, refpts, x = torch.randn(1, 7, 16), torch.rand(1, 7, 2, 2), torch.randn(1, 26, 16)
    torch.testing.assert_close(m(query, refpts, x, pairs, lsi), m(query, refpts, x, ss, lsi),
                               rtol=0, atol=0)


def test_cpp_checks_name_argument(native_cpu, make_inputs):
    """The kernels check their inputs too (torch.ops called directly): RuntimeError, no crash."""
    cases = _bad_cases(make_inputs)
    del cases["not a tensor"]  # rejected by the dispatcher's schema, not by our checks
    for case, (args, name) in cases.items():
        with pytest.raises(RuntimeError, match=name):
            ops.ms_deform_attn_forward(*[a.contiguous() for a in args])
    v, ss, lsi, loc, w = make_inputs(2, 3, 4, [(4, 5), (2, 3)], 6, 2)
    with pytest.raises(RuntimeError, match="value must be contiguous"):
        ops.ms_deform_attn_forward(v.transpose(0, 1).contiguous().transpose(0, 1), ss, lsi, loc, w)
    with pytest.raises(RuntimeError, match="sampling_locations must be contiguous"):
        ops.ms_deform_attn_forward(v, ss, lsi, loc.transpose(1, 2).contiguous().transpose(1, 2), w)
    g = torch.zeros(2, 6, 12)
    with pytest.raises(RuntimeError, match="grad_output must have shape"):
        ops.ms_deform_attn_backward(v, ss, lsi, loc, w, g[:, :5])
    with pytest.raises(RuntimeError, match="grad_output dtype"):
        ops.ms_deform_attn_backward(v, ss, lsi, loc, w, g.double())


# ---------------------------------------------------------------- tracing
def test_fake_tensor_shapes(native_cpu, make_inputs):
    from torch._subclasses.fake_tensor import FakeTensorMode

    inputs = make_inputs(2, 3, 4, [(4, 5), (2, 3)], 6, 2)
    with FakeTensorMode() as mode:
        fake = [mode.from_tensor(t) for t in inputs]
        out = ops.ms_deform_attn_forward(*fake)
        gv, gl, gw = ops.ms_deform_attn_backward(*fake, torch.empty(2, 6, 12))
        out2 = ms_deform_attn(*fake, backend="native")
    assert out.shape == out2.shape == (2, 6, 12)
    assert (gv.shape, gl.shape, gw.shape) == (inputs[0].shape, inputs[3].shape, inputs[4].shape)


# inductor compiles C++ code: ~10 s with a warm inductor cache, ~35 s cold on 2 busy cores.
@pytest.mark.parametrize("compile_backend",
                         ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_torch_compile_fullgraph_forward_backward(native_cpu, make_inputs, compile_backend):
    torch._dynamo.reset()
    value, ss, lsi, loc, w = make_inputs(2, 3, 4, [(5, 6), (3, 2)], 7, 2, requires_grad=True)

    def fn(v, l_, a):
        return (ms_deform_attn(v * 2, ss, lsi, l_, a.softmax(-1), backend="native") ** 2).sum()

    compiled = torch.compile(fn, backend=compile_backend, fullgraph=True)
    loss_c = compiled(value, loc, w)
    grads_c = torch.autograd.grad(loss_c, (value, loc, w))
    loss_e = fn(value, loc, w)
    grads_e = torch.autograd.grad(loss_e, (value, loc, w))
    torch.testing.assert_close(loss_c, loss_e)
    for a, b in zip(grads_c, grads_e):
        torch.testing.assert_close(a, b)


def test_torch_export(native_cpu, make_inputs):
    class Block(torch.nn.Module):
        def forward(self, v, ss, lsi, l_, a):
            return ms_deform_attn(v, ss, lsi, l_, a, backend="native") + 1

    inputs = make_inputs(1, 2, 4, [(4, 4), (2, 2)], 5, 2)
    ep = torch.export.export(Block(), tuple(inputs))
    targets = [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]
    assert any("mask2former.ms_deform_attn_forward" in t for t in targets), targets
    torch.testing.assert_close(ep.module()(*inputs), Block()(*inputs))


# ---------------------------------------------------------------- module and packaging
def test_module_same_output_with_both_backends(native_cpu):
    torch.manual_seed(0)
    shapes = torch.tensor([[6, 7], [3, 4], [2, 2]])
    sizes = shapes.prod(1)
    lsi = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    S = int(sizes.sum())
    native = MSDeformAttn(d_model=32, n_levels=3, n_heads=4, n_points=3, backend="native")
    with torch.no_grad():  # generic (non-integer) sampling offsets instead of the init pattern
        native.sampling_offsets.weight.normal_(std=0.3)
        native.attention_weights.weight.normal_(std=0.3)
    ref = MSDeformAttn(d_model=32, n_levels=3, n_heads=4, n_points=3, backend="pytorch")
    ref.load_state_dict(native.state_dict())
    x = torch.randn(2, S, 32)
    refpts = torch.rand(2, S, 3, 2)
    out_n = native(x, refpts, x, shapes, lsi)
    out_r = ref(x, refpts, x, shapes, lsi)
    assert out_n.shape == (2, S, 32)
    _assert_close_rel(out_n, out_r)
    out_n.square().sum().backward()
    out_r.square().sum().backward()
    for (name, pn), pr in zip(native.named_parameters(), ref.parameters()):
        _assert_close_rel(pn.grad, pr.grad, name=f"grad of {name}")
    assert set(native.state_dict()) == {
        f"{m}.{p}" for m in ("sampling_offsets", "attention_weights", "value_proj", "output_proj")
        for p in ("weight", "bias")}


@pytest.mark.parametrize("backend", ["native", "pytorch"])
def test_module_padding_mask_hides_positions(native_cpu, backend):
    torch.manual_seed(0)
    shapes, lsi = torch.tensor([[4, 5], [2, 3]]), torch.tensor([0, 20])
    m = MSDeformAttn(d_model=16, n_levels=2, n_heads=2, n_points=2, backend=backend)
    query, refpts = torch.randn(1, 7, 16), torch.rand(1, 7, 2, 2)
    x = torch.randn(1, 26, 16)
    mask = torch.zeros(1, 26, dtype=torch.bool)
    mask[0, 15:20] = mask[0, 23:] = True
    x2 = x.clone()
    x2[mask] = 100.0
    out1 = m(query, refpts, x, shapes, lsi, mask)
    torch.testing.assert_close(out1, m(query, refpts, x2, shapes, lsi, mask))
    assert not torch.allclose(out1, m(query, refpts, x2, shapes, lsi))


def test_module_init_matches_deformable_detr():
    m = MSDeformAttn(d_model=16, n_levels=2, n_heads=4, n_points=2)
    assert torch.count_nonzero(m.sampling_offsets.weight) == 0
    bias = m.sampling_offsets.bias.view(4, 2, 2, 2)
    # head directions (1,0), (0,1), (-1,0), (0,-1) scaled by point index 1..P, same per level
    expected = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    for p in range(2):
        torch.testing.assert_close(bias[:, 0, p], expected * (p + 1), atol=1e-6, rtol=0)
        torch.testing.assert_close(bias[:, 1, p], expected * (p + 1), atol=1e-6, rtol=0)
    assert torch.count_nonzero(m.attention_weights.weight) == 0
    assert torch.count_nonzero(m.attention_weights.bias) == 0


def test_import_without_extension_falls_back_to_pytorch():
    code = r"""
import torch
import mask2former
from mask2former.layers import available_backends, ms_deform_attn
assert available_backends() == ["pytorch"], available_backends()
ss = torch.tensor([[2, 2]]); lsi = torch.tensor([0])
v = torch.randn(1, 4, 1, 2); loc = torch.rand(1, 3, 1, 1, 1, 2); w = torch.ones(1, 3, 1, 1, 1)
assert ms_deform_attn(v, ss, lsi, loc, w).shape == (1, 3, 2)  # auto -> pytorch
try:
    ms_deform_attn(v, ss, lsi, loc, w, backend="native")
except RuntimeError as e:
    msg = str(e)
    assert "make build" in msg and "pip install --no-build-isolation -e ." in msg, msg
    assert "MASK2FORMER_DISABLE_EXT" in msg, msg
else:
    raise AssertionError("backend='native' did not raise without the extension")
import sys
assert "mask2former._C" not in sys.modules
print("OK")
"""
    env = dict(os.environ, MASK2FORMER_DISABLE_EXT="1")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith("OK"), r.stdout + r.stderr
