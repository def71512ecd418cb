#!/usr/bin/env python
"""Benchmark the inference post-processing alone on synthetic predictions with real structure.

``tools/benchmark_inference.py`` runs the whole model with random weights, whose predictions
keep no panoptic segment (every query is below the object threshold), so the panoptic step is
at its cheapest there. This script times the same post-processing (upsampling of the mask
logits as the meta-architecture does it, sigmoid, semantic, panoptic and instance inference)
on predictions shaped like a trained model's: ``--segments`` confident queries that partition
the image into blobs (most of them become panoptic segments), the other queries "no object".

    python tools/benchmark_postprocessing.py --size 512x512 --segments 40 --allocator both

Prints the median and p90 per step and for the whole, with torch's allocator and/or
mask2former's CPU caching allocator (``--allocator``), and how many segments and instances
the synthetic prediction gave.
"""
import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mask2former.modeling.postprocessing import (  # noqa: E402
    instance_inference,
    panoptic_inference,
    semantic_inference,
)
from mask2former.utils.allocator import cpu_caching_allocator, enable_cpu_caching_allocator  # noqa: E402

STEPS = ("upsample", "sigmoid", "semantic", "panoptic", "instance", "total")


def parse_size(text):
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must look like 512x512, got {text!r}") from None
    if h % 4 or w % 4 or h < 4 or w < 4:
        raise argparse.ArgumentTypeError(f"--size must be positive multiples of 4, got {text!r}")
    return h, w


def get_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=parse_size, default=(512, 512), help="output HxW")
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--classes", type=int, default=133, help="K (COCO panoptic: 133, 80 things)")
    p.add_argument("--things", type=int, default=80, help="classes 0..things-1 are things")
    p.add_argument("--segments", type=int, default=40, help="confident queries (blobs)")
    p.add_argument("--topk", type=int, default=100, help="TEST_TOPK_PER_IMAGE")
    p.add_argument("--allocator", default="caching", choices=["caching", "default", "both"])
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    return p


def synthetic_prediction(args):
    """(mask_cls [Q, K+1], mask logits [1, Q, H/4, W/4] channels-last): ``segments`` queries own
    the cells of a random 12x12 partition with confident classes, the rest say "no object"."""
    g = torch.Generator().manual_seed(args.seed)
    q, k, s = args.queries, args.classes, args.segments
    h, w = args.size[0] // 4, args.size[1] // 4
    mask_cls = torch.randn(q, k + 1, generator=g)
    mask_cls[torch.arange(s), torch.randint(0, k, (s,), generator=g)] += 12.0
    mask_cls[s:, k] += 10.0
    owner = torch.randint(0, max(s, 1), (12, 12), generator=g)
    cells = torch.full((1, q, 12, 12), -6.0)
    if s:
        cells[0, owner, torch.arange(12)[:, None], torch.arange(12)[None]] = 6.0
    cells += torch.randn(cells.shape, generator=g)
    low = F.interpolate(cells, size=(h, w), mode="bilinear", align_corners=False)
    return mask_cls, low.contiguous(memory_format=torch.channels_last)


def run_once(args, mask_cls, low, times):
    marks = [time.perf_counter()]
    up = F.interpolate(low, size=args.size, mode="bilinear", align_corners=False)[0]
    marks.append(time.perf_counter())
    prob = up.sigmoid()
    marks.append(time.perf_counter())
    semantic_inference(mask_cls, up, mask_prob=prob)
    marks.append(time.perf_counter())
    thing_ids = range(args.things)
    seg, info = panoptic_inference(
        mask_cls, up, num_classes=args.classes, object_mask_threshold=0.8,
        overlap_threshold=0.8, thing_ids=thing_ids, mask_prob=prob,
    )
    marks.append(time.perf_counter())
    inst = instance_inference(
        mask_cls, up, num_classes=args.classes, test_topk_per_image=args.topk,
        panoptic_on=True, thing_ids=thing_ids, mask_prob=prob,
    )
    marks.append(time.perf_counter())
    if times is not None:
        for step, t0, t1 in zip(STEPS, marks, marks[1:]):
            times[step].append(t1 - t0)
        times["total"].append(marks[-1] - marks[0])
    return len(info), len(inst)


def main(argv=None):
    args = get_parser().parse_args(argv)
    if args.iters < 1 or not 0 <= args.segments <= args.queries or not 0 <= args.things <= args.classes:
        sys.exit("need --iters >= 1, 0 <= --segments <= --queries, 0 <= --things <= --classes")
    mask_cls, low = synthetic_prediction(args)
    phases = ["default", "caching"] if args.allocator == "both" else [args.allocator]
    results = {}
    with cpu_caching_allocator(enabled=False):  # restores the allocator afterwards
        for phase in phases:
            if phase == "caching" and not enable_cpu_caching_allocator():
                print("mask2former._C is not built: the caching allocator is not available")
            times = {s: [] for s in STEPS}
            for _ in range(args.warmup):
                counts = run_once(args, mask_cls, low, None)
            for _ in range(args.iters):
                counts = run_once(args, mask_cls, low, times)
            results[phase] = times
    h, w = args.size
    print(f"post-processing of {args.queries} queries at {h}x{w}, {args.classes} classes | "
          f"threads {torch.get_num_threads()} | {counts[0]} panoptic segments, {counts[1]} "
          f"instances | median/p90 of {args.iters} runs (ms)")
    header = f"{'step':<10}" + "".join(f"{p + ' med':>16}{'p90':>8}" for p in phases)
    print(header)
    print("-" * len(header))
    for s in STEPS:
        row = "".join(
            f"{statistics.median(results[p][s]) * 1e3:16.1f}"
            f"{sorted(results[p][s])[int(0.9 * (args.iters - 1))] * 1e3:8.1f}"
            for p in phases
        )
        print(f"{s:<10}{row}")
    if len(phases) == 2:
        ratio = statistics.median(results["default"]["total"]) / statistics.median(
            results["caching"]["total"]
        )
        print(f"ratio default / caching (total, same run): {ratio:.2f}")
    return results


if __name__ == "__main__":
    main()
