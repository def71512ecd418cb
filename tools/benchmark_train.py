#!/usr/bin/env python
"""Memory and time of one Mask2Former training step: point-sampled vs dense mask loss.

    python tools/benchmark_train.py                       # R50, batch 2, 512x512, CPU
    python tools/benchmark_train.py --size 256 --steps 2  # quicker

Input: the two real COCO images of datasets/samples/coco_panoptic_sample with their panoptic
ground truth, through the ``coco_panoptic_lsj`` mapper (fixed scale, crop/pad to SIZE x SIZE).
The model is configs/coco/panoptic/r50.yaml (--config-file, then KEY VALUE overrides) with random
weights (no download), AdamW with full-model clipping as in training, fp32.

Modes: "point" = the config's MODEL.MASK_FORMER.TRAIN_NUM_POINTS (12544 for r50.yaml; --points
overrides it: matcher and losses on sampled points); "dense" = TRAIN_NUM_POINTS 0 (as MaskFormer
v1: the matcher on every pixel of the 1/4-resolution predictions, GT masks resized to them
(nearest); the losses on every pixel of the GT masks, the predictions bilinearly upsampled to the
GT size).

Measured per mode:
- step time: wall time of forward + backward + optimizer step (median of --steps, after one
  warm-up step), without profiler;
- step peak: peak of live CPU-allocator bytes during one whole step *above* what was allocated
  before the step (model, optimizer state, batch);
- loss peak / loss time: the criterion alone (matching for all 10 outputs + losses + backward
  to the head outputs), run on the *same* head outputs (detached leaf copies of one forward
  pass), so only the loss computation is measured.
``--ops`` instead prints where one training step of the config goes (the point mode only, with the
config's TRAIN_NUM_POINTS unless --points is given): wall time of the forward pass, backward pass
and optimizer step, then the profiled self time of each op category (convolution forward and
backward, matrix products, the deformable-attention op, normalization, other) with its GFLOP and
GFLOP/s against this machine's measured matmul rate, e.g. for the quick-start model:

    python tools/benchmark_train.py --ops --size 256 --batch 8 --steps 3 \
        --config-file configs/quickstart/synthetic_panoptic.yaml

Memory method: torch.profiler(profile_memory=True) records every CPU allocator allocation and
free ("[memory]" events with byte counts and µs timestamps); the running sum of these events,
in time order, is the live-bytes curve, and its maximum is the peak. With CUDA (--device cuda)
torch.cuda.max_memory_allocated is used instead.
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from detectron2.config import get_cfg  # noqa: E402
from detectron2.data.datasets.coco_panoptic import load_coco_panoptic_json  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.projects.deeplab import add_deeplab_config  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from mask2former import add_maskformer2_config  # noqa: E402
from mask2former.data.dataset_mappers import build_dataset_mapper  # noqa: E402
from mask2former.solver import build_optimizer  # noqa: E402
from mask2former.utils.profiling import (  # noqa: E402
    OP_CATEGORIES,
    matmul_rate,
    print_rate_table,
    time_and_flops_by_category,
)

COCO_SAMPLE = os.path.join(REPO, "datasets", "samples", "coco_panoptic_sample")


def peak_bytes_cpu(fn):
    """(result, peak live bytes allocated by ``fn`` above the level at its start)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
    events = [
        (e.start_us(), i, e.nbytes())
        for i, e in enumerate(prof.profiler.kineto_results.events())
        if e.name() == "[memory]"
    ]
    events.sort()
    live = peak = 0
    for _, _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return result, peak


def peak_bytes(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        result = fn()
        torch.cuda.synchronize()
        return result, torch.cuda.max_memory_allocated() - base
    return peak_bytes_cpu(fn)


def make_cfg(args, num_points):
    cfg = get_cfg()
    add_deeplab_config(cfg)
    add_maskformer2_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.DEVICE = args.device
    if num_points is not None:
        cfg.MODEL.MASK_FORMER.TRAIN_NUM_POINTS = num_points
    cfg.DATASETS.TRAIN = ()
    cfg.INPUT.DATASET_MAPPER_NAME = "coco_panoptic_lsj"
    cfg.INPUT.IMAGE_SIZE = args.size
    cfg.INPUT.RANDOM_FLIP = "none"
    cfg.SOLVER.AMP.ENABLED = False
    return cfg


def make_batch(cfg, batch_size):
    """Real COCO sample images + panoptic GT, LSJ-mapped at a fixed scale (long side = SIZE)."""
    with open(os.path.join(COCO_SAMPLE, "panoptic_coco_categories.json")) as f:
        cats = json.load(f)
    meta = {
        "thing_dataset_id_to_contiguous_id": {
            c["id"]: i for i, c in enumerate(cats) if c["isthing"]
        },
        "stuff_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(cats)},
    }
    dicts = load_coco_panoptic_json(
        os.path.join(COCO_SAMPLE, "panoptic_examples.json"),
        os.path.join(COCO_SAMPLE, "input_images"),
        os.path.join(COCO_SAMPLE, "panoptic_examples"),
        meta,
    )
    cfg = cfg.clone()
    cfg.INPUT.MIN_SCALE = cfg.INPUT.MAX_SCALE = 1.0  # 640-wide images → long side = SIZE, padded
    np.random.seed(0)
    mapper = build_dataset_mapper(cfg, is_train=True)
    batch = [mapper(dicts[i % len(dicts)]) for i in range(batch_size)]
    num_classes = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
    for sample in batch:  # a model of fewer classes (the quick start's 7): any valid class will do
        sample["instances"].gt_classes = sample["instances"].gt_classes % num_classes
    return batch


def _train_step(model, batch, optimizer, phases=None):
    """One forward + backward + optimizer step; adds the wall time of each to ``phases``."""
    t0 = time.perf_counter()
    losses = model(batch)
    total = sum(losses.values())
    t1 = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    t2 = time.perf_counter()
    optimizer.step()
    t3 = time.perf_counter()
    if phases is not None:
        for name, seconds in (("forward", t1 - t0), ("backward", t2 - t1), ("optimizer", t3 - t2)):
            phases.setdefault(name, []).append(seconds)
    return float(total)


def run_ops(args, batch):
    """Where one training step goes: {"phases": {phase: median s}, "seconds": {category: s per
    step}, "flops": {category: FLOPs per step}, "matmul_rate": FLOP/s}."""
    torch.manual_seed(0)
    cfg = make_cfg(args, args.points)
    model = build_model(cfg)
    model.train()
    optimizer = build_optimizer(cfg, model)
    _train_step(model, batch, optimizer)  # warm-up (creates the optimizer state)
    phases = {}
    for _ in range(args.steps):
        _train_step(model, batch, optimizer, phases)
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        for _ in range(args.steps):
            _train_step(model, batch, optimizer)
    seconds, flops = time_and_flops_by_category(prof.events())
    return {
        "phases": {k: statistics.median(v) for k, v in phases.items()},
        "seconds": {k: v / args.steps for k, v in seconds.items()},
        "flops": {k: v / args.steps for k, v in flops.items()},
        "matmul_rate": matmul_rate(),
        "points": cfg.MODEL.MASK_FORMER.TRAIN_NUM_POINTS,
    }


def print_ops_table(args, result):
    phases = result["phases"]
    step = sum(phases.values())
    print(f"\nMask2Former {os.path.relpath(args.config_file, REPO)}, one training step: batch "
          f"{args.batch}, {args.size}x{args.size}, {result['points']} points, device "
          f"{args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print("phases (wall time, median of %d steps): " % args.steps + ", ".join(
        f"{k} {v * 1e3:.0f} ms" for k, v in phases.items()) + f"; step {step * 1e3:.0f} ms")
    seconds, flops, rate = result["seconds"], dict(result["flops"]), result["matmul_rate"]
    # torch.profiler counts no FLOPs for convolution backward: estimated as the input and the
    # weight gradient, each as costly as the forward convolution
    flops["convolution backward"] = 2 * flops["convolution forward"]
    total = sum(seconds.values())
    print(f"op categories (torch.profiler self time per step; {rate / 1e9:.0f} GFLOP/s: this "
          "machine's 2048x2048 fp32 matmul rate)")
    rows = [(c, seconds[c], flops[c]) for c in OP_CATEGORIES if seconds[c] or flops[c]]
    print_rate_table("category", rows + [("total", total, sum(flops.values()))], total, rate,
                     estimated=("convolution backward",))
    print("* estimated: 2x the forward convolutions (input and weight gradients); the other "
          "GFLOP are torch.profiler's counts")


def run_mode(args, name, num_points, batch):
    torch.manual_seed(0)
    cfg = make_cfg(args, num_points)
    device = torch.device(args.device)
    model = build_model(cfg)
    model.train()
    optimizer = build_optimizer(cfg, model)

    def step():
        return _train_step(model, batch, optimizer)

    step()  # warm-up (also creates the optimizer state, so it is in the baseline)
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    _, step_peak = peak_bytes(step, device)

    # the loss part alone, on the same head outputs
    with torch.no_grad():
        images = model.preprocess_image(batch)
        outputs = model.sem_seg_head(model.backbone(images.tensor))
        targets = model.prepare_targets([x["instances"].to(device) for x in batch], images)

    def leaf(o):
        return {
            k: v.detach().clone().requires_grad_(True) for k, v in o.items() if k != "aux_outputs"
        }

    leaf_outputs = leaf(outputs)
    leaf_outputs["aux_outputs"] = [leaf(a) for a in outputs["aux_outputs"]]
    weights = model.criterion.weight_dict

    def loss_part():
        losses = model.criterion(leaf_outputs, targets)
        total = sum(v * weights[k] for k, v in losses.items() if k in weights)
        total.backward()
        return float(total)

    loss_part()  # warm-up
    loss_times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        loss_part()
        loss_times.append(time.perf_counter() - t0)
    _, loss_peak = peak_bytes(loss_part, device)
    num_masks = sum(len(t["labels"]) for t in targets)
    return {
        "mode": name,
        "points": cfg.MODEL.MASK_FORMER.TRAIN_NUM_POINTS,
        "step_s": statistics.median(times),
        "step_peak_mb": step_peak / 2**20,
        "loss_s": statistics.median(loss_times),
        "loss_peak_mb": loss_peak / 2**20,
        "num_masks": num_masks,
        "num_outputs": 1 + len(outputs["aux_outputs"]),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--config-file", default=os.path.join(REPO, "configs/coco/panoptic/r50.yaml")
    )
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=1, help="timed steps per mode (median)")
    parser.add_argument("--points", type=int, default=None,
                        help="TRAIN_NUM_POINTS of the point mode (default: the config's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ops", action="store_true",
                        help="where one training step goes, by op category (see above)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    args = parser.parse_args(argv)

    torch.set_grad_enabled(True)
    batch = make_batch(make_cfg(args, args.points), args.batch)
    if args.ops:
        result = run_ops(args, batch)
        print_ops_table(args, result)
        return result
    rows = [run_mode(args, "point", args.points, batch), run_mode(args, "dense", 0, batch)]
    point, dense = rows
    print(
        f"\nMask2Former {os.path.relpath(args.config_file, REPO)}, batch {args.batch}, "
        f"{args.size}x{args.size}, device {args.device}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}; {point['num_masks']} GT masks, "
        f"{point['num_outputs']} supervised outputs"
    )
    header = f"| {'mode':<22} | {'step time (s)':>13} | {'step peak (MB)':>14} | {'loss time (s)':>13} | {'loss peak (MB)':>14} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        label = f"{r['mode']} ({r['points']} pts)" if r["points"] else f"{r['mode']} (per pixel)"
        print(
            f"| {label:<22} | {r['step_s']:>13.2f} | {r['step_peak_mb']:>14.1f} | "
            f"{r['loss_s']:>13.2f} | {r['loss_peak_mb']:>14.1f} |"
        )
    print(
        f"| {'ratio dense / point':<22} | {dense['step_s'] / point['step_s']:>13.2f} | "
        f"{dense['step_peak_mb'] / point['step_peak_mb']:>14.2f} | "
        f"{dense['loss_s'] / point['loss_s']:>13.2f} | "
        f"{dense['loss_peak_mb'] / point['loss_peak_mb']:>14.2f} |"
    )
    return rows


if __name__ == "__main__":
    main()
