#!/usr/bin/env python
"""The quick start (``make quickstart``): a small Mask2Former trained, evaluated and demoed on CPU.

Steps (each one is the command a user would run; they are printed before they run):

1. generate the synthetic panoptic dataset (``python -m mask2former.data.synthetic``) under
   ``<output>/datasets/synthetic`` (``--datasets-root``), reused when it matches the settings;
2. train ``configs/quickstart/synthetic_panoptic.yaml`` with ``train_net.py`` on the CPU
   (Detectron2's logging shows the losses and the ETA); at the end train_net evaluates on
   ``synthetic_panoptic_val`` with Detectron2's panoptic, semantic and instance evaluators;
3. print PQ / AP / mIoU of that evaluation (read from the run's ``metrics.json``);
4. draw the ground truth (``tools/visualize_data.py``) and the predictions (``demo/demo.py``) of
   validation images, plus side-by-side comparisons;
5. plot the losses, learning rate and metrics (``tools/plot_metrics.py``).

Everything is written under ``output/quickstart/`` (``--output``); ``summary.json`` there holds the
metrics, the time of each step and the paths of the pictures.
"""
import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join("configs", "quickstart", "synthetic_panoptic.yaml")
# The documented minimum of the quick-start model (README): the script fails when it is missed.
TARGET_PQ = 60.0
TARGET_PQ_THINGS = 45.0
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


def get_parser():
    parser = argparse.ArgumentParser(description="Train, evaluate and demo a small Mask2Former on CPU")
    parser.add_argument("--output", default=os.path.join("output", "quickstart"), help="output folder")
    parser.add_argument("--datasets-root", help="where the synthetic dataset goes (default OUTPUT/datasets)")
    parser.add_argument("--config-file", default=DEFAULT_CONFIG)
    parser.add_argument("--num-train", type=int, default=300, help="synthetic training images")
    parser.add_argument("--num-val", type=int, default=50, help="synthetic validation images")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed")
    parser.add_argument("--iters", type=int, help="SOLVER.MAX_ITER (default: the config's)")
    parser.add_argument("--batch", type=int, help="SOLVER.IMS_PER_BATCH (default: the config's)")
    parser.add_argument("--demo-images", type=int, default=8, help="validation images to draw")
    parser.add_argument("--skip-train", action="store_true",
                        help="reuse OUTPUT/train (model_final.pth and its metrics.json)")
    parser.add_argument("--min-pq", type=float, default=TARGET_PQ,
                        help="exit with an error when the final PQ is below this (default %(default)s)")
    parser.add_argument("--min-pq-things", type=float, default=TARGET_PQ_THINGS,
                        help="the same for PQ of the thing classes (default %(default)s)")
    parser.add_argument("--opts", default=[], nargs=argparse.REMAINDER,
                        help="extra config KEY VALUE pairs for training and the demo")
    return parser


class StepFailed(RuntimeError):
    pass


class Runner:
    """Runs the steps as subprocesses of this Python, timing them and stopping on the first error."""

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


def dataset_is_current(root, stamp):
    path = os.path.join(root, "synthetic", "quickstart_stamp.json")
    if not os.path.isfile(path):
        return False
    with open(path) as f:
        return json.load(f) == stamp


def read_eval_metrics(metrics_json):
    """The last value of every evaluation metric ("<task>/<name>") in a metrics.json."""
    results = {}
    if not os.path.isfile(metrics_json):
        return results
    with open(metrics_json) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
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


def missed_targets(metrics, min_pq: float, min_pq_things: float):
    """A message naming the headline metrics below their minimum (missing ones count as
    missed), or None when the model reached them."""
    missed = []
    for label, minimum in (("PQ", min_pq), ("PQ things", min_pq_things)):
        value = metrics.get(label)
        if value is None or value < minimum:
            missed.append(f"{label} {'missing' if value is None else f'{value:.1f}'} < {minimum:g}")
    if not missed:
        return None
    return ("the trained model missed its documented minimum: " + ", ".join(missed)
            + " (see README: the quick start's table)")


def main(argv=None):
    args = get_parser().parse_args(argv)
    total_start = time.perf_counter()
    out = os.path.abspath(args.output)
    root = os.path.abspath(args.datasets_root or os.path.join(out, "datasets"))
    train_dir = os.path.join(out, "train")
    py = sys.executable
    env = dict(os.environ, DETECTRON2_DATASETS=root)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    threads_note = choose_threads(env)
    runner = Runner(env)
    os.makedirs(out, exist_ok=True)
    summary = {"output": out, "datasets_root": root, "config": args.config_file,
               "targets": {"PQ": args.min_pq, "PQ things": args.min_pq_things}}
    if threads_note:
        print(threads_note)
        summary["threads"] = threads_note
    try:
        # 1. dataset
        stamp = {"num_train": args.num_train, "num_val": args.num_val, "seed": args.seed}
        if dataset_is_current(root, stamp):
            print(f"\n=== dataset: reusing {os.path.join(root, 'synthetic')} ({stamp})")
            runner.times["dataset"] = 0.0
        else:
            shutil.rmtree(os.path.join(root, "synthetic"), ignore_errors=True)
            runner.run("dataset", [py, "-m", "mask2former.data.synthetic", "--root", root,
                                   "--num-train", str(args.num_train), "--num-val", str(args.num_val),
                                   "--seed", str(args.seed)])
            with open(os.path.join(root, "synthetic", "quickstart_stamp.json"), "w") as f:
                json.dump(stamp, f)

        # 2-3. training, with Detectron2's evaluation at its end
        opts = list(args.opts)
        if args.iters:
            opts += ["SOLVER.MAX_ITER", str(args.iters)]
        if args.batch:
            opts += ["SOLVER.IMS_PER_BATCH", str(args.batch)]
        weights = os.path.join(train_dir, "model_final.pth")
        if args.skip_train and os.path.isfile(weights):
            print(f"\n=== train: reusing {weights}")
        else:
            shutil.rmtree(train_dir, ignore_errors=True)  # metrics.json is appended to otherwise
            runner.run("train+evaluate", [py, "train_net.py", "--config-file", args.config_file,
                                          "--num-gpus", "1", "OUTPUT_DIR", train_dir] + opts)
        metrics = read_eval_metrics(os.path.join(train_dir, "metrics.json"))
        summary["metrics"] = {label: metrics.get(key) for key, label in HEADLINE}
        missed = missed_targets(summary["metrics"], args.min_pq, args.min_pq_things)

        # 4. pictures: ground truth, predictions, side by side
        images_dir = os.path.join(root, "synthetic", "images", "val")
        names = sorted(os.listdir(images_dir))[: args.demo_images]
        gt_dir, pred_dir = os.path.join(out, "ground_truth"), os.path.join(out, "predictions")
        for d in (gt_dir, pred_dir):
            shutil.rmtree(d, ignore_errors=True)
        runner.run("ground truth pictures", [py, "tools/visualize_data.py", "--dataset",
                                             "synthetic_panoptic_val", "--output-dir", gt_dir,
                                             "--num", str(args.demo_images)])
        runner.run("demo", [py, "demo/demo.py", "--config-file", args.config_file, "--input"]
                   + [os.path.join(images_dir, n) for n in names]
                   + ["--output", pred_dir, "--opts", "MODEL.WEIGHTS", weights]
                   + list(args.opts))
        side = compose_side_by_side(gt_dir, pred_dir, os.path.join(out, "side_by_side"), names)

        # 5. plots
        plots_dir = os.path.join(out, "plots")
        runner.run("plots", [py, "tools/plot_metrics.py", os.path.join(train_dir, "metrics.json"),
                             "--output", plots_dir])
        summary["pictures"] = {
            "ground_truth": gt_dir, "predictions": pred_dir,
            "side_by_side": os.path.dirname(side[0]) if side else None,
            "plots": sorted(os.path.join(plots_dir, p) for p in os.listdir(plots_dir)),
        }
        if missed:
            raise StepFailed(missed)
    except StepFailed as e:
        summary["error"] = str(e)
        print(f"\nQUICK START FAILED: {e}", file=sys.stderr)
    summary["seconds"] = dict(runner.times, total=round(time.perf_counter() - total_start, 1))
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    _print_summary(summary)
    return 1 if "error" in summary else 0


def _print_summary(summary):
    print("\n" + "=" * 72)
    print("Mask2Former quick start: summary")
    metrics = summary.get("metrics") or {}
    if metrics:
        print("\nsynthetic_panoptic_val (Detectron2 evaluators):")
        for label, value in metrics.items():
            print(f"  {label:<10} {'n/a' if value is None else f'{value:6.1f}'}")
        for label, minimum in summary.get("targets", {}).items():
            value = metrics.get(label)
            verdict = "reached" if value is not None and value >= minimum else "NOT reached"
            print(f"  target {label} >= {minimum:g}: {verdict}")
    print("\ntime per step (s): " + ", ".join(f"{k} {v:.0f}" for k, v in summary["seconds"].items()))
    pictures = summary.get("pictures")
    if pictures:
        print("\npictures:")
        for key in ("ground_truth", "predictions", "side_by_side"):
            if pictures.get(key):
                print(f"  {key:<13} {pictures[key]}/")
        for path in pictures["plots"]:
            print(f"  plot          {path}")
    print(f"\nsummary: {os.path.join(summary['output'], 'summary.json')}")


if __name__ == "__main__":
    sys.exit(main())
