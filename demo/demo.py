#!/usr/bin/env python
"""Mask2Former demo: draw panoptic, instance or semantic predictions on images, a video or a webcam.

Examples::

    python demo/demo.py --config-file configs/coco/panoptic/r50.yaml \\
        --input photos/*.jpg --output out/ --opts MODEL.WEIGHTS mask2former://coco/panoptic/r50
    python demo/demo.py --config-file configs/coco/panoptic/r50.yaml \\
        --video-input clip.mp4 --output clip_seg.mp4 --opts MODEL.WEIGHTS model_final_94dc52.pkl

``mask2former://<name>`` downloads the released model of MODEL_ZOO.md once (fvcore cache); a
config run without trained weights stops with a message naming its zoo entry.

Runs on the CPU when no GPU is available (the deformable-attention op then uses its PyTorch
path). An input that cannot be read is reported by name and skipped; the exit status is 1 if any
input failed.
"""
import argparse
import glob
import logging
import os
import sys
import time

import cv2
import torch
import tqdm

try:
    import mask2former  # noqa: F401
except ModuleNotFoundError as e:  # running from a checkout without `pip install -e .`
    if e.name != "mask2former":
        raise
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mask2former.config import add_maskformer2_config, merge_config_checked  # noqa: E402
from mask2former.data.robust_loading import read_image  # noqa: E402  (16-bit, RGBA, ...)
from mask2former.model_zoo import check_trained_weights, exit_on_model_zoo_error  # noqa: E402
from mask2former.utils.allocator import cpu_caching_allocator  # noqa: E402
from mask2former.utils.visualizer import TASKS, VisualizationDemo  # noqa: E402

from detectron2.config import get_cfg  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402
from detectron2.utils.visualizer import ColorMode  # noqa: E402

WINDOW_NAME = "mask2former"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
logger = logging.getLogger("demo")


def get_parser():
    parser = argparse.ArgumentParser(description="Mask2Former demo with Detectron2's visualizer")
    parser.add_argument("--config-file", required=True, metavar="FILE", help="path to config file")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--webcam", action="store_true", help="take frames from webcam 0")
    src.add_argument("--video-input", metavar="FILE", help="path to a video file")
    src.add_argument(
        "--input",
        nargs="+",
        metavar="PATH",
        help="image files, directories or glob patterns (quote globs to let the demo expand them)",
    )
    parser.add_argument(
        "--output",
        metavar="PATH",
        help="where to save the drawings: a folder (created if missing), or a file when there is "
        "one image / for --video-input and --webcam. Without it results are shown in a window.",
    )
    parser.add_argument(
        "--confidence-threshold",
        type=float,
        default=0.5,
        help="instances (and panoptic segments that carry a score) below it are not drawn",
    )
    parser.add_argument(
        "--task",
        choices=TASKS,
        default="auto",
        help="what to draw; auto = panoptic if available, else instances, else semantic",
    )
    parser.add_argument(
        "--color-mode",
        choices=[m.name for m in ColorMode],
        default="IMAGE",
        help="Detectron2 ColorMode of the drawing",
    )
    parser.add_argument(
        "--max-frames", type=int, default=0, help="stop video/webcam after this many frames (0: all)"
    )
    parser.add_argument(
        "--no-caching-allocator",
        action="store_true",
        help="on CPU, keep torch's allocator instead of mask2former's caching one (which reuses "
        "the large per-image buffers; see mask2former/utils/allocator.py); the same as "
        "--opts CPU_CACHING_ALLOCATOR False",
    )
    parser.add_argument(
        "--opts",
        default=[],
        nargs=argparse.REMAINDER,
        help="config overrides as KEY VALUE pairs, e.g. MODEL.WEIGHTS model.pkl MODEL.DEVICE cpu",
    )
    return parser


def setup_cfg(args):
    cfg = get_cfg()
    add_maskformer2_config(cfg)
    merge_config_checked(cfg, args.config_file, args.opts)  # clear errors for unknown keys
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        logger.info("CUDA is not available: running on the CPU (MODEL.DEVICE cpu).")
        cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    return cfg


def expand_inputs(patterns):
    """Expand files, directories and glob patterns into a sorted list of paths.

    Returns:
        (paths, missing): ``missing`` lists the patterns that matched nothing.
    """
    paths, missing = [], []
    for pattern in patterns:
        if os.path.isdir(pattern):
            found = sorted(
                os.path.join(pattern, f)
                for f in os.listdir(pattern)
                if f.lower().endswith(IMAGE_EXTENSIONS)
            )
        elif os.path.exists(pattern):
            found = [pattern]
        else:
            found = sorted(glob.glob(os.path.expanduser(pattern)))
        if not found:
            missing.append(pattern)
        paths.extend(found)
    return paths, missing


def output_paths(inputs, output):
    """Map each input to its output file; ``output`` is a folder unless it names one file."""
    is_file = (
        len(inputs) == 1
        and not os.path.isdir(output)
        and not output.endswith(os.sep)
        and os.path.splitext(output)[1].lower() in IMAGE_EXTENSIONS
    )
    if is_file:
        return [output]
    if os.path.isfile(output):
        raise SystemExit(f"--output {output} is an existing file but there are {len(inputs)} inputs")
    used, result = set(), []
    for path in inputs:
        stem, ext = os.path.splitext(os.path.basename(path))
        ext = ext if ext.lower() in IMAGE_EXTENSIONS else ".png"
        name, k = stem + ext, 1
        while name in used:  # same file name in two input folders
            name, k = f"{stem}_{k}{ext}", k + 1
        used.add(name)
        result.append(os.path.join(output, name))
    return result


def check_gui():
    """Fail early when results should be shown but OpenCV was built without a GUI."""
    try:
        cv2.namedWindow(WINDOW_NAME, cv2.WINDOW_NORMAL)
    except cv2.error as e:
        raise SystemExit(
            "This OpenCV has no window support (opencv-python-headless), so results cannot be "
            f"shown: pass --output to save them instead. ({str(e).strip().splitlines()[-1]})"
        )


def run_images(demo, args):
    paths, missing = expand_inputs(args.input)
    failures = [(p, "no such file or no match") for p in missing]
    outputs = output_paths(paths, args.output) if args.output else [None] * len(paths)
    bar = tqdm.tqdm(list(zip(paths, outputs)), desc="demo", unit="img", disable=not paths)
    for path, out in bar:
        bar.set_postfix_str(os.path.basename(path))
        try:
            img = read_image(path, format="BGR")
        except (OSError, ValueError, SyntaxError) as e:  # PIL: unreadable / truncated / not an image
            logger.error(f"Cannot read {path}: {e} — skipped.")
            failures.append((path, str(e)))
            continue
        start = time.perf_counter()
        _, vis = demo.run_on_image(img)
        task, n = demo.last_drawn
        noun = {"panoptic": "panoptic segments", "instance": "instances", "semantic": "classes"}
        bar.write(f"{path}: {n} {noun[task]} drawn in {time.perf_counter() - start:.2f}s")
        if out is None:
            cv2.imshow(WINDOW_NAME, vis.get_image()[:, :, ::-1])
            if cv2.waitKey(0) == 27:  # Esc quits
                break
        else:
            os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
            if not cv2.imwrite(out, vis.get_image()[:, :, ::-1]):
                logger.error(f"Could not write {out}.")
                failures.append((path, f"could not write {out}"))
    for path, why in failures:
        logger.error(f"FAILED {path}: {why}")
    done = len(paths) - sum(1 for p, _ in failures if p in paths)
    logger.info(f"{done} image(s) drawn, {len(failures)} failed.")
    return 1 if failures else 0


def _video_writer(path, fps, width, height):
    fourcc = "MJPG" if path.lower().endswith(".avi") else "mp4v"
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), float(fps), (width, height))
    if not writer.isOpened():
        raise SystemExit(f"OpenCV cannot write video {path} with codec {fourcc}; try a .avi name.")
    return writer


def run_video(demo, args):
    if args.webcam:
        video, name = cv2.VideoCapture(0), "webcam"
    else:
        video, name = cv2.VideoCapture(args.video_input), args.video_input
    if not video.isOpened():
        logger.error(f"Cannot open video {name}.")
        return 1
    width = int(video.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(video.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = video.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(video.get(cv2.CAP_PROP_FRAME_COUNT)) if not args.webcam else 0
    if args.max_frames > 0:
        total = min(total, args.max_frames) if total > 0 else args.max_frames
    writer = None
    if args.output:
        out = args.output
        if os.path.isdir(out) or out.endswith(os.sep) or not os.path.splitext(out)[1]:
            base = "webcam" if args.webcam else os.path.splitext(os.path.basename(name))[0]
            out = os.path.join(out, base + ".mp4")
        os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
        writer = _video_writer(out, fps, width, height)
    n = 0
    try:
        for frame in tqdm.tqdm(demo.run_on_video(video), total=total or None, unit="frame"):
            n += 1
            if writer is not None:
                writer.write(frame)
            else:
                cv2.imshow(WINDOW_NAME, frame)
                if cv2.waitKey(1) == 27:
                    break
            if args.max_frames and n >= args.max_frames:
                break
    finally:
        video.release()
        if writer is not None:
            writer.release()
            logger.info(f"Wrote {n} frames to {out}.")
    if n == 0:
        logger.error(f"No frame could be read from {name}.")
        return 1
    return 0


def main(argv=None):
    args = get_parser().parse_args(argv)
    setup_logger(name="fvcore")
    setup_logger(name="demo")
    logger.info("Arguments: " + str(args))
    if not args.output:
        check_gui()
    cfg = setup_cfg(args)
    # no trained weights (empty, or the backbone's ImageNet file): name the zoo entry instead
    check_trained_weights(cfg, args.config_file, opts_flag="--opts ")
    caching = cfg.MODEL.DEVICE == "cpu" and cfg.CPU_CACHING_ALLOCATOR and not args.no_caching_allocator
    with cpu_caching_allocator(enabled=caching):
        demo = VisualizationDemo(
            cfg,
            instance_mode=ColorMode[args.color_mode],
            confidence_threshold=args.confidence_threshold,
            task=args.task,
        )
        if args.input:
            return run_images(demo, args)
        return run_video(demo, args)


if __name__ == "__main__":
    with exit_on_model_zoo_error("demo.py"):  # missing weights, failed download: one line
        sys.exit(main())
