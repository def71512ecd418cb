#!/usr/bin/env python
"""Benchmark multi-scale deformable attention: native kernels vs the grid_sample reference.

Shape of Mask2Former's pixel decoder: N=1, M=8 heads, D=32 channels per head, L=3 levels at
strides 8/16/32 of the input image (ceil), P=4 points, one query per position (Lq = S).
Locations are the pixel centres plus random offsets of a few pixels (as in a trained model),
attention weights a softmax over the L*P points.

For each input size, dtype and backend it prints the median time of the forward (under no_grad)
and of forward+backward (all three gradients), the peak memory of each, native/pytorch ratios
and, with several --dtype, ratios of each dtype to the first one, all computed from
measurements of the same run. Backends and dtypes are timed alternately in every repeat, so a
load from other processes affects all alike.

Dtypes (--dtype fp32 bf16 fp16): value and attention weights in the dtype; sampling locations
stay float32 for bf16/fp16, as MSDeformAttn passes them under autocast (the op's dtype contract:
mask2former/layers/ms_deform_attn.py). On CPU the header names the vector code of the 16-bit
kernels (torch.ops.mask2former.cpu_vector_isa()).

Peak memory: on CUDA, torch.cuda.max_memory_allocated above the pre-call allocation. On CPU,
the peak of (bytes allocated - bytes freed) by torch's CPU allocator during the call, replayed
in time order from torch.profiler memory events (profile_memory=True), in a separate untimed
run. Both count tensors created by the call (output, temporaries, saved activations, gradients),
not the inputs.

    python tools/benchmark_ms_deform_attn.py [--device cpu] [--sizes 512x512,800x1333,1024x1024]
        [--repeat 5] [--threads 2] [--dtype fp32 bf16] [--backends native,pytorch]
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
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def make_inputs(height, width, device, seed=0, dtype=torch.float32):
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
    # 16-bit dtypes: value and weights in the dtype, locations float32 (see the docstring)
    return (value.to(device, dtype), shapes.to(device), starts.to(device), loc.to(device),
            weights.to(device, dtype))


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


def ratio_row(label, size, S, num, den):
    """num/den speed (den time / num time) and num/den peak memory."""
    speed = {k: "x" + format(den[k] / num[k], ".2f") for k in ("fwd", "fb")}
    mem = {k: num[k] / max(den[k], 1) for k in ("fwd_mem", "fb_mem")}
    return (f"{size:>10} {S:>6} {label:>14} | {speed['fwd']:>9} {mem['fwd_mem']:8.2f} | "
            f"{speed['fb']:>10} {mem['fb_mem']:8.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default="512x512,800x1333,1024x1024",
                        help="comma-separated HxW input image sizes")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--dtype", nargs="+", default=["fp32"], choices=list(DTYPES),
                        help="dtypes to measure in the same run (ratios to the first one)")
    parser.add_argument("--backends", default="native,pytorch",
                        help="comma-separated backends among native, pytorch")
    parser.add_argument("--check", action="store_true",
                        help="also report the max abs difference of native vs pytorch outputs")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    backends = args.backends.split(",")
    if not backends or any(b not in ("native", "pytorch") for b in backends):
        sys.exit(f"--backends must be a comma-separated subset of native,pytorch, "
                 f"got {args.backends!r}")
    native_name = f"native-{device.type}"
    if "native" in backends and native_name not in available_backends():
        sys.exit(f"{native_name} is not available (backends: {available_backends()}); "
                 "build it with `make build` or `pip install --no-build-isolation -e .`")
    dtypes = list(dict.fromkeys(args.dtype))
    runs = [(dt, b) for dt in dtypes for b in backends]

    mem_method = ("torch.cuda.max_memory_allocated" if device.type == "cuda"
                  else "CPU allocator peak from torch.profiler memory events")
    isa = ""
    if device.type == "cpu" and native_name in available_backends():
        isa = f", 16-bit CPU kernels: {torch.ops.mask2former.cpu_vector_isa()}"
    print(f"ms_deform_attn benchmark: device={device}, threads={torch.get_num_threads()}, "
          f"torch {torch.__version__}, N={N} M={M} D={D} L={len(STRIDES)} P={P} Lq=S, "
          f"median of {args.repeat} runs{isa}")
    print(f"peak memory = {mem_method}, tensors created by the call (inputs excluded); "
          f"bf16/fp16: value and weights in the dtype, locations float32")
    header = (f"{'input':>10} {'S':>6} {'dtype backend':>14} | {'fwd ms':>9} {'fwd MiB':>8} | "
              f"{'fwd+bwd ms':>10} {'f+b MiB':>8}")
    print(header)
    print("-" * len(header))
    results = {}  # size -> (dtype, backend) -> medians (ms) and peaks (bytes)
    for size in args.sizes.split(","):
        h, w = (int(v) for v in size.lower().split("x"))
        inputs = {dt: make_inputs(h, w, device, dtype=DTYPES[dt]) for dt in dtypes}
        S = inputs[dtypes[0]][0].shape[1]
        grad = torch.randn(N, S, M * D, generator=torch.Generator().manual_seed(1)).to(device)
        fwd = {(dt, b): (lambda dt=dt, b=b: run_forward(b, inputs[dt])) for dt, b in runs}
        fwdbwd = {(dt, b): (lambda dt=dt, b=b: run_forward_backward(
            b, inputs[dt], grad.to(DTYPES[dt]))) for dt, b in runs}
        for r in runs:  # warm-up
            timed(fwd[r], device)
            timed(fwdbwd[r], device)
        times = {(r, k): [] for r in runs for k in ("fwd", "fb")}
        for _ in range(args.repeat):
            for r in runs:
                times[(r, "fwd")].append(timed(fwd[r], device))
                times[(r, "fb")].append(timed(fwdbwd[r], device))
        res = results[size] = {}
        for r in runs:
            res[r] = dict(
                fwd=statistics.median(times[(r, "fwd")]) * 1e3,
                fb=statistics.median(times[(r, "fb")]) * 1e3,
                fwd_mem=peak_memory(fwd[r], device),
                fb_mem=peak_memory(fwdbwd[r], device),
            )
            x = res[r]
            print(f"{size:>10} {S:>6} {r[0] + ' ' + r[1]:>14} | {x['fwd']:9.1f} "
                  f"{mib(x['fwd_mem'])} | {x['fb']:10.1f} {mib(x['fb_mem'])}")
        if "native" in backends and "pytorch" in backends:
            for dt in dtypes:
                print(ratio_row(f"{dt} nat/pyt", size, S, res[(dt, "native")],
                                res[(dt, "pytorch")]))
        for dt in dtypes[1:]:
            for b in backends:
                print(ratio_row(f"{dt}/{dtypes[0]} {b[:3]}", size, S, res[(dt, b)],
                                res[(dtypes[0], b)]))
        if args.check and "native" in backends and "pytorch" in backends:
            for dt in dtypes:
                diff = (fwd[(dt, "native")]().float() - fwd[(dt, "pytorch")]().float())
                diff = diff.abs().max().item()
                print(f"{'':>10} {dt}: max |native - pytorch| forward = {diff:.2e}")
    print("ratio rows A/B: speed xN = B time / A time (higher: A faster); MiB columns = A peak / "
          "B peak (lower: A smaller). nat/pyt = native vs pytorch; dt/" + dtypes[0] +
          " = that dtype vs " + dtypes[0] + " with one backend")
    return results


if __name__ == "__main__":
    main()
