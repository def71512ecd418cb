#!/usr/bin/env python
"""Benchmark Mask2Former inference: latency, throughput and peak memory, whole model and per stage.

The model is built from a config with random weights (its own initialisation after
``torch.manual_seed(--seed)``, or ``--weights FILE``; nothing is downloaded) and run on random
uint8 images of ``--size`` in batches of ``--batch-size``. Semantic, instance and panoptic
outputs are all on unless ``--tasks`` says otherwise.

"total" is the real ``model(batched_inputs)`` call. The stages are timed inside that same call
by wrapping the model's parts (no separate staged re-implementation):

    preprocess         model call start -> backbone start (normalise, pad the batch)
    backbone           model.backbone(...)
    pixel_decoder      model.sem_seg_head.pixel_decoder.forward_features(...)
    transformer_dec    model.sem_seg_head.predictor(...)
    postprocess        predictor end -> model call end (upsampling of the mask logits, crop and
                       resize, semantic + panoptic + instance inference of every image)

Latency: median and p90 over ``--iters`` runs after ``--warmup`` runs. Several ``--backend``
values are measured alternately within each iteration (so that a load from other processes
affects them alike) and ratios are printed from the same run. On CUDA every boundary is
synchronised.

Allocator: by default (``--allocator caching``, CPU only) mask2former's CPU caching allocator
is installed (`mask2former.utils.allocator`, which ``demo/demo.py`` and ``train_net.py`` use
on CPU too): the large per-image temporaries are then reused instead of page-faulted in again
for every image.
``--allocator both`` measures torch's allocator first and then the caching one, in one run,
and prints the ratios.

Peak memory, from one extra untimed run per backend:
  * CUDA: ``torch.cuda.max_memory_allocated`` minus the allocation at the start of the stage.
  * CPU: the peak of live bytes (allocated - freed) of torch's CPU allocator above the level at
    the start of the stage, replayed in time order from ``torch.profiler`` memory events
    (``profile_memory=True``). It counts the tensors the call creates (activations,
    temporaries, outputs), not the weights or inputs; it is not the process RSS (printed
    separately as the process high-water mark).

Example (the measurement of issue 9):

    python tools/benchmark_inference.py --config-file configs/coco/panoptic/r50.yaml \\
        --size 512x512 --batch-size 1 --backend native pytorch --warmup 2 --iters 10

Video models (Mask2Former-VIS): ``--video-frames T [T ...]`` runs one clip of T random frames of
``--size`` per model call (``--batch-size`` is ignored) for each T, prints the tables per T and a
summary with seconds per frame and peak memory. ``--window-size W`` sets
MODEL.MASK_FORMER.TEST.WINDOW_SIZE: clips longer than W frames run in windows of W frames, shorter
ones all at once (as the original). The measurement of issue 13:

    python tools/benchmark_inference.py --config-file configs/youtubevis_2019/r50.yaml \\
        --size 360x640 --video-frames 2 5 10 30 --window-size 10 --warmup 1 --iters 3
"""
import argparse
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

STAGES = ("preprocess", "backbone", "pixel_decoder", "transformer_dec", "postprocess")
TASK_KEYS = {
    "semantic": "MODEL.MASK_FORMER.TEST.SEMANTIC_ON",
    "instance": "MODEL.MASK_FORMER.TEST.INSTANCE_ON",
    "panoptic": "MODEL.MASK_FORMER.TEST.PANOPTIC_ON",
}


def parse_size(text):
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must look like 512x512 (HxW), got {text!r}")
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"--size must be positive, got {text!r}")
    return h, w


def get_parser():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--config-file", required=True, metavar="FILE")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--size", type=parse_size, default=(512, 512), help="HxW of every image")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument(
        "--backend",
        nargs="+",
        default=["auto"],
        choices=["auto", "native", "pytorch"],
        help="multi-scale deformable attention backend(s); several give ratios in one run",
    )
    p.add_argument(
        "--precision",
        nargs="+",
        default=None,
        choices=["fp32", "bf16", "fp16"],
        help="inference precision(s) (TEST.PRECISION); several give ratios to the first in one run",
    )
    p.add_argument(
        "--allocator",
        default="caching",
        choices=["caching", "default", "both"],
        help="caching: mask2former's CPU caching allocator (mask2former.utils.allocator, as "
        "demo/demo.py and train_net.py use on CPU); default: torch's allocator; both: default "
        "first, then caching, with ratios",
    )
    p.add_argument("--tasks", nargs="+", default=["semantic", "instance", "panoptic"],
                   choices=sorted(TASK_KEYS), help="outputs to produce (default: all three)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs per backend (at least 1)")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads (default: torch's default, the number of cores)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and images")
    p.add_argument("--weights", default="", help="optional checkpoint to load instead")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory run")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="also print the N most expensive operators (torch.profiler) per backend")
    p.add_argument("--flops", action="store_true",
                   help="also print where the time goes: per stage ms, share, GFLOP counted by "
                   "torch.profiler (matrix products and convolutions) and GFLOP/s against this "
                   "machine's measured matrix-product rate")
    p.add_argument("--video-frames", type=int, nargs="+", default=None, metavar="T",
                   help="video model: one clip of T frames per call, for each T given")
    p.add_argument("--window-size", type=int, default=None, metavar="W",
                   help="video model: MODEL.MASK_FORMER.TEST.WINDOW_SIZE (0: all frames at once)")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[],
                   help="config overrides KEY VALUE ... (last argument)")
    return p


def setup_cfg(args):
    from detectron2.config import get_cfg

    from mask2former import add_maskformer2_config, add_maskformer2_video_config

    cfg = get_cfg()
    add_maskformer2_config(cfg)
    if args.video_frames:
        add_maskformer2_video_config(cfg)
    cfg.merge_from_file(args.config_file)
    tasks = []
    for name, key in TASK_KEYS.items():
        tasks += [key, name in args.tasks]
    if args.window_size is not None:
        tasks += ["MODEL.MASK_FORMER.TEST.WINDOW_SIZE", args.window_size]
    cfg.merge_from_list(tasks + ["MODEL.DEVICE", args.device] + list(args.opts))
    cfg.freeze()
    return cfg


def build(cfg, args):
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    torch.manual_seed(args.seed)
    model = build_model(cfg).eval()
    if args.weights:
        DetectionCheckpointer(model).load(args.weights)
    return model


def set_backend(model, variant):
    """Set a variant ``BACKEND`` or ``BACKEND/PRECISION`` (e.g. "native/bf16"): the op backend of
    every MSDeformAttn module and the model's inference precision (TEST.PRECISION); returns the
    number of MSDeformAttn modules."""
    from mask2former.layers import MSDeformAttn
    from mask2former.utils.precision import inference_dtype

    backend, _, prec = variant.partition("/")
    if prec:
        model.inference_dtype = inference_dtype(prec, str(model.device))
    n = 0
    for m in model.modules():
        if isinstance(m, MSDeformAttn):
            m.backend = backend
            n += 1
    return n


def make_inputs(cfg, args, video_frames=None):
    g = torch.Generator().manual_seed(args.seed)
    h, w = args.size
    if video_frames:
        frames = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)
                  for _ in range(video_frames)]
        return [{"image": frames, "height": h, "width": w}]
    return [
        {"image": torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g),
         "height": h, "width": w}
        for _ in range(args.batch_size)
    ]


class StageRecorder:
    """Wraps the model's parts to record stage times inside a real ``model(inputs)`` call.

    Times are accumulated per stage, so a call that runs the parts several times (the meta-arch
    runs images of different padded sizes as separate batches) sums them; the span from the end
    of one transformer decoder call to the next backbone call counts as post-processing. In
    "memory" mode it also opens ``torch.profiler.record_function`` ranges ``bench::<stage>``
    (CPU) or records the CUDA allocator peak of each stage; in "ranges" mode it opens the ranges
    on any device (for profiles that attribute operators to stages).
    """

    def __init__(self, model, device):
        self.model, self.device = model, device
        self.mode = "time"
        self.wall, self.cpu, self.cuda_peaks = {}, {}, {}
        self._open, self._ranges = {}, {}
        head = model.sem_seg_head
        self._patch(model.backbone, "forward", "backbone")
        self._patch(head.pixel_decoder, "forward_features", "pixel_decoder")
        self._patch(head.predictor, "forward", "transformer_dec")

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def begin(self, stage):
        self.sync()
        self._open[stage] = (time.perf_counter(), time.process_time())
        if self.mode == "memory" and self.device.type == "cuda":
            self._cuda_base = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.mode in ("memory", "ranges"):
            rf = torch.profiler.record_function(f"bench::{stage}")
            rf.__enter__()
            self._ranges[stage] = rf

    def end(self, stage):
        self.sync()
        t0, c0 = self._open.pop(stage)
        self.wall[stage] = self.wall.get(stage, 0.0) + time.perf_counter() - t0
        self.cpu[stage] = self.cpu.get(stage, 0.0) + time.process_time() - c0
        if self.mode == "memory" and self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device) - self._cuda_base
            self.cuda_peaks[stage] = max(self.cuda_peaks.get(stage, 0), peak)
        elif stage in self._ranges:
            self._ranges.pop(stage).__exit__(None, None, None)

    def _end_open(self, *stages):
        for stage in stages:
            if stage in self._open:
                self.end(stage)

    def _patch(self, obj, method, stage):
        original = getattr(obj, method)

        def wrapped(*a, **k):
            if stage == "backbone":
                self._end_open("preprocess", "postprocess")
            self.begin(stage)
            out = original(*a, **k)
            self.end(stage)
            if stage == "transformer_dec":
                self.begin("postprocess")
            return out

        setattr(obj, method, wrapped)

    def run(self, inputs):
        """One real model call; returns (outputs, times) with, for every stage and "total",
        ``times[stage]`` wall seconds and ``times[stage + ".cpu"]`` process CPU seconds."""
        self.wall, self.cpu, self._open = {}, {}, {}
        self.begin("total")
        self.begin("preprocess")
        with torch.no_grad():
            out = self.model(inputs)
        self._end_open("preprocess", "postprocess")
        self.end("total")
        times = {s: self.wall.get(s, 0.0) for s in ("total",) + STAGES}
        times.update({s + ".cpu": self.cpu.get(s, 0.0) for s in ("total",) + STAGES})
        return out, times


def cpu_stage_peaks(prof):
    """Per ``bench::<stage>`` range: peak of live CPU-allocator bytes above its start level."""
    from torch._C._profiler import _EventType

    allocs, ranges = [], []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation:
            allocs.append((node.start_time_ns, node.extra_fields.alloc_size))
        elif node.name.startswith("bench::"):
            ranges.append((node.name[len("bench::"):], node.start_time_ns, node.end_time_ns))
        stack.extend(node.children)
    allocs.sort(key=lambda e: e[0])
    peaks = {}
    for stage, t0, t1 in ranges:
        current = peak = 0
        for t, nbytes in allocs:
            if t < t0:
                continue
            if t > t1:
                break
            current += nbytes
            peak = max(peak, current)
        peaks[stage] = max(peaks.get(stage, 0), peak)
    return peaks


def measure_memory(recorder, inputs, device):
    recorder.mode = "memory"
    recorder.cuda_peaks = {}
    try:
        if device.type == "cuda":
            recorder.run(inputs)
            return dict(recorder.cuda_peaks)
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            out, _ = recorder.run(inputs)
            del out
        return cpu_stage_peaks(prof)
    finally:
        recorder.mode = "time"


def measure_stage_flops(recorder, inputs):
    """{stage: FLOPs} of one ``model(inputs)`` call: torch.profiler's FLOP counts (``with_flops``:
    matrix products, convolutions, element-wise mul/add; not the fused attention kernels nor the
    deformable-attention op), attributed to the enclosing ``bench::<stage>`` range."""
    from torch.profiler import ProfilerActivity, profile

    recorder.mode = "ranges"
    try:
        with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
            out, _ = recorder.run(inputs)
            del out
    finally:
        recorder.mode = "time"
    flops = {}
    for event in prof.events():
        if not event.flops:
            continue
        parent, stage = event.cpu_parent, "other"
        while parent is not None:
            if parent.name.startswith("bench::"):
                stage = parent.name[len("bench::"):]
                break
            parent = parent.cpu_parent
        flops[stage] = flops.get(stage, 0) + event.flops
    flops["total"] = sum(flops.values())
    return flops


def print_flops_table(backend, flops, median_seconds, dtype=torch.float32):
    """Stage, ms, share, GFLOP, GFLOP/s and the share of the machine's matmul rate in the
    precision the model runs in (``dtype``: bf16 under bf16 autocast)."""
    from mask2former.utils.profiling import matmul_rate, print_rate_table

    rate = matmul_rate(dtype)
    print(f"\nwhere the time goes, backend {backend} (GFLOP counted by torch.profiler: matrix "
          f"products, convolutions, element-wise mul/add; measured {str(dtype)[6:]} 2048x2048 "
          f"matmul rate {rate / 1e9:.0f} GFLOP/s with {torch.get_num_threads()} threads)")
    rows = [(s, median_seconds[s], flops.get(s, 0)) for s in STAGES + ("total",)]
    print_rate_table("stage", rows, median_seconds["total"], rate)


def describe_outputs(outputs):
    if isinstance(outputs, dict):  # a video model's clip output
        t = outputs["pred_masks"][0].shape[0] if outputs["pred_masks"] else 0
        return f"{len(outputs['pred_scores'])} tracks x {t} frames"
    parts = []
    r = outputs[0]
    if "sem_seg" in r:
        parts.append(f"sem_seg {tuple(r['sem_seg'].shape)}")
    if "panoptic_seg" in r:
        parts.append(f"{len(r['panoptic_seg'][1])} panoptic segments")
    if "instances" in r:
        parts.append(f"{len(r['instances'])} instances")
    return ", ".join(parts) + " (first image)"


def percentile(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def main(argv=None):
    """Runs the benchmark; returns {backend label: {stage: [seconds per run]}}. The caching
    allocator, when this run installed it, is removed again at the end."""
    args = get_parser().parse_args(argv)
    from mask2former.utils.allocator import cpu_caching_allocator

    with cpu_caching_allocator(enabled=False):  # restores the allocator if the run changes it
        return run(args)


def run(args):
    if args.iters < 1 or args.warmup < 0 or args.batch_size < 1:
        sys.exit("--iters and --batch-size must be >= 1 and --warmup >= 0")
    if args.video_frames and min(args.video_frames) < 1:
        sys.exit("--video-frames must be >= 1")
    if args.window_size is not None and (args.window_size < 0 or not args.video_frames):
        sys.exit("--window-size needs --video-frames and must be >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: CUDA is not available here; use --device cpu")
    from mask2former.layers import available_backends

    if "native" in args.backend and f"native-{device.type}" not in available_backends():
        sys.exit(
            f"--backend native: the compiled kernels for {device.type} are not built "
            f"(available: {available_backends()}); build them with `make build`, or use "
            "--backend pytorch/auto"
        )
    backends = list(dict.fromkeys(args.backend))
    if args.precision:  # variants BACKEND/PRECISION, timed alternately
        backends = [f"{b}/{p}" for p in dict.fromkeys(args.precision) for b in backends]

    cfg = setup_cfg(args)
    model = build(cfg, args)
    is_video = hasattr(model, "window_size")  # VideoMaskFormer
    if bool(args.video_frames) != is_video:
        sys.exit(
            f"{args.config_file} builds {type(model).__name__}: "
            + ("--video-frames needs a video config (configs/youtubevis_*)" if args.video_frames
               else "a video model needs --video-frames T")
        )
    recorder = StageRecorder(model, device)

    load = os.getloadavg()
    h, w = args.size
    batch = "one clip" if is_video else f"batch {args.batch_size} x {h}x{w}"
    print(f"config {args.config_file} | device {device} | threads {torch.get_num_threads()} | "
          f"torch {torch.__version__} | {batch} | tasks "
          f"{'clip' if is_video else '+'.join(args.tasks)} | median/p90 of {args.iters} runs "
          f"after {args.warmup} warm-up")
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"({os.cpu_count()} cores)")

    if not is_video:
        times = measure(args, model, recorder, make_inputs(cfg, args), device, backends,
                        args.batch_size, "images")
    else:
        times, summary = {}, []
        for t in args.video_frames:
            windowed = 0 < model.window_size < t
            mode = f"windows of {model.window_size}" if windowed else "all frames at once"
            print(f"\n=== clip of {t} frames of {h}x{w} ({mode}) ===")
            times[t] = measure(args, model, recorder, make_inputs(cfg, args, t), device,
                               backends, t, "frames")
            summary.append((t, mode, times[t]))
        print("\nsummary (median total of each clip; peak: CPU/CUDA live bytes of the call)")
        for t, mode, per_backend in summary:
            for b, tm in per_backend.items():
                tot = statistics.median(tm["total"])
                peak = tm.get("peak_total")
                peak = f"{peak / 2**20:.1f} MiB" if peak is not None else "-"
                print(f"  T={t:<4} {mode:<20} {b:<10} {tot:8.2f} s/clip  {tot / t:7.3f} s/frame  "
                      f"peak {peak}")
    load = os.getloadavg()
    print("cpu ms: median process CPU time of the stage (all threads; less sensitive to other "
          "processes' load than wall time, but includes OpenMP spin-waiting)")
    mem_method = ("torch.cuda.max_memory_allocated above the stage's start" if device.type == "cuda"
                  else "CPU allocator live-bytes peak above the stage's start (torch.profiler)")
    print(f"peak memory: {mem_method}; process max RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print(f"load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return times


def measure(args, model, recorder, inputs, device, backends, per_call, unit):
    """Time (and profile the memory of) ``model(inputs)`` for every backend/allocator variant and
    print the tables; ``per_call`` images or frames per call give the throughput. Returns
    {backend label: {stage: [seconds per run], "peak_total": bytes (if measured)}}."""
    from mask2former.utils.allocator import enable_cpu_caching_allocator

    names = ("total",) + STAGES
    phases = ["default", "caching"] if args.allocator == "both" else [args.allocator]
    variants = [(b, phase) for phase in phases for b in backends]

    def label(b, phase):
        return b if len(phases) == 1 else f"{b}/alloc-{phase}"

    times = {label(*v): {k: [] for s in names for k in (s, s + ".cpu")} for v in variants}
    outputs_desc = {}
    for phase in phases:
        if phase == "caching" and device.type == "cpu" and not enable_cpu_caching_allocator():
            print("--allocator caching: mask2former._C is not built, the allocator is unchanged")
        for b in backends:
            n_attn = set_backend(model, b)
            for _ in range(max(args.warmup, 1)):  # the last warm-up run describes the outputs
                out, _ = recorder.run(inputs)
            outputs_desc[label(b, phase)] = (n_attn, describe_outputs(out))
            del out
        for _ in range(args.iters):
            for b in backends:
                set_backend(model, b)
                out, t = recorder.run(inputs)
                del out
                for s, v in t.items():
                    times[label(b, phase)][s].append(v)

    peaks = {}  # live bytes of tensors: the same with either allocator
    if not args.no_memory:
        for b in backends:
            set_backend(model, b)
            peak = measure_memory(recorder, inputs, device)
            for phase in phases:
                peaks[label(b, phase)] = peak
                if "total" in peak:
                    times[label(b, phase)]["peak_total"] = peak["total"]

    for b in (label(*v) for v in variants):
        n_attn, desc = outputs_desc[b]
        print(f"\nbackend {b} ({n_attn} MSDeformAttn modules): {desc}")
        header = (f"{'stage':<16} {'median ms':>10} {'p90 ms':>9} {'share':>6} {'cpu ms':>9} "
                  f"{'peak MiB':>9}")
        print(header)
        print("-" * len(header))
        tot = statistics.median(times[b]["total"])
        for s in STAGES + ("total",):
            med = statistics.median(times[b][s])
            p90 = percentile(times[b][s], 0.9)
            share = f"{100 * med / tot:5.1f}%"
            mem = peaks.get(b, {}).get(s)
            mem = f"{mem / 2**20:9.1f}" if mem is not None else f"{'-':>9}"
            cpu = statistics.median(times[b][s + ".cpu"])
            print(f"{s:<16} {med * 1e3:10.1f} {p90 * 1e3:9.1f} {share:>6} {cpu * 1e3:9.1f} {mem}")
        print(f"throughput: {per_call / tot:.2f} {unit}/s")

    def ratio_row(ref, other, stages):
        return " ".join(
            f"{s}={statistics.median(times[ref][s]) / statistics.median(times[other][s]):.2f}"
            for s in stages
        )

    if len(backends) > 1:
        if args.precision:  # ratios to the first precision given (e.g. fp32)
            ref = backends[0]
        else:
            ref = "pytorch" if "pytorch" in backends else backends[-1]
        print(f"\nratios (time of {ref} / time of each backend, same run; > 1 = faster than {ref})")
        for phase in phases:
            for b in (b for b in backends if b != ref):
                row = ratio_row(label(ref, phase), label(b, phase), ("total", "pixel_decoder"))
                print(f"  {label(b, phase)}: {row}")
    if len(phases) > 1:
        print("\nratios (time with torch's allocator / time with the caching allocator, same run)")
        for b in backends:
            row = ratio_row(label(b, "default"), label(b, "caching"), ("total",) + STAGES[1:])
            print(f"  {b}: {row}")

    if args.flops:
        for b in backends:
            set_backend(model, b)
            flops = measure_stage_flops(recorder, inputs)
            dtype = getattr(model, "inference_dtype", None) or torch.float32
            print_flops_table(b, flops, {s: statistics.median(times[label(b, phases[-1])][s])
                                         for s in names}, dtype)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        for b in backends:
            set_backend(model, b)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                recorder.run(inputs)
            print(f"\ntop {args.profile} operators, backend {b} (self CPU time, one call)")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile))
    return times


if __name__ == "__main__":
    main()
