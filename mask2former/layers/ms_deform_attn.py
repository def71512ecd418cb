"""Multi-scale deformable attention (Deformable DETR): functional op and module.

The functional op dispatches to the compiled kernels of `mask2former._C` (C++ on CPU, CUDA on
GPU) when they were built for the input's device, otherwise to the pure-PyTorch reference
based on `grid_sample`. The choice is explicit, never by catching a kernel's exception.

The compiled operators are `torch.ops.mask2former.ms_deform_attn_forward` /
`ms_deform_attn_backward` (registered with TORCH_LIBRARY; their autograd formula is a C++
Autograd kernel, their autocast policy AutocastCPU/AutocastCUDA kernels). Fake implementations
registered here let `torch.compile` and `torch.export` trace them. Set MASK2FORMER_DISABLE_EXT=1
to ignore the compiled extension (pure PyTorch).

Dtypes (the same on every backend: native CPU, native CUDA, pytorch):

    value (and output)   sampling_locations       attention_weights
    float64              float64                  float64
    float32              float32                  float32
    bfloat16 / float16   value's dtype or float32 value's dtype or float32

Other combinations raise a ValueError naming the argument (cast them yourself). Arithmetic is in
float32 (float64 for float64): 16-bit values and weights are read as they are, the bilinear sums
accumulate in float32 and the output is rounded once to value's dtype; the backward accumulates
the value gradient in a float32 buffer and returns each gradient in its input's dtype. float32
sampling locations are recommended with 16-bit values: a bfloat16 location in [0.5, 1] carries
an error of up to 2**-9, i.e. 1/8 pixel on a 64-pixel level and 1/4 on a 128-pixel one. The
native CPU kernels for 16-bit values are vectorised with AVX-512 or AVX2 (whichever torch uses on
the machine; `torch.ops.mask2former.cpu_vector_isa()` says which), else scalar; the pytorch
backend computes 16-bit inputs in float32 and rounds the output.

Autocast (`torch.autocast("cpu"|"cuda", dtype=T)`, T = bfloat16 or float16): the op runs in T
instead of whatever dtype it is handed: value is cast to T, sampling_locations and
attention_weights are kept when they are float32 or T and cast to float32 otherwise; the output
has dtype T. A float64 value is left alone (as autocast does). The native op applies this in its
Autocast kernels (so direct `torch.ops` calls and compiled graphs get it too), `ms_deform_attn`
applies the same rule in Python for every backend (under torch.compile it leaves it to the
Autocast kernel: dynamo cannot read the autocast dtype in torch 2.3).

Precision of 16-bit inputs (tests/layers/test_ms_deform_attn_lowp.py checks these bounds):
  * against the float64 computation on the same (already 16-bit) inputs, every element of the
    output and of the value gradient is within two units of rounding of its dtype plus the
    float32 summation error: |err| <= 2**-7 |ref| + 1e-5 max|ref| (bfloat16; 2**-10 for
    float16); float32 location / weight gradients within 1e-4 max|ref|;
  * against the float32 op on the unrounded float32 inputs (value and weights rounded to the
    16-bit dtype, locations float32): max|err| <= 1e-2 max|ref| for the bfloat16 output and
    2e-2 for its gradients (float16: 2e-3 / 4e-3); measured on the test inputs: 3.9e-3 / 5.1e-3
    (float16: 4.9e-4 / 9.1e-4). With bfloat16 locations the location error dominates (up to
    0.12 of max|out| on the same inputs, whose points sit on borders and pixel edges).
"""
import importlib.util
import math
import os
import warnings

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ms_deform_attn",
    "ms_deform_attn_pytorch",
    "available_backends",
    "extension_loaded",
    "MSDeformAttn",
]

_BUILD_HINT = (
    "build it with `make build` or `pip install --no-build-isolation -e .` in the project root "
    "(CUDA kernels are compiled when FORCE_CUDA=1, or when a GPU is visible and CUDA_HOME is set)"
)


def _load_extension():
    """Returns (loaded, compiled_with_cuda, reason_if_not_loaded)."""
    if os.environ.get("MASK2FORMER_DISABLE_EXT", "0") == "1":
        return False, False, "disabled by MASK2FORMER_DISABLE_EXT=1"
    if importlib.util.find_spec("mask2former._C") is None:
        return False, False, "mask2former._C is not built"
    try:
        from mask2former import _C  # noqa: F401  (registers torch.ops.mask2former.*)
    except ImportError as e:  # built, but e.g. against another torch version
        warnings.warn(
            f"mask2former._C exists but cannot be loaded ({e}); multi-scale deformable attention "
            f"falls back to its PyTorch implementation. Rebuild it: {_BUILD_HINT}.",
            stacklevel=3,
        )
        return False, False, f"mask2former._C failed to load: {e}"
    return True, bool(torch.ops.mask2former.compiled_with_cuda()), ""


_HAS_EXT, _HAS_CUDA_KERNELS, _EXT_REASON = _load_extension()


_LOW_PRECISION = (torch.bfloat16, torch.float16)


def _register_fake(qualname):
    """`torch.library.register_fake` (torch >= 2.4) or `impl_abstract` (torch 2.3)."""
    if hasattr(torch.library, "register_fake"):
        return torch.library.register_fake(qualname)
    return torch.library.impl_abstract(qualname)


if _HAS_EXT:

    @_register_fake("mask2former::ms_deform_attn_forward")
    def _forward_fake(value, spatial_shapes, level_start_index, sampling_locations,
                      attention_weights):
        for name, t in (("spatial_shapes", spatial_shapes), ("level_start_index", level_start_index),
                        ("sampling_locations", sampling_locations),
                        ("attention_weights", attention_weights)):
            torch._check(t.device == value.device,
                         lambda: f"ms_deform_attn_forward: {name} is on {t.device} but value is "
                                 f"on {value.device}")
        torch._check(value.dim() == 4 and sampling_locations.dim() == 6,
                     lambda: "ms_deform_attn_forward: value must be [N, S, M, D] and "
                             "sampling_locations [N, Lq, M, L, P, 2]")
        N, _, M, D = value.shape
        return value.new_empty((N, sampling_locations.shape[1], M * D))

    @_register_fake("mask2former::ms_deform_attn_backward")
    def _backward_fake(value, spatial_shapes, level_start_index, sampling_locations,
                       attention_weights, grad_output):
        return (torch.empty_like(value), torch.empty_like(sampling_locations),
                torch.empty_like(attention_weights))


def _autocast_enabled(device_type):
    """Whether `torch.autocast` is enabled for `device_type` ("cpu" or "cuda")."""
    if device_type not in ("cpu", "cuda"):
        return False
    if hasattr(torch, "get_autocast_dtype"):  # torch >= 2.4
        return torch.is_autocast_enabled(device_type)
    return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


def _autocast_dtype(device_type):
    """The autocast dtype of `device_type` (only meaningful when autocast is enabled)."""
    if hasattr(torch, "get_autocast_dtype"):  # torch >= 2.4
        return torch.get_autocast_dtype(device_type)
    if device_type == "cpu":
        return torch.get_autocast_cpu_dtype()
    return torch.get_autocast_gpu_dtype()


def _apply_autocast(value, sampling_locations, attention_weights):
    """The op's autocast policy (see the module docstring; the C++ Autocast kernels apply the
    same). Returns (value, sampling_locations, attention_weights, autocast_dtype or None)."""
    if (not isinstance(value, torch.Tensor) or not value.is_floating_point()
            or value.dtype == torch.float64 or not _autocast_enabled(value.device.type)):
        return value, sampling_locations, attention_weights, None
    dtype = _autocast_dtype(value.device.type)

    def param(t):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            return t  # rejected by _check_inputs
        return t if t.dtype in (torch.float32, dtype) else t.float()

    return value.to(dtype), param(sampling_locations), param(attention_weights), dtype


def extension_loaded() -> bool:
    """Whether the compiled extension ``mask2former._C`` is loaded (the op's kernels are then in
    ``torch.ops.mask2former``)."""
    return _HAS_EXT


def available_backends():
    """Backends usable here: "pytorch" always, plus "native-cpu"/"native-cuda" when built."""
    out = ["pytorch"]
    if _HAS_EXT:
        out.append("native-cpu")
        if _HAS_CUDA_KERNELS:
            out.append("native-cuda")
    return out


def _native_available(device):
    if not _HAS_EXT:
        return False
    if device.type == "cpu":
        return True
    return device.type == "cuda" and _HAS_CUDA_KERNELS


def _is_tracing(t):
    """True under torch.compile/export/jit tracing or with fake/meta tensors (no data access)."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return True
    if t.device.type == "meta":
        return True
    from torch._subclasses.fake_tensor import is_fake

    return is_fake(t)


def _shape_pairs(spatial_shapes):
    """`spatial_shapes` as a list of (H, W) Python ints, or None when it is a tensor.

    Raises ValueError when it is neither a tensor nor a sequence of (H, W) int pairs.
    """
    if isinstance(spatial_shapes, torch.Tensor):
        return None
    if isinstance(spatial_shapes, (list, tuple)) and all(
        isinstance(hw, (list, tuple)) and len(hw) == 2
        and all(isinstance(v, (int, torch.SymInt)) and not isinstance(v, bool) for v in hw)
        for hw in spatial_shapes
    ):
        return [(h, w) for h, w in spatial_shapes]
    raise ValueError(
        f"ms_deform_attn: spatial_shapes must be an int64 tensor [L, 2] or a list of L (H, W) "
        f"pairs of Python ints, got {type(spatial_shapes).__name__}: {spatial_shapes!r:.200}"
    )


def _check_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights,
                  check_dtypes=True):
    """Raises ValueError naming the offending argument (see `ms_deform_attn` for shapes).

    Values inside tensors (spatial_shapes, level_start_index) are read only outside tracing
    (torch.compile/export/jit, fake tensors); with spatial_shapes given as Python ints,
    level_start_index is read only when it is on the CPU, so a CUDA call never synchronises.
    """
    pairs = _shape_pairs(spatial_shapes)
    args = {
        "value": value,
        "spatial_shapes": spatial_shapes,
        "level_start_index": level_start_index,
        "sampling_locations": sampling_locations,
        "attention_weights": attention_weights,
    }
    # the tensor arguments (spatial_shapes is one unless given as Python ints)
    tensors = {name: t for name, t in args.items() if name != "spatial_shapes" or pairs is None}
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"ms_deform_attn: {name} must be a torch.Tensor, got {type(t).__name__}")
    expected = {
        "value": (4, "[N, S, M, D]"),
        "spatial_shapes": (2, "[L, 2]"),
        "level_start_index": (1, "[L]"),
        "sampling_locations": (6, "[N, Lq, M, L, P, 2]"),
        "attention_weights": (5, "[N, Lq, M, L, P]"),
    }
    for name, (rank, shape) in expected.items():
        if name in tensors and args[name].dim() != rank:
            raise ValueError(
                f"ms_deform_attn: {name} must have shape {shape}, got {tuple(args[name].shape)}"
            )
    N, S, M, D = value.shape
    if pairs is None:
        L = spatial_shapes.shape[0]
        if spatial_shapes.shape[1] != 2:
            raise ValueError(f"ms_deform_attn: spatial_shapes must have shape [L, 2] (H, W), "
                             f"got {tuple(spatial_shapes.shape)}")
    else:
        L = len(pairs)
    if level_start_index.shape[0] != L:
        raise ValueError(f"ms_deform_attn: level_start_index has {level_start_index.shape[0]} "
                         f"entries but spatial_shapes has L={L} levels")
    ls = sampling_locations.shape
    if ls[0] != N or ls[2] != M or ls[3] != L or ls[5] != 2:
        raise ValueError(
            f"ms_deform_attn: sampling_locations must have shape [N, Lq, M, L, P, 2] with "
            f"N={N}, M={M} (from value {tuple(value.shape)}) and L={L} (from spatial_shapes), "
            f"got {tuple(ls)}"
        )
    if attention_weights.shape != ls[:5]:
        raise ValueError(
            f"ms_deform_attn: attention_weights must have shape [N, Lq, M, L, P] = {tuple(ls[:5])} "
            f"(sampling_locations without its last dim), got {tuple(attention_weights.shape)}"
        )
    if not value.is_floating_point():
        raise ValueError(f"ms_deform_attn: value must be a floating tensor, got {value.dtype}")
    for name in ("sampling_locations", "attention_weights"):
        if not check_dtypes:
            break
        dtype = args[name].dtype
        if dtype == value.dtype or (value.dtype in _LOW_PRECISION and dtype == torch.float32):
            continue
        if value.dtype in _LOW_PRECISION:
            raise ValueError(f"ms_deform_attn: {name} has dtype {dtype}, which is not allowed "
                             f"with value {value.dtype}; use {value.dtype} or torch.float32 "
                             f"(float32 sampling_locations keep sub-pixel precision)")
        raise ValueError(f"ms_deform_attn: {name} has dtype {dtype} but value has "
                         f"{value.dtype}; cast it to {value.dtype} (only a bfloat16/float16 "
                         f"value also takes float32 {name})")
    for name in ("spatial_shapes", "level_start_index"):
        if name in tensors and tensors[name].dtype != torch.int64:
            raise ValueError(f"ms_deform_attn: {name} must be int64 (torch.long), "
                             f"got {tensors[name].dtype}")
    for name, t in tensors.items():
        if t.device != value.device:
            raise ValueError(f"ms_deform_attn: {name} is on {t.device} but value is on "
                             f"{value.device}; move all inputs to one device")
    if pairs is None:
        if _is_tracing(spatial_shapes):
            return
        pairs = spatial_shapes.tolist()
    elif _is_tracing(level_start_index) or level_start_index.device.type != "cpu":
        level_start_index = None  # reading it would break the graph or synchronise the device
    sizes = [h * w for h, w in pairs]
    if any(h < 0 or w < 0 for h, w in pairs):
        raise ValueError(f"ms_deform_attn: spatial_shapes must be non-negative, got {pairs}")
    if sum(sizes) != S:
        raise ValueError(f"ms_deform_attn: spatial_shapes {pairs} sum to {sum(sizes)} "
                         f"positions but value has S={S} (value.shape[1])")
    if level_start_index is not None:
        starts = [sum(sizes[:i]) for i in range(L)]
        if level_start_index.tolist() != starts:
            raise ValueError(f"ms_deform_attn: level_start_index must be {starts} (cumulative "
                             f"sizes of spatial_shapes), got {level_start_index.tolist()}")


def ms_deform_attn_pytorch(value, spatial_shapes, level_start_index, sampling_locations,
                           attention_weights):
    """Reference implementation with `grid_sample` (align_corners=False, zero padding).

    Args:
        value: [N, S, M, D]
        spatial_shapes: [L, 2] int64 (H, W) per level, sum(H*W) == S, or the same as a list of
            L (H, W) Python ints. A tensor is read back to the host (a graph break under
            torch.compile, a synchronisation on CUDA); Python ints avoid both.
        level_start_index: [L] (unused by the reference; kept for a uniform signature)
        sampling_locations: [N, Lq, M, L, P, 2] normalised (x, y); outside [0, 1] samples zeros
        attention_weights: [N, Lq, M, L, P]
    Returns:
        [N, Lq, M*D] in value's dtype. Computed in the widest dtype of the three inputs, at
        least float32: a bfloat16/float16 value is computed in float32 (as the native kernels
        do) and the output rounded to its dtype.
    """
    if (value.dtype in _LOW_PRECISION
            or not value.dtype == sampling_locations.dtype == attention_weights.dtype):
        dtype = torch.promote_types(torch.promote_types(value.dtype, sampling_locations.dtype),
                                    torch.promote_types(attention_weights.dtype, torch.float32))
        out = ms_deform_attn_pytorch(value.to(dtype), spatial_shapes, level_start_index,
                                     sampling_locations.to(dtype), attention_weights.to(dtype))
        return out.to(value.dtype)
    N, S, M, D = value.shape
    _, Lq, _, L, P, _ = sampling_locations.shape
    pairs = _shape_pairs(spatial_shapes)
    if pairs is None:
        pairs = [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
    value_list = value.split([h * w for h, w in pairs], dim=1)
    grids = 2 * sampling_locations - 1
    sampled = []
    for lvl, (h, w) in enumerate(pairs):
        v = value_list[lvl].flatten(2).transpose(1, 2).reshape(N * M, D, h, w)
        g = grids[:, :, :, lvl].transpose(1, 2).flatten(0, 1)  # [N*M, Lq, P, 2]
        sampled.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False))
    attn = attention_weights.transpose(1, 2).reshape(N * M, 1, Lq, L * P)
    out = (torch.stack(sampled, dim=-2).flatten(-2) * attn).sum(-1).view(N, M * D, Lq)
    return out.transpose(1, 2).contiguous()


def ms_deform_attn(value, spatial_shapes, level_start_index, sampling_locations,
                   attention_weights, backend="auto"):
    """Multi-scale deformable attention.

    Args:
        value: [N, S, M, D] floating: float32, float64, bfloat16 or float16 (dtype rules,
            autocast and the precision of 16-bit inputs: see the module docstring)
        spatial_shapes: [L, 2] int64 (H, W) per level, sum(H*W) == S; or the same as a list
            of L (H, W) Python ints, which the "pytorch" backend uses without reading a
            tensor back (no graph break under torch.compile, no CUDA synchronisation)
        level_start_index: [L] int64, exclusive cumulative sum of H*W
        sampling_locations: [N, Lq, M, L, P, 2] normalised (x, y), value's dtype (or float32
            with a 16-bit value); (0, 0) is the top-left corner of the top-left pixel; points
            outside [0, 1] sample zeros
        attention_weights: [N, Lq, M, L, P], value's dtype (or float32 with a 16-bit value)
        backend: "auto" (native when `mask2former._C` was built for value's device, else
            pytorch), "native" (the compiled kernels; RuntimeError when not built for the
            device) or "pytorch" (the `grid_sample` reference).
    Returns:
        [N, Lq, M*D], value's dtype (the autocast dtype under torch.autocast)

    All inputs must be on one device. The native path makes inputs contiguous (copying
    non-contiguous ones); calling torch.ops.mask2former.* directly requires contiguous inputs.
    """
    if backend not in ("auto", "native", "pytorch"):
        raise ValueError(f"backend must be 'auto', 'native' or 'pytorch', got {backend!r}")
    compiling_autocast = (isinstance(value, torch.Tensor) and torch.compiler.is_compiling()
                          and _autocast_enabled(value.device.type))
    if compiling_autocast:
        # torch.compile (torch 2.3) cannot read the autocast dtype: the native op's Autocast
        # kernel applies the policy while the graph is traced (and checks the dtypes); the
        # pytorch backend computes in the widest dtype of its inputs (at least float32).
        autocast_dtype = None
    else:
        value, sampling_locations, attention_weights, autocast_dtype = _apply_autocast(
            value, sampling_locations, attention_weights)
    _check_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights,
                  check_dtypes=not compiling_autocast)
    native = _native_available(value.device)
    if backend == "native" and not native:
        why = _EXT_REASON if not _HAS_EXT else f"it was built without {value.device.type} kernels"
        raise RuntimeError(
            f"ms_deform_attn(backend='native') needs mask2former._C with {value.device.type} "
            f"kernels, but {why}; {_BUILD_HINT}. Available backends: {available_backends()}"
        )
    if backend == "pytorch" or not native:
        if autocast_dtype is None:
            return ms_deform_attn_pytorch(value, spatial_shapes, level_start_index,
                                          sampling_locations, attention_weights)
        with torch.autocast(value.device.type, enabled=False):  # dtypes are final already
            return ms_deform_attn_pytorch(value, spatial_shapes, level_start_index,
                                          sampling_locations, attention_weights)
    if not isinstance(spatial_shapes, torch.Tensor):
        spatial_shapes = torch.tensor(spatial_shapes, dtype=torch.long, device=value.device)
    return torch.ops.mask2former.ms_deform_attn_forward(
        value.contiguous(), spatial_shapes.contiguous(), level_start_index.contiguous(),
        sampling_locations.contiguous(), attention_weights.contiguous())


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention module (parameter names of Deformable DETR).

    Args:
        d_model: channels C; n_levels: L; n_heads: M (C % M == 0); n_points: P per level and head
        backend: passed to `ms_deform_attn` ("auto", "native" or "pytorch")

    Dtypes: a float32/float64 module samples in the widest dtype of value, locations and weights.
    When value is bfloat16/float16 (under autocast, or a 16-bit module) the op samples it in that
    dtype (the native 16-bit kernels), with the locations in float32 when they are (they are
    whenever the reference points are: the pixel decoder makes them float32) and the weights as
    they are (16-bit or float32); the output has value's dtype.
    """

    def __init__(self, d_model=256, n_levels=4, n_heads=8, n_points=4, backend="auto"):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.d_model, self.n_levels, self.n_heads, self.n_points = d_model, n_levels, n_heads, n_points
        self.backend = backend
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self._reset_parameters()

    def _reset_parameters(self):
        nn.init.constant_(self.sampling_offsets.weight, 0.0)
        thetas = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(self.n_heads, 1, 1, 2)
        grid = grid.repeat(1, self.n_levels, self.n_points, 1)
        grid = grid * torch.arange(1, self.n_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.view(-1))
        nn.init.constant_(self.attention_weights.weight, 0.0)
        nn.init.constant_(self.attention_weights.bias, 0.0)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.constant_(self.value_proj.bias, 0.0)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.constant_(self.output_proj.bias, 0.0)

    def forward(self, query, reference_points, input_flatten, input_spatial_shapes,
                input_level_start_index, input_padding_mask=None):
        """
        Args:
            query: [N, Lq, C]
            reference_points: [N, Lq, L, 2] normalised (x, y)
            input_flatten: [N, S, C]
            input_spatial_shapes: [L, 2] int64 (H, W), or a list of L (H, W) Python ints
                (preferred: traces into one graph under torch.compile, see `ms_deform_attn`)
            input_level_start_index: [L]
            input_padding_mask: [N, S] bool, True for padding (optional)
        Returns:
            [N, Lq, C]
        """
        N, Lq, _ = query.shape
        S = input_flatten.shape[1]
        value = self.value_proj(input_flatten)
        if input_padding_mask is not None:
            value = value.masked_fill(input_padding_mask[..., None], 0.0)
        value = value.view(N, S, self.n_heads, self.d_model // self.n_heads)
        offsets = self.sampling_offsets(query).view(N, Lq, self.n_heads, self.n_levels, self.n_points, 2)
        weights = self.attention_weights(query).view(N, Lq, self.n_heads, self.n_levels * self.n_points)
        weights = weights.softmax(-1).view(N, Lq, self.n_heads, self.n_levels, self.n_points)
        if isinstance(input_spatial_shapes, torch.Tensor):
            normalizer = torch.stack([input_spatial_shapes[..., 1], input_spatial_shapes[..., 0]], -1)
        else:  # (W, H) per level
            normalizer = torch.tensor([(w, h) for h, w in input_spatial_shapes],
                                      dtype=torch.long, device=offsets.device)
        locations = reference_points[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
        if value.dtype in _LOW_PRECISION:
            # Under autocast (or in a 16-bit model) value is bfloat16/float16: the op samples it
            # natively, with locations/weights in float32 unless they already have value's
            # dtype (locations computed from float32 reference points stay float32).
            def param(t):
                return t if t.dtype in (value.dtype, torch.float32) else t.float()

            out = ms_deform_attn(value, input_spatial_shapes, input_level_start_index,
                                 param(locations), param(weights), backend=self.backend)
        else:
            # float32/float64: sample in the widest of the three dtypes
            dtype = torch.promote_types(torch.promote_types(value.dtype, locations.dtype),
                                        weights.dtype)
            out = ms_deform_attn(value.to(dtype), input_spatial_shapes, input_level_start_index,
                                 locations.to(dtype), weights.to(dtype), backend=self.backend)
        return self.output_proj(out.to(value.dtype))
