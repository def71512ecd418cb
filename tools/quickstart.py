#!/usr/bin/env python
"""The quick starts: a small Mask2Former trained, evaluated and drawn on CPU.

``make quickstart`` (``tools/quickstart.py``) does it for panoptic segmentation on images,
``make quickstart-video`` (``tools/quickstart.py --video``) for video instance segmentation
(Mask2Former-VIS). Steps (each one is the command a user would run; they are printed before they
run):

1. generate the synthetic dataset (images: ``python -m mask2former.data.synthetic``, COCO
   panoptic format; video: ``python -m mask2former.data.synthetic_video``, YouTube-VIS format)
   under ``<output>/datasets`` (``--datasets-root``), reused when it matches the settings;
2. plan the schedule: the first ``--warmup-iters`` iterations of the training run alone, timed
   (the learning rate warming up as the shortest schedule's does); they measure this machine's
   seconds per iteration, and the number of iterations is the config's ``SOLVER.MAX_ITER`` or, on
   a slower machine, as many as fit in ``--time-budget`` (the learning-rate schedule is scaled to
   it); ``--iters`` skips the planning;
3. train the quick-start config with ``train_net.py`` / ``train_net_video.py`` on the CPU
   (Detectron2's logging shows the losses and the ETA), resuming after the timed iterations
   (``--resume``: they are part of the training, not thrown away); at the end it evaluates on the
   validation split with Detectron2's evaluators (panoptic, semantic and instance; or video AP);
4. print the headline metrics of that evaluation (read from the run's ``metrics.json``);
5. draw ground truth and predictions of validation images (clips), side by side, one colour per
   instance (per track);
6. plot the losses, learning rate and metrics (``tools/plot_metrics.py``).

Everything is written under ``output/quickstart/`` (``output/quickstart_video/``; ``--output``);
``summary.json`` there holds the metrics, the plan, the time of each step and the pictures. The
script exits non-zero when the trained model misses its documented minimum (README).
"""
import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join("configs", "quickstart", "synthetic_panoptic.yaml")
VIDEO_CONFIG = os.path.join("configs", "quickstart", "synthetic_video.yaml")
# The documented minimum of the quick-start models (README): the script fails when it is missed.
TARGET_PQ = 60.0
TARGET_PQ_THINGS = 45.0
TARGET_VIDEO_AP = 50.0
# metric name in metrics.json -> label printed
HEADLINE = (
    ("panoptic_seg/PQ", "PQ"),
    ("panoptic_seg/PQ_th", "PQ things"),
    ("panoptic_seg/PQ_st", "PQ stuff"),
    ("panoptic_seg/SQ", "SQ"),
    ("panoptic_seg/RQ", "RQ"),
    ("segm/AP", "mask AP"),
    ("segm/AP50", "mask AP50"),
    ("sem_seg/mIoU", "mIoU"),
)
VIDEO_HEADLINE = (
    ("segm/AP", "AP"),
    ("segm/AP50", "AP50"),
    ("segm/AP75", "AP75"),
    ("segm/APs", "APs"),
    ("segm/APm", "APm"),
    ("segm/APl", "APl"),
    ("segm/AR1", "AR1"),
    ("segm/AR10", "AR10"),
)


@dataclass(frozen=True)
class Mode:
    """What differs between the image and the video quick start."""

    name: str
    config: str
    output: str
    dataset_module: str
    dataset_dir: str  # folder the generator writes under the datasets root
    num_train: int
    num_val: int
    train_script: str
    headline: Tuple[Tuple[str, str], ...]
    # Seconds after training (evaluation, pictures, plots) in "iterations" of this machine:
    # measured on the reference machine (README) as seconds / (seconds per iteration).
    post_training_iters: float
    default_budget: float
    min_iters: int  # the shortest schedule measured to reach the documented minimum (README)


MODES = {
    "image": Mode("image", DEFAULT_CONFIG, os.path.join("output", "quickstart"),
                  "mask2former.data.synthetic", "synthetic", 300, 50, "train_net.py", HEADLINE,
                  post_training_iters=35, default_budget=570, min_iters=100),
    "video": Mode("video", VIDEO_CONFIG, os.path.join("output", "quickstart_video"),
                  "mask2former.data.synthetic_video", "synthetic_ytvis", 160, 16,
                  "train_net_video.py", VIDEO_HEADLINE, post_training_iters=40,
                  default_budget=870, min_iters=600),
}


def get_parser():
    parser = argparse.ArgumentParser(
        description="Train, evaluate and draw a small Mask2Former on CPU (images or --video)")
    parser.add_argument("--video", action="store_true",
                        help="the video instance segmentation quick start (Mask2Former-VIS)")
    parser.add_argument("--output", help="output folder (default output/quickstart[_video])")
    parser.add_argument("--datasets-root",
                        help="where the synthetic dataset goes (default OUTPUT/datasets)")
    parser.add_argument("--config-file",
                        help="default: configs/quickstart/synthetic_{panoptic,video}.yaml")
    parser.add_argument("--num-train", type=int,
                        help="synthetic training images (clips); 300 (160)")
    parser.add_argument("--num-val", type=int, help="synthetic validation images (clips); 50 (16)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed")
    parser.add_argument("--iters", type=int,
                        help="SOLVER.MAX_ITER (default: the config's, fewer when the time budget "
                        "needs it); given, nothing is timed or planned")
    parser.add_argument("--batch", type=int, help="SOLVER.IMS_PER_BATCH (default: the config's)")
    parser.add_argument("--time-budget", type=float,
                        help="seconds the whole quick start may take, counted from the start of "
                        "`make quickstart` (env QUICKSTART_T0, Unix time) or of this script; "
                        "0: no limit, the config's schedule (default 570 images, 870 video)")
    parser.add_argument("--warmup-iters", type=int, default=8,
                        help="the first iterations, trained alone and timed to plan the schedule "
                        "(default 8)")
    parser.add_argument("--demo-images", type=int,
                        help="validation images (clips) to draw (default 8 images, 3 clips)")
    parser.add_argument("--skip-train", action="store_true",
                        help="reuse OUTPUT/train (model_final.pth and its metrics.json)")
    parser.add_argument("--min-pq", type=float, default=TARGET_PQ,
                        help="images: exit with an error when the final PQ is below this "
                        "(default %(default)s)")
    parser.add_argument("--min-pq-things", type=float, default=TARGET_PQ_THINGS,
                        help="images: the same for PQ of the thing classes (default %(default)s)")
    parser.add_argument("--min-ap", type=float, default=TARGET_VIDEO_AP,
                        help="video: the same for the video AP (default %(default)s)")
    parser.add_argument("--opts", default=[], nargs=argparse.REMAINDER,
                        help="extra config KEY VALUE pairs for training and the demo")
    return parser


class StepFailed(RuntimeError):
    pass


class Runner:
    """Runs the steps as subprocesses of this Python, timing them; stops on the first error."""

    def __init__(self, env):
        self.env = env
        self.times = {}

    def run(self, name, argv):
        print(f"\n=== {name}\n$ {' '.join(shlex.quote(a) for a in argv)}", flush=True)
        start = time.perf_counter()
        code = subprocess.call(argv, cwd=ROOT, env=self.env)
        self.times[name] = round(time.perf_counter() - start, 1)
        if code != 0:
            raise StepFailed(f"step '{name}' failed with exit status {code} (command above)")
        print(f"--- {name}: {self.times[name]:.0f} s", flush=True)


def busy_cores(interval: float = 1.0):
    """Cores kept busy by other processes right now: the non-idle share of all CPU time in
    /proc/stat over ``interval`` seconds, times the core count. None where /proc/stat is
    missing. (The load average is no use here: a minute after the test suite it still reads
    "busy" on an idle machine.)"""

    def sample():
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:9]]
        return values[3] + values[4], sum(values)  # idle + iowait, total

    try:
        idle0, total0 = sample()
        time.sleep(interval)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (1.0 - (idle1 - idle0) / (total1 - total0)) * (os.cpu_count() or 1)


def choose_threads(env, busy=None):
    """Use one compute thread per process when other programs already occupy the CPU.

    PyTorch's OpenMP threads spin while they wait for each other; when other programs occupy
    the cores this makes a 2-thread training several times slower than a 1-thread one, while
    on an idle 2-core machine 2 threads train 1.8x faster than 1 (0.97 vs 1.72 s/iteration,
    measured with 60 iterations of this quick start). An explicit OMP_NUM_THREADS is always
    respected. ``busy``: cores in use by others (default: measured, `busy_cores`). Returns a
    message when a choice was made.
    """
    if "OMP_NUM_THREADS" in env:
        return None
    cpus = os.cpu_count() or 1
    if busy is None:
        busy = busy_cores()
    if busy is None or cpus == 1:
        return None
    if busy > 0.5 * cpus:
        env["OMP_NUM_THREADS"] = "1"
        return (f"The CPU is busy ({busy:.1f} of {cpus} cores in use by other programs): "
                "training with 1 thread (set OMP_NUM_THREADS to override).")
    return None


def dataset_is_current(root, stamp, dataset_dir: str = "synthetic"):
    path = os.path.join(root, dataset_dir, "quickstart_stamp.json")
    if not os.path.isfile(path):
        return False
    with open(path) as f:
        return json.load(f) == stamp


def metrics_records(metrics_json):
    """The records (one JSON object per line) of a Detectron2 metrics.json; none when the file is
    missing, unreadable lines skipped (a run killed while writing leaves a partial last line)."""
    if not os.path.isfile(metrics_json):
        return
    with open(metrics_json) as f:
        for line in f:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def read_eval_metrics(metrics_json):
    """The last value of every evaluation metric ("<task>/<name>") in a metrics.json."""
    results = {}
    for record in metrics_records(metrics_json):
        results.update({k: v for k, v in record.items() if "/" in k})
    return results


def compose_side_by_side(gt_dir, pred_dir, out_dir, names):
    """Ground truth | prediction pictures, one per validation image."""
    from PIL import Image, ImageDraw

    os.makedirs(out_dir, exist_ok=True)
    written = []
    for name in names:
        stem = os.path.splitext(name)[0]
        gt_path = os.path.join(gt_dir, stem + ".png")
        pred_path = os.path.join(pred_dir, name)
        if not (os.path.isfile(gt_path) and os.path.isfile(pred_path)):
            continue
        gt, pred = Image.open(gt_path).convert("RGB"), Image.open(pred_path).convert("RGB")
        pred = pred.resize(gt.size)
        canvas = Image.new("RGB", (gt.width * 2 + 4, gt.height + 18), "white")
        canvas.paste(gt, (0, 18))
        canvas.paste(pred, (gt.width + 4, 18))
        draw = ImageDraw.Draw(canvas)
        draw.text((4, 3), "ground truth", fill="black")
        draw.text((gt.width + 8, 3), "prediction", fill="black")
        path = os.path.join(out_dir, stem + ".png")
        canvas.save(path)
        written.append(path)
    return written


def missed_targets(metrics, targets: Dict[str, float]):
    """A message naming the headline metrics below their minimum (``targets``: label -> minimum;
    missing ones count as missed), or None when the model reached them."""
    missed = []
    for label, minimum in targets.items():
        value = metrics.get(label)
        if value is None or value < minimum:
            missed.append(f"{label} {'missing' if value is None else f'{value:.1f}'} < {minimum:g}")
    if not missed:
        return None
    return ("the trained model missed its documented minimum: " + ", ".join(missed)
            + " (see README: the quick start's table)")


def config_schedule(config_file: str, video: bool, opts=()) -> Tuple[int, int]:
    """(SOLVER.MAX_ITER, SOLVER.WARMUP_ITERS) of a config with the command-line ``opts``
    (KEY VALUE ...) merged, read as train_net reads it."""
    sys.path.insert(0, ROOT)
    from detectron2.config import get_cfg

    from mask2former.config import add_maskformer2_config, add_maskformer2_video_config

    cfg = get_cfg()
    add_maskformer2_config(cfg)
    if video:
        add_maskformer2_video_config(cfg)
    cfg.merge_from_file(os.path.join(ROOT, config_file))
    cfg.merge_from_list(list(opts))
    return int(cfg.SOLVER.MAX_ITER), int(cfg.SOLVER.WARMUP_ITERS)


def seconds_per_iteration(metrics_json: str) -> Optional[float]:
    """The last per-iteration time Detectron2 logged (``time``: median of the recent
    iterations, without the first ones) in a metrics.json, or None."""
    value = None
    for record in metrics_records(metrics_json):
        if isinstance(record.get("time"), (int, float)):
            value = float(record["time"])
    return value


def scaled_warmup(warmup_iters: int, iters: int, max_iter: int) -> int:
    """The learning-rate warm-up of a schedule of ``iters`` iterations: the config's
    ``warmup_iters`` (for its ``max_iter``) scaled alike."""
    return int(round(warmup_iters * iters / max_iter))


def plan_iterations(max_iter: int, warmup_iters: int, sec_per_iter: float, seconds_left: float,
                    startup: float, post_training_iters: float, min_iters: int = 1,
                    done_iters: int = 0) -> Dict:
    """The schedule that fits: ``max_iter`` when it fits in ``seconds_left``, else the number of
    iterations that does, but never fewer than ``min_iters`` (the shortest schedule measured to
    reach the documented minimum: a model that works comes before the time budget) nor than the
    ``done_iters`` already trained. The learning-rate warm-up is scaled with the schedule.

    ``startup``: seconds a training run spends before its first iteration; post_training_iters:
    evaluation + pictures + plots, in iterations of this machine; ``seconds_left`` is for the
    iterations after the ``done_iters``.
    """
    fit = done_iters + int(math.floor((seconds_left - startup) / sec_per_iter
                                      - post_training_iters))
    iters = max_iter if fit >= max_iter else max(fit, min(min_iters, max_iter), done_iters, 1)
    warmup = scaled_warmup(warmup_iters, iters, max_iter)
    return {"iterations": iters, "warmup_iters": warmup, "config_iterations": max_iter,
            "seconds_per_iteration": round(sec_per_iter, 3), "startup_seconds": round(startup, 1),
            "seconds_left": round(seconds_left, 1), "shortened": iters < max_iter,
            "over_budget": fit < iters}


def _clip_frames_to_show(length: int, count: int = 4):
    if length <= count:
        return list(range(length))
    return [round(i * (length - 1) / (count - 1)) for i in range(count)]


def gt_tracks_as_predictions(record: Dict) -> Dict:
    """A YouTube-VIS dataset dict's ground truth in the video model's output format
    (``pred_scores``, ``pred_labels``, ``pred_masks`` [track][frame] bool), to draw it alike."""
    import numpy as np
    import pycocotools.mask as mask_util

    h, w, length = record["height"], record["width"], record["length"]
    tracks = {}
    for t, frame_annos in enumerate(record.get("annotations", [])):
        for anno in frame_annos:
            track = tracks.setdefault(anno["id"], {"label": anno["category_id"],
                                                   "masks": [np.zeros((h, w), bool)] * length})
            segm = anno["segmentation"]
            if isinstance(segm, list):
                segm = mask_util.merge(mask_util.frPyObjects(segm, h, w))
            track["masks"][t] = mask_util.decode(segm).astype(bool)
    ids = sorted(tracks)
    return {"pred_scores": [1.0] * len(ids), "pred_labels": [tracks[i]["label"] for i in ids],
            "pred_masks": [tracks[i]["masks"] for i in ids]}


def draw_video_side_by_side(dataset_name: str, pred_root: str, gt_out: str, side_out: str,
                            num_clips: int):
    """For the first ``num_clips`` clips of ``dataset_name``: ground-truth tracks drawn on up to 4
    frames (``gt_out/<clip>/``) and one picture per clip (``side_out/<clip>.png``) with those
    frames in rows, ground truth | prediction (``pred_root/<clip>/frames/``, from demo_video)."""
    import cv2
    import numpy as np

    from detectron2.data import DatasetCatalog, MetadataCatalog

    from mask2former.utils.visualizer import draw_tracks

    records = DatasetCatalog.get(dataset_name)[:num_clips]
    metadata = MetadataCatalog.get(dataset_name)
    written = []
    for record in records:
        clip = os.path.basename(os.path.dirname(record["file_names"][0]))
        frames = [cv2.imread(f) for f in record["file_names"]]
        drawn, _ = draw_tracks(frames, gt_tracks_as_predictions(record), metadata, 0.0,
                               show_scores=False)
        os.makedirs(os.path.join(gt_out, clip), exist_ok=True)
        rows = []
        for t in _clip_frames_to_show(len(frames)):
            name = os.path.splitext(os.path.basename(record["file_names"][t]))[0]
            cv2.imwrite(os.path.join(gt_out, clip, name + ".jpg"), drawn[t])
            pred = cv2.imread(os.path.join(pred_root, clip, "frames", name + ".jpg"))
            if pred is None:
                continue
            pred = cv2.resize(pred, (drawn[t].shape[1], drawn[t].shape[0]))
            gap = np.full((drawn[t].shape[0], 4, 3), 255, np.uint8)
            rows.append(np.concatenate([drawn[t], gap, pred], axis=1))
        if not rows:
            continue
        title = np.full((18, rows[0].shape[1], 3), 255, np.uint8)
        shown = ", ".join(str(t) for t in _clip_frames_to_show(len(frames)))
        cv2.putText(title, f"{clip}: ground truth | prediction (frames {shown})", (4, 13),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        os.makedirs(side_out, exist_ok=True)
        path = os.path.join(side_out, clip + ".png")
        cv2.imwrite(path, np.concatenate([title] + rows, axis=0))
        written.append(path)
    return written


def make_start_time(now: float, budget: float) -> float:
    """When ``make quickstart`` began (env QUICKSTART_T0, Unix seconds, set by the Makefile before
    it creates the environment), so the budget covers that too; ``now`` when unset, in the
    future, or older than the budget (a stale value exported by hand)."""
    value = os.environ.get("QUICKSTART_T0", "")
    try:
        t0 = float(value)
    except ValueError:
        return now
    return t0 if 0 <= now - t0 < max(budget, 0) else now


def main(argv=None):
    args = get_parser().parse_args(argv)
    mode = MODES["video" if args.video else "image"]
    start = time.time()
    total_start = time.perf_counter()
    out = os.path.abspath(args.output or mode.output)
    config_file = args.config_file or mode.config
    num_train = args.num_train or mode.num_train
    num_val = args.num_val or mode.num_val
    budget = mode.default_budget if args.time_budget is None else args.time_budget
    t0 = make_start_time(start, budget)
    root = os.path.abspath(args.datasets_root or os.path.join(out, "datasets"))
    train_dir = os.path.join(out, "train")
    py = sys.executable
    env = dict(os.environ, DETECTRON2_DATASETS=root)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    threads_note = choose_threads(env)
    runner = Runner(env)
    os.makedirs(out, exist_ok=True)
    if mode.name == "video":
        targets = {"AP": args.min_ap}
    else:
        targets = {"PQ": args.min_pq, "PQ things": args.min_pq_things}
    summary = {"mode": mode.name, "output": out, "datasets_root": root, "config": config_file,
               "targets": targets}
    if threads_note:
        print(threads_note)
        summary["threads"] = threads_note
    try:
        # 1. dataset
        stamp = {"num_train": num_train, "num_val": num_val, "seed": args.seed}
        if dataset_is_current(root, stamp, mode.dataset_dir):
            print(f"\n=== dataset: reusing {os.path.join(root, mode.dataset_dir)} ({stamp})")
            runner.times["dataset"] = 0.0
        else:
            shutil.rmtree(os.path.join(root, mode.dataset_dir), ignore_errors=True)
            runner.run("dataset", [py, "-m", mode.dataset_module, "--root", root,
                                   "--num-train", str(num_train), "--num-val", str(num_val),
                                   "--seed", str(args.seed)])
            with open(os.path.join(root, mode.dataset_dir, "quickstart_stamp.json"), "w") as f:
                json.dump(stamp, f)

        # 2-4. (timed first iterations, plan and) training, with Detectron2's evaluation at its end
        opts = list(args.opts)
        if args.batch:
            opts += ["SOLVER.IMS_PER_BATCH", str(args.batch)]
        train = [py, mode.train_script, "--config-file", config_file, "--num-gpus", "1"]
        weights = os.path.join(train_dir, "model_final.pth")
        if args.skip_train and os.path.isfile(weights):
            print(f"\n=== train: reusing {weights}")
        else:
            if args.iters:
                opts += ["SOLVER.MAX_ITER", str(args.iters)]
            shutil.rmtree(train_dir, ignore_errors=True)  # metrics.json is appended to otherwise
            plan = None
            if not args.iters and budget > 0:
                plan = plan_schedule(runner, train, opts, train_dir, config_file, mode, args,
                                     budget, t0)
            if plan is not None:
                summary["plan"] = plan
                opts += ["SOLVER.MAX_ITER", str(plan["iterations"]),
                         "SOLVER.WARMUP_ITERS", str(plan["warmup_iters"])]
            resume = ["--resume"] if plan is not None and plan["timed_iters"] else []
            runner.run("train+evaluate", train + resume + ["OUTPUT_DIR", train_dir] + opts)
            summary["seconds_per_iteration"] = seconds_per_iteration(
                os.path.join(train_dir, "metrics.json"))
        metrics = read_eval_metrics(os.path.join(train_dir, "metrics.json"))
        summary["metrics"] = {label: metrics.get(key) for key, label in mode.headline}
        missed = missed_targets(summary["metrics"], targets)

        # 5. pictures
        if mode.name == "video":
            summary["pictures"] = video_pictures(runner, py, config_file, weights, root, out,
                                                 args.demo_images or 3, list(args.opts))
        else:
            summary["pictures"] = image_pictures(runner, py, config_file, weights, root, out,
                                                 args.demo_images or 8, list(args.opts))
        # 6. plots
        plots_dir = os.path.join(out, "plots")
        runner.run("plots", [py, "tools/plot_metrics.py", os.path.join(train_dir, "metrics.json"),
                             "--output", plots_dir])
        summary["pictures"]["plots"] = sorted(os.path.join(plots_dir, p)
                                              for p in os.listdir(plots_dir))
        if missed:
            raise StepFailed(missed)
    except StepFailed as e:
        summary["error"] = str(e)
        print(f"\nQUICK START FAILED: {e}", file=sys.stderr)
    summary["seconds"] = dict(runner.times, total=round(time.perf_counter() - total_start, 1))
    if t0 < start:
        summary["seconds"]["since_make_start"] = round(time.time() - t0, 1)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    _print_summary(summary)
    return 1 if "error" in summary else 0


def plan_schedule(runner, train, opts, train_dir, config_file, mode, args, budget, t0) -> Dict:
    """Train the first ``--warmup-iters`` iterations alone, timed, into ``train_dir`` (the main run
    resumes from them) and return the plan (:func:`plan_iterations`, plus ``timed_iters``).

    Those iterations use the learning-rate warm-up of the shortest schedule (linear, no decay yet):
    they are exactly its start, the schedule a slow machine gets, where the few iterations count
    most. A longer plan resumes on its own, slower warm-up curve (the learning rate of iteration
    ``timed_iters`` is then lower than that of the last timed one). A config of no more
    iterations than that is trained as it is (``timed_iters`` 0: nothing to plan)."""
    max_iter, warmup_iters = config_schedule(config_file, mode.name == "video", opts)
    n = max(args.warmup_iters, 5)
    if max_iter <= n:
        return {"iterations": max_iter, "warmup_iters": warmup_iters,
                "config_iterations": max_iter, "shortened": False, "over_budget": False,
                "timed_iters": 0}
    first_warmup = max(scaled_warmup(warmup_iters, min(mode.min_iters, max_iter), max_iter), 1)
    began = time.perf_counter()
    runner.run("timed first iterations", train + ["OUTPUT_DIR", train_dir] + opts + [
        "SOLVER.MAX_ITER", str(n), "DATASETS.TEST", "()", "SOLVER.CHECKPOINT_PERIOD", "100000",
        "SOLVER.LR_SCHEDULER_NAME", "WarmupMultiStepLR", "SOLVER.STEPS", "()",
        "SOLVER.WARMUP_ITERS", str(first_warmup)])
    wall = time.perf_counter() - began
    sec = seconds_per_iteration(os.path.join(train_dir, "metrics.json"))
    if sec is None:
        raise StepFailed(f"the timed iterations wrote no iteration time to "
                         f"{train_dir}/metrics.json")
    startup = max(wall - n * sec, 0.0)
    plan = plan_iterations(max_iter, warmup_iters, sec, budget - (time.time() - t0), startup,
                           mode.post_training_iters, mode.min_iters, done_iters=n)
    plan["timed_iters"] = n
    if plan["over_budget"]:
        needed = startup + (plan["iterations"] - n + mode.post_training_iters) * sec
        print(f"\nThis machine trains at {sec:.2f} s/iteration: too slow for the time budget "
              f"({budget:.0f} s). Training {plan['iterations']} iterations, the fewest measured to "
              f"reach the documented minimum (config: {max_iter}); that takes about "
              f"{needed / 60:.0f} more minutes.", flush=True)
    elif plan["shortened"]:
        print(f"\nThis machine trains at {sec:.2f} s/iteration: {plan['iterations']} of the "
              f"config's {max_iter} iterations fit in the time budget ({budget:.0f} s; "
              "--time-budget 0 trains them all).", flush=True)
    else:
        print(f"\nThis machine trains at {sec:.2f} s/iteration: the config's {max_iter} "
              f"iterations fit in the time budget ({budget:.0f} s).", flush=True)
    return plan


def image_pictures(runner, py, config_file, weights, root, out, count, opts):
    images_dir = os.path.join(root, "synthetic", "images", "val")
    names = sorted(os.listdir(images_dir))[:count]
    gt_dir, pred_dir = os.path.join(out, "ground_truth"), os.path.join(out, "predictions")
    for d in (gt_dir, pred_dir):
        shutil.rmtree(d, ignore_errors=True)
    runner.run("ground truth pictures", [py, "tools/visualize_data.py", "--dataset",
                                         "synthetic_panoptic_val", "--output-dir", gt_dir,
                                         "--num", str(count)])
    runner.run("demo", [py, "demo/demo.py", "--config-file", config_file, "--input"]
               + [os.path.join(images_dir, n) for n in names]
               + ["--output", pred_dir, "--opts", "MODEL.WEIGHTS", weights] + opts)
    side = compose_side_by_side(gt_dir, pred_dir, os.path.join(out, "side_by_side"), names)
    return {"ground_truth": gt_dir, "predictions": pred_dir,
            "side_by_side": os.path.dirname(side[0]) if side else None}


def video_pictures(runner, py, config_file, weights, root, out, count, opts):
    """demo_video.py on the first ``count`` validation clips, then ground truth | prediction."""
    sys.path.insert(0, ROOT)
    from mask2former.data.datasets import register_synthetic_ytvis

    frames_root = os.path.join(root, "synthetic_ytvis", "valid", "JPEGImages")
    clips = sorted(os.listdir(frames_root))[:count]
    gt_dir, pred_dir = os.path.join(out, "ground_truth"), os.path.join(out, "predictions")
    side_dir = os.path.join(out, "side_by_side")
    for d in (gt_dir, pred_dir, side_dir):
        shutil.rmtree(d, ignore_errors=True)
    for clip in clips:
        runner.run(f"demo {clip}", [py, "demo/demo_video.py", "--config-file", config_file,
                                    "--input", os.path.join(frames_root, clip),
                                    "--output", os.path.join(pred_dir, clip),
                                    "--opts", "MODEL.WEIGHTS", weights] + opts)
    begin = time.perf_counter()
    register_synthetic_ytvis(root)
    side = draw_video_side_by_side("synthetic_ytvis_val", pred_dir, gt_dir, side_dir, len(clips))
    runner.times["ground truth + side by side"] = round(time.perf_counter() - begin, 1)
    return {"ground_truth": gt_dir, "predictions": pred_dir,
            "side_by_side": side_dir if side else None}


def _print_summary(summary):
    print("\n" + "=" * 72)
    print(f"Mask2Former quick start ({summary.get('mode', 'image')}): summary")
    plan = summary.get("plan")
    if plan and plan.get("timed_iters"):
        print(f"\nschedule: {plan['iterations']} iterations (config {plan['config_iterations']}); "
              f"the first {plan['timed_iters']} ran at {plan['seconds_per_iteration']:.2f} "
              "s/iteration")
    metrics = summary.get("metrics") or {}
    if metrics:
        print("\nvalidation split (Detectron2 evaluators):")
        for label, value in metrics.items():
            print(f"  {label:<10} {'n/a' if value is None else f'{value:6.1f}'}")
        for label, minimum in summary.get("targets", {}).items():
            value = metrics.get(label)
            verdict = "reached" if value is not None and value >= minimum else "NOT reached"
            print(f"  target {label} >= {minimum:g}: {verdict}")
    steps = ", ".join(f"{k} {v:.0f}" for k, v in summary["seconds"].items())
    print(f"\ntime per step (s): {steps}")
    pictures = summary.get("pictures")
    if pictures:
        print("\npictures:")
        for key in ("ground_truth", "predictions", "side_by_side"):
            if pictures.get(key):
                print(f"  {key:<13} {pictures[key]}/")
        for path in pictures.get("plots", []):
            print(f"  plot          {path}")
    print(f"\nsummary: {os.path.join(summary['output'], 'summary.json')}")


if __name__ == "__main__":
    sys.exit(main())
