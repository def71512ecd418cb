"""Helpers of the benchmark scripts (`tools/benchmark_inference.py`, `tools/benchmark_train.py`):
the machine's matrix-product rate, and torch.profiler events sorted into op categories."""

import time
from typing import Dict, Iterable, Tuple

import torch

__all__ = ["matmul_rate", "OP_CATEGORIES", "op_category", "time_and_flops_by_category"]


def matmul_rate(dtype=torch.float32, n: int = 2048, repeats: int = 5) -> float:
    """This machine's measured rate of a large matrix product (FLOP/s, the threads in use)."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * n**3 * repeats / (time.perf_counter() - start)


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
            flops["convolution forward" if "conv" in event.name else category] += event.flops
    return seconds, flops
