"""Shared helpers for the op tests: random multi-scale deformable attention inputs."""
import pytest
import torch

from mask2former.layers import available_backends


def _make_inputs(N, M, D, shapes, Lq, P, dtype=torch.float32, seed=0, special=True,
                requires_grad=False):
    """Random inputs in Deformable-DETR layout.

    Locations are uniform in [-0.2, 1.2]; with `special`, some are set exactly to 0, 1 and to
    values outside [0, 1] (including whole points far outside), so borders and zero padding are
    exercised.
    Returns (value, spatial_shapes, level_start_index, sampling_locations, attention_weights).
    """
    g = torch.Generator().manual_seed(seed)
    spatial_shapes = torch.tensor(shapes, dtype=torch.int64)
    sizes = spatial_shapes.prod(1)
    level_start_index = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    S, L = int(sizes.sum()), len(shapes)
    value = torch.randn(N, S, M, D, generator=g, dtype=torch.float64)
    loc = torch.rand(N, Lq, M, L, P, 2, generator=g, dtype=torch.float64) * 1.4 - 0.2
    if special:
        flat = loc.view(-1)
        n = flat.numel()
        pick = torch.randperm(n, generator=g)
        k = max(1, n // 10)
        flat[pick[:k]] = 0.0
        flat[pick[k:2 * k]] = 1.0
        flat[pick[2 * k:3 * k]] = torch.tensor([-0.7, 1.9, -3.0, 5.0], dtype=torch.float64).repeat(
            k // 4 + 1)[:k]
        loc[..., 0, :] = torch.tensor([1.0, 0.0], dtype=torch.float64)  # corner points
    weights = torch.rand(N, Lq, M, L, P, generator=g, dtype=torch.float64)
    tensors = [value.to(dtype), loc.to(dtype), weights.to(dtype)]
    if requires_grad:
        for t in tensors:
            t.requires_grad_()
    return tensors[0], spatial_shapes, level_start_index, tensors[1], tensors[2]


@pytest.fixture
def make_inputs():
    """The input factory `_make_inputs(N, M, D, shapes, Lq, P, dtype, seed, special, requires_grad)`."""
    return _make_inputs


@pytest.fixture
def native_cpu():
    """Fails (not skips) when the compiled CPU kernels are missing: they are part of the build."""
    if "native-cpu" not in available_backends():
        pytest.fail("mask2former._C is not built; run `.venv/bin/python setup.py build_ext "
                    "--inplace` (or `make build`) before the op tests")
