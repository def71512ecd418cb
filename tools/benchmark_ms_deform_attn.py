#!/usr/bin/env python
"""Benchmark multi-scale deformable attention: native kernels vs the grid_sample reference.

Shape of Mask2Former's pixel decoder: N=1, M=8 heads, D=32 channels per head, L=3 levels at
strides 8/16/32 of the input image (ceil), P=4 points, one query per position (Lq = S).
Locations are the pixel centres plus random offsets of a few pixels (as in a trained model),
attention weights a softmax over the L*P points.

For each input size and backend it prints the median time of the forward (under no_grad) and of
forward+backward (all three gradients), the peak memory of each, and native/pytorch ratios
computed from measurements of the same run. Backends are timed alternately in every repeat, so
a load from other processes affects both alike.

Peak memory: on CUDA, torch.cuda.max_memory_allocated above the pre-call allocation. On CPU,
the peak of (bytes allocated - bytes freed) by torch's CPU allocator during the call, replayed
in time order from torch.profiler memory events (profile_memory=True), in a separate untimed
run. Both count tensors created by the call (output, temporaries, saved activations, gradients),
not the inputs.

    python tools/benchmark_ms_deform_attn.py [--device cpu] [--sizes 512x512,800x1333,1024x1024]
        [--repeat 5] [--threads 2]
"""
import argparse
import math
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mask2former.layers import available_backends, ms_deform_attn  # noqa: E402

N, M, D, P = 1, 8, 32, 4
STRIDES = (8, 16, 32)


def make_inputs(height, width, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = torch.tensor([[math.ceil(height / s), math.ceil(width / s)] for s in STRIDES])
    sizes = shapes.prod(1)
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    S, L = int(sizes.sum()), len(STRIDES)
    value = torch.randn(N, S, M, D, generator=g)
    # Reference points: pixel centres of every level position (normalised), as in the encoder.
    refs = []
    for h, w in shapes.tolist():
        ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
        refs.append(torch.stack([xs.flatten(), ys.flatten()], -1))
    ref = torch.cat(refs)[None, :, None, None, None, :]  # [1, S, 1, 1, 1, 2]
    wh = shapes.flip(1).to(torch.float32)[None, None, None, :, None, :]
    offsets = torch.randn(N, S, M, L, P, 2, generator=g) * 2.0 / wh  # ~2 pixels of the level
    loc = (ref + offsets).contiguous()
    weights = torch.randn(N, S, M, L * P, generator=g).softmax(-1).view(N, S, M, L, P)
    to = dict(device=device)
    return value.to(**to), shapes.to(**to), starts.to(**to), loc.to(**to), weights.to(**to)


def run_forward(backend, inputs):
    with torch.no_grad():
        return ms_deform_attn(*inputs, backend=backend)


def run_forward_backward(backend, inputs, grad):
    value, shapes, starts, loc, weights = inputs
    leaves = [t.detach().requires_grad_() for t in (value, loc, weights)]
    out = ms_deform_attn(leaves[0], shapes, starts, leaves[1], leaves[2], backend=backend)
    out.backward(grad)
    return out, [t.grad for t in leaves]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device):
    sync(device)
    t0 = time.perf_counter()
    result = fn()
    sync(device)
    elapsed = time.perf_counter() - t0
    del result
    return elapsed


def peak_memory(fn, device):
    """Peak bytes of tensors allocated by fn above the pre-call level (see module docstring)."""
    if device.type == "cuda":
        sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        result = fn()
        sync(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        del result
        return peak
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
        del result
    events, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation:
            events.append((node.start_time_ns, node.extra_fields.alloc_size))
        stack.extend(node.children)
    current = peak = 0
    for _, nbytes in sorted(events, key=lambda e: e[0]):
        current += nbytes
        peak = max(peak, current)
    return peak


def mib(nbytes):
    return f"{nbytes / 2**20:8.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default="512x512,800x1333,1024x1024",
                        help="comma-separated HxW input image sizes")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--check", action="store_true",
                        help="also report the max abs difference of native vs pytorch outputs")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    native_name = f"native-{device.type}"
    if native_name not in available_backends():
        sys.exit(f"{native_name} is not available (backends: {available_backends()}); "
                 "build it with `make build` or `pip install --no-build-isolation -e .`")
    backends = ["native", "pytorch"]

    mem_method = ("torch.cuda.max_memory_allocated" if device.type == "cuda"
                  else "CPU allocator peak from torch.profiler memory events")
    print(f"ms_deform_attn benchmark: device={device}, threads={torch.get_num_threads()}, "
          f"torch {torch.__version__}, N={N} M={M} D={D} L={len(STRIDES)} P={P} Lq=S, "
          f"median of {args.repeat} runs")
    print(f"peak memory = {mem_method}, tensors created by the call (inputs excluded)")
    header = (f"{'input':>10} {'S':>6} {'backend':>8} | {'fwd ms':>9} {'fwd MiB':>8} | "
              f"{'fwd+bwd ms':>10} {'f+b MiB':>8}")
    print(header)
    print("-" * len(header))
    for size in args.sizes.split(","):
        h, w = (int(v) for v in size.lower().split("x"))
        inputs = make_inputs(h, w, device)
        S = inputs[0].shape[1]
        grad = torch.randn(N, S, M * D, generator=torch.Generator().manual_seed(1)).to(device)
        fwd = {b: (lambda b=b: run_forward(b, inputs)) for b in backends}
        fwdbwd = {b: (lambda b=b: run_forward_backward(b, inputs, grad)) for b in backends}
        for b in backends:  # warm-up
            timed(fwd[b], device)
            timed(fwdbwd[b], device)
        times = {(b, k): [] for b in backends for k in ("fwd", "fb")}
        for _ in range(args.repeat):
            for b in backends:
                times[(b, "fwd")].append(timed(fwd[b], device))
                times[(b, "fb")].append(timed(fwdbwd[b], device))
        res = {}
        for b in backends:
            res[b] = dict(
                fwd=statistics.median(times[(b, "fwd")]) * 1e3,
                fb=statistics.median(times[(b, "fb")]) * 1e3,
                fwd_mem=peak_memory(fwd[b], device),
                fb_mem=peak_memory(fwdbwd[b], device),
            )
            r = res[b]
            print(f"{size:>10} {S:>6} {b:>8} | {r['fwd']:9.1f} {mib(r['fwd_mem'])} | "
                  f"{r['fb']:10.1f} {mib(r['fb_mem'])}")
        n, p = res["native"], res["pytorch"]
        print(f"{size:>10} {S:>6} {'ratio':>8} | {'speed x' + format(p['fwd'] / n['fwd'], '.2f'):>9} "
              f"{n['fwd_mem'] / max(p['fwd_mem'], 1):8.2f} | "
              f"{'speed x' + format(p['fb'] / n['fb'], '.2f'):>10} {n['fb_mem'] / max(p['fb_mem'], 1):8.2f}")
        if args.check:
            diff = (fwd["native"]() - fwd["pytorch"]()).abs().max().item()
            print(f"{'':>10} max |native - pytorch| forward = {diff:.2e}")
    print("ratio row: speed = pytorch time / native time (higher is better); "
          "MiB columns = native peak / pytorch peak (lower is better)")


if __name__ == "__main__":
    main()
