"""Helpers of the benchmark scripts (`tools/benchmark_inference.py`, `tools/benchmark_train.py`):
the machine's matrix-product rate, and torch.profiler events sorted into op categories."""

import time
from typing import Dict, Iterable, Sequence, Tuple

import torch

__all__ = [
    "matmul_rate",
    "print_rate_table",
    "OP_CATEGORIES",
    "op_category",
    "time_and_flops_by_category",
]


def matmul_rate(dtype=torch.float32, n: int = 2048, repeats: int = 5) -> float:
    """This machine's measured rate of a large matrix product (FLOP/s, the threads in use)."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def print_rate_table(first_column: str, rows: Sequence[Tuple[str, float, float]],
                     total_seconds: float, rate: float, estimated: Sequence[str] = ()) -> None:
    """Print one line per ``(name, seconds, FLOPs)`` of ``rows``: ms, share of ``total_seconds``,
    GFLOP (marked ``*`` for the names in ``estimated``), GFLOP/s and its share of ``rate``
    (FLOP/s, e.g. :func:`matmul_rate`)."""
    width = max([len(first_column)] + [len(name) for name, _, _ in rows])
    header = (f"{first_column:<{width}} {'ms':>8} {'share':>6} {'GFLOP':>8} {'GFLOP/s':>8} "
              f"{'of matmul':>9}")
    print(header)
    print("-" * len(header))
    for name, sec, flops in rows:
        gflop = flops / 1e9
        speed = gflop / sec if sec > 0 else 0.0
        mark = "*" if name in estimated else " "
        print(f"{name:<{width}} {sec * 1e3:8.1f} {100 * sec / total_seconds:5.1f}% "
              f"{gflop:7.2f}{mark} {speed:8.1f} {100 * speed * 1e9 / rate:8.1f}%")


OP_CATEGORIES = (
    "convolution forward",
    "convolution backward",
    "matrix products",
    "deformable attention op",
    "normalization",
    "data loading",
    "other",
)


MATRIX_PRODUCTS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def op_category(name: str) -> str:
    """The category of a profiler event named ``name`` (an aten op, a custom op or a range)."""
    if name.startswith("mask2former::"):
        return "deformable attention op"
    if name.startswith("enumerate(DataLoader)"):
        return "data loading"
    if "conv" in name and "backward" in name:
        return "convolution backward"
    if "conv" in name:
        return "convolution forward"
    if name in MATRIX_PRODUCTS or "scaled_dot_product" in name:
        return "matrix products"
    if "norm" in name and "vector_norm" not in name:
        return "normalization"
    return "other"


def time_and_flops_by_category(events: Iterable) -> Tuple[Dict[str, float], Dict[str, float]]:
    """({category: self CPU seconds}, {category: FLOPs}) of torch.profiler ``events``
    (``prof.events()``). Self times add up to the profiled time of the thread that ran the ops
    (intra-op threads work inside them). FLOPs are torch.profiler's counts (``with_flops``):
    convolutions and matrix products of the forward pass and the matrix products of the backward
    pass; nothing for convolution backward (:func:`op_category` puts its time apart)."""
    seconds = {c: 0.0 for c in OP_CATEGORIES}
    flops = {c: 0.0 for c in OP_CATEGORIES}
    for event in events:
        category = op_category(event.name)
        seconds[category] += event.self_cpu_time_total / 1e6
        if event.flops:
            flops[category] += event.flops
    return seconds, flops
