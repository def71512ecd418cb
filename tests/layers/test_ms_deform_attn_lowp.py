"""Multi-scale deformable attention in bfloat16 / float16: the dtype contract, the precision
stated in mask2former/layers/ms_deform_attn.py, the vectorised CPU paths (AVX-512, AVX2, scalar),
autocast, fake tensors / torch.compile and the module."""
import os
import subprocess
import sys

import pytest
import torch

from mask2former.layers import MSDeformAttn, available_backends, ms_deform_attn

ms_deform_attn_module = sys.modules[MSDeformAttn.__module__]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ops = torch.ops.mask2former if "native-cpu" in available_backends() else None
LOWP = [torch.bfloat16, torch.float16]
# The documented tolerances (module docstring of mask2former/layers/ms_deform_attn.py).
# Same 16-bit inputs vs float64: two units of rounding of the 16-bit result, plus float32
# summation error relative to the largest element.
RTOL_ROUNDING = {torch.bfloat16: 2.0**-7, torch.float16: 2.0**-10}
ATOL_SUM = 1e-5
ATOL_FP32_GRADS = 1e-4
# 16-bit value/weights with float32 locations vs the float32 op on unrounded float32 inputs
# (max error relative to the largest element): (output, gradients).
VS_FP32 = {torch.bfloat16: (1e-2, 2e-2), torch.float16: (2e-3, 4e-3)}

# (N, M, D, level shapes (H, W), Lq, P): D=32 (the model), D not a multiple of 8 or 16 (vector
# tails), D > 32 (several channel blocks), 1-pixel levels; L*P points per query below, at and
# above 16 (the AVX-512 code sets up 16 points per register).
CONFIGS = [
    (2, 3, 5, [(7, 9), (4, 5), (1, 3)], 11, 4),
    (1, 8, 32, [(16, 16), (8, 8), (4, 4)], 64, 4),
    (1, 2, 40, [(9, 9), (5, 4)], 13, 3),
    (3, 2, 19, [(5, 3), (2, 7), (3, 1), (1, 1)], 9, 3),
    (2, 2, 8, [(6, 5), (3, 3), (2, 2), (1, 2)], 7, 5),
    (1, 4, 16, [(5, 5), (3, 3)], 6, 8),
]
# dtypes of (sampling_locations, attention_weights) relative to a 16-bit value
PARAMS = {"fp32": ("f32", "f32"), "value": ("v", "v"), "loc32": ("f32", "v"), "w32": ("v", "f32")}


def _cast_inputs(inputs, dtype, params):
    value, ss, lsi, loc, w = inputs
    loc_dt, w_dt = (torch.float32 if p == "f32" else dtype for p in PARAMS[params])
    return value.to(dtype), ss, lsi, loc.to(loc_dt), w.to(w_dt)


def _forward_backward(inputs, backend, grad_out):
    value, ss, lsi, loc, w = inputs
    leaves = [t.detach().requires_grad_() for t in (value, loc, w)]
    out = ms_deform_attn(leaves[0], ss, lsi, leaves[1], leaves[2], backend=backend)
    grads = torch.autograd.grad(out, leaves, grad_out.to(out.dtype))
    return [out, *grads]


def _assert_rounding_close(actual, ref, dtype, name, factor=1.0):
    """|actual - ref| <= RTOL_ROUNDING |ref| + ATOL_SUM max|ref| for a 16-bit result,
    ATOL_FP32_GRADS max|ref| for a float32 one (gradients of float32 locations/weights); both
    times `factor` (2 when `ref` is itself a 16-bit result within these bounds)."""
    assert actual.dtype in (dtype, torch.float32), (name, actual.dtype)
    scale = float(ref.abs().max())
    if actual.dtype == dtype:
        bound = factor * (RTOL_ROUNDING[dtype] * ref.abs() + ATOL_SUM * scale)
    else:
        bound = torch.full_like(ref, factor * ATOL_FP32_GRADS * scale)
    err = (actual.double() - ref).abs()
    worst = int((err - bound).argmax())
    assert bool((err <= bound).all()), (
        f"{name} ({actual.dtype}): |err| {float(err.flatten()[worst]):.3e} > bound "
        f"{float(bound.flatten()[worst]):.3e} at flat index {worst} (ref "
        f"{float(ref.flatten()[worst]):.4e}, max|ref| {scale:.3e})")


def _check_lowp_against_fp64(inputs, dtype, backend, seed=1):
    """Forward + backward of 16-bit `inputs` vs the float64 op on the same (rounded) values."""
    value, ss, lsi, loc, w = inputs
    g = torch.randn(value.shape[0], loc.shape[1], value.shape[2] * value.shape[3],
                    generator=torch.Generator().manual_seed(seed)).to(dtype)
    res = _forward_backward(inputs, backend, g)
    ref = _forward_backward((value.double(), ss, lsi, loc.double(), w.double()), "native",
                            g.double())
    assert res[0].dtype == dtype
    for name, a, r, inp in zip(("output", "grad value", "grad sampling_locations",
                                "grad attention_weights"), res, ref, (value, value, loc, w)):
        assert a.dtype == inp.dtype, f"{name} has dtype {a.dtype}, its input {inp.dtype}"
        _assert_rounding_close(a, r, dtype, f"{backend} {name}")
    return res


@pytest.mark.parametrize("backend", ["native", "pytorch"])
@pytest.mark.parametrize("params", list(PARAMS))
@pytest.mark.parametrize("dtype", LOWP, ids=str)
def test_lowp_matches_float64_on_same_inputs(native_cpu, make_inputs, dtype, params, backend):
    """Borders and zero padding included (the factory's special locations: exactly 0 and 1,
    points outside [0, 1], whole points far outside)."""
    for seed, (N, M, D, shapes, Lq, P) in enumerate(CONFIGS):
        inputs = _cast_inputs(make_inputs(N, M, D, shapes, Lq, P, seed=seed), dtype, params)
        _check_lowp_against_fp64(inputs, dtype, backend, seed=seed)


@pytest.mark.parametrize("dtype", LOWP, ids=str)
def test_native_and_pytorch_agree(native_cpu, make_inputs, dtype):
    inputs = _cast_inputs(make_inputs(1, 8, 32, [(16, 16), (8, 8), (4, 4)], 64, 4), dtype, "loc32")
    g = torch.randn(1, 64, 256, generator=torch.Generator().manual_seed(3)).to(dtype)
    native = _forward_backward(inputs, "native", g)
    ref = _forward_backward(inputs, "pytorch", g)
    for name, a, r in zip(("output", "grad value", "grad loc", "grad weights"), native, ref):
        assert a.dtype == r.dtype, name
        _assert_rounding_close(a, r.double(), dtype, f"native vs pytorch {name}", factor=2)


@pytest.mark.parametrize("dtype", LOWP, ids=str)
def test_lowp_within_documented_tolerance_of_float32(native_cpu, make_inputs, dtype):
    """What a user sees: 16-bit value and weights, float32 locations, vs the float32 op on the
    unrounded inputs."""
    out_tol, grad_tol = VS_FP32[dtype]
    for seed, (N, M, D, shapes, Lq, P) in enumerate(CONFIGS):
        inputs32 = make_inputs(N, M, D, shapes, Lq, P, seed=seed)
        g = torch.randn(N, Lq, M * D, generator=torch.Generator().manual_seed(seed))
        ref = _forward_backward(inputs32, "native", g)
        res = _forward_backward(_cast_inputs(inputs32, dtype, "loc32"), "native", g)
        for name, a, r, tol in zip(("output", "grad value", "grad loc", "grad weights"), res, ref,
                                   (out_tol, grad_tol, grad_tol, grad_tol)):
            rel = float((a.float() - r).abs().max() / r.abs().max())
            assert rel <= tol, f"{name}: max|err| / max|ref| = {rel:.2e} > {tol:.0e} ({dtype})"


_PATH_SCRIPT = r"""
import sys, torch
sys.path.insert(0, sys.argv[2])
from conftest import _make_inputs
import mask2former.layers  # registers torch.ops.mask2former
from test_ms_deform_attn_lowp import CONFIGS, _cast_inputs, _check_lowp_against_fp64
results = {"isa": torch.ops.mask2former.cpu_vector_isa()}
for dtype in (torch.bfloat16, torch.float16):
    for seed, (N, M, D, shapes, Lq, P) in enumerate(CONFIGS):
        inputs = _cast_inputs(_make_inputs(N, M, D, shapes, Lq, P, seed=seed), dtype, "loc32")
        results[(str(dtype), seed)] = _check_lowp_against_fp64(inputs, dtype, "native", seed)
torch.save(results, sys.argv[1])
"""


@pytest.mark.parametrize("capability", ["avx2", "default"])
def test_narrower_cpu_paths(native_cpu, make_inputs, tmp_path, capability):
    """The AVX2 and the scalar paths (selected through ATEN_CPU_CAPABILITY in a subprocess)
    meet the same bounds against float64, and agree with this process's path within twice
    them (each may round to the other side)."""
    here_isa = ops.cpu_vector_isa()
    assert here_isa in ("avx512", "avx2", "none")
    out = tmp_path / "results.pt"
    env = dict(os.environ, ATEN_CPU_CAPABILITY=capability)
    r = subprocess.run([sys.executable, "-c", _PATH_SCRIPT, str(out),
                        os.path.dirname(os.path.abspath(__file__))],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    results = torch.load(out)
    want = "none" if capability == "default" or here_isa == "none" else "avx2"
    assert results["isa"] == want, (results["isa"], want, here_isa)
    for dtype in LOWP:
        for seed, (N, M, D, shapes, Lq, P) in enumerate(CONFIGS):
            inputs = _cast_inputs(make_inputs(N, M, D, shapes, Lq, P, seed=seed), dtype, "loc32")
            g = torch.randn(N, Lq, M * D, generator=torch.Generator().manual_seed(seed))
            here = _forward_backward(inputs, "native", g.to(dtype))
            for name, a, b in zip(("output", "grad value", "grad loc", "grad weights"),
                                  results[(str(dtype), seed)], here):
                _assert_rounding_close(a, b.double(), dtype, f"{capability} vs {here_isa} {name}",
                                       factor=2)


# ---------------------------------------------------------------- dtype contract
@pytest.mark.parametrize("backend", ["native", "pytorch"])
def test_mixed_dtypes_rejected_with_clear_error(native_cpu, make_inputs, backend):
    v, ss, lsi, loc, w = make_inputs(1, 2, 4, [(4, 5)], 3, 2)
    bad = {
        "sampling_locations": [(v.bfloat16(), loc.double(), w.bfloat16()),
                               (v.bfloat16(), loc.half(), w.bfloat16()),
                               (v, loc.bfloat16(), w)],
        "attention_weights": [(v.half(), loc, w.bfloat16()), (v, loc, w.bfloat16()),
                              (v.double(), loc.double(), w)],
    }
    for name, cases in bad.items():
        for value, l_, a in cases:
            with pytest.raises(ValueError, match=name):
                ms_deform_attn(value, ss, lsi, l_, a, backend=backend)
            if backend == "native":
                with pytest.raises(RuntimeError, match=f"{name} dtype"):
                    ops.ms_deform_attn_forward(value, ss, lsi, l_, a)


# ---------------------------------------------------------------- autocast
def _autocast_inputs(make_inputs):
    return make_inputs(2, 4, 8, [(7, 9), (4, 5)], 10, 3, requires_grad=True)


@pytest.mark.parametrize("backend", ["native", "pytorch"])
@pytest.mark.parametrize("dtype", LOWP, ids=str)
def test_autocast_cpu_runs_the_16bit_op(native_cpu, make_inputs, backend, dtype):
    """Under autocast the op gets value in the autocast dtype and float32 locations/weights,
    returns the autocast dtype, and the gradients reach the float32 leaves."""
    value, ss, lsi, loc, w = _autocast_inputs(make_inputs)
    with torch.autocast("cpu", dtype=dtype):
        out = ms_deform_attn(value, ss, lsi, loc, w, backend=backend)
    assert out.dtype == dtype
    explicit = ms_deform_attn(value.to(dtype), ss, lsi, loc, w, backend=backend)
    torch.testing.assert_close(out, explicit, rtol=0, atol=0)
    grads = torch.autograd.grad(out.float().square().sum(), (value, loc, w))
    grads_explicit = torch.autograd.grad(explicit.float().square().sum(), (value, loc, w))
    for a, b in zip(grads, grads_explicit):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_autocast_cpu_kernel_of_the_operator(native_cpu, make_inputs):
    """The C++ AutocastCPU kernel (direct torch.ops calls, compiled graphs): value to bfloat16,
    float16 weights to float32 (a dtype the kernel cannot mix with bfloat16), float64 untouched."""
    value, ss, lsi, loc, w = make_inputs(2, 4, 8, [(7, 9), (4, 5)], 10, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = ops.ms_deform_attn_forward(value, ss, lsi, loc, w.half())
        out64 = ops.ms_deform_attn_forward(value.double(), ss, lsi, loc.double(), w.double())
        out_py = ms_deform_attn(value, ss, lsi, loc, w.half(), backend="pytorch")
    assert out.dtype == torch.bfloat16 and out64.dtype == torch.float64
    expected = ops.ms_deform_attn_forward(value.bfloat16(), ss, lsi, loc, w.half().float())
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    torch.testing.assert_close(out64, ops.ms_deform_attn_forward(
        value.double(), ss, lsi, loc.double(), w.double()), rtol=0, atol=0)
    assert out_py.dtype == torch.bfloat16  # the Python policy is the same
    _assert_rounding_close(out, out_py.double(), torch.bfloat16, "autocast native vs pytorch",
                           factor=2)


@pytest.mark.parametrize("backend", ["native", "pytorch"])
def test_module_under_autocast_passes_16bit_value(native_cpu, backend, monkeypatch):
    torch.manual_seed(0)
    shapes, lsi = [(6, 7), (3, 4)], torch.tensor([0, 42])
    m = MSDeformAttn(d_model=32, n_levels=2, n_heads=4, n_points=3, backend=backend)
    with torch.no_grad():  # generic (non-integer) sampling offsets instead of the init pattern
        m.sampling_offsets.weight.normal_(std=0.3)
        m.attention_weights.weight.normal_(std=0.3)
    x, refpts = torch.randn(2, 54, 32), torch.rand(2, 54, 2, 2)
    seen = []
    real = ms_deform_attn_module.ms_deform_attn

    def spy(value, ss, lsi_, loc, w, backend):
        seen.append((value.dtype, loc.dtype, w.dtype))
        return real(value, ss, lsi_, loc, w, backend=backend)

    monkeypatch.setattr(ms_deform_attn_module, "ms_deform_attn", spy)
    out32 = m(x, refpts, x, shapes, lsi)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out16 = m(x, refpts, x, shapes, lsi)
    assert seen[0] == (torch.float32,) * 3
    # value from a bf16 linear, locations float32 (from float32 reference points), weights
    # bf16 (softmax of a bf16 linear): the native bf16 kernel, no upcast to float32
    assert seen[1] == (torch.bfloat16, torch.float32, torch.bfloat16), seen[1]
    assert out16.dtype == torch.bfloat16
    rel = float((out16.float() - out32).abs().max() / out32.abs().max())
    assert rel < 3e-2, rel  # bf16 linears + op vs float32


# ---------------------------------------------------------------- tracing
def test_fake_tensors_mixed_dtypes(native_cpu, make_inputs):
    from torch._subclasses.fake_tensor import FakeTensorMode

    value, ss, lsi, loc, w = make_inputs(2, 3, 4, [(4, 5), (2, 3)], 6, 2)
    inputs = (value.bfloat16(), ss, lsi, loc, w.bfloat16())
    with FakeTensorMode() as mode:
        fake = [mode.from_tensor(t) for t in inputs]
        out = ops.ms_deform_attn_forward(*fake)
        grads = ops.ms_deform_attn_backward(*fake, torch.empty(2, 6, 12, dtype=torch.bfloat16))
    assert out.shape == (2, 6, 12) and out.dtype == torch.bfloat16
    assert [g.dtype for g in grads] == [torch.bfloat16, torch.float32, torch.bfloat16]


def test_torch_compile_bf16_and_autocast(native_cpu, make_inputs):
    """fullgraph torch.compile (aot_eager) of forward + backward: bf16 value with float32
    locations, and the op under autocast inside the compiled function."""
    value, ss, lsi, loc, w = make_inputs(2, 3, 8, [(5, 6), (3, 2)], 7, 2, requires_grad=True)

    def fn(v, l_, a):
        out = ms_deform_attn(v.bfloat16(), ss, lsi, l_, a.softmax(-1).bfloat16(),
                             backend="native")
        return out.float().square().sum()

    def fn_autocast(v, l_, a):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = ms_deform_attn(v, ss, lsi, l_, a.softmax(-1), backend="native")
        assert out.dtype == torch.bfloat16
        return out.float().square().sum()

    for f in (fn, fn_autocast):
        compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
        loss_c = compiled(value, loc, w)
        grads_c = torch.autograd.grad(loss_c, (value, loc, w))
        loss_e = f(value, loc, w)
        grads_e = torch.autograd.grad(loss_e, (value, loc, w))
        torch.testing.assert_close(loss_c, loss_e)
        for a, b in zip(grads_c, grads_e):
            torch.testing.assert_close(a, b)
