#!/usr/bin/env python
"""Mask2Former-VIS demo: segment and track objects through a video, one colour per track.

    python demo/demo_video.py --config-file configs/youtubevis_2019/r50.yaml \\
        --input frames_dir/ --output out/ --opts MODEL.WEIGHTS mask2former://youtubevis_2019/r50
    python demo/demo_video.py --config-file ... --input clip.mp4 --output out/

The whole video is one clip (use ``--opts MODEL.MASK_FORMER.TEST.WINDOW_SIZE 30`` for long videos).
Every track whose score is at least ``--confidence-threshold`` is drawn over every frame where it
is present, in a colour that stays the same for the whole video, with its class and score.
Writes ``out/frames/<frame>.jpg`` and ``out/video.mp4``. A frame that cannot be read, or a video
file that cannot be opened, is named and gives exit status 1.
"""
import argparse
import logging
import os
import sys

import cv2

try:
    import mask2former  # noqa: F401
except ModuleNotFoundError as e:  # running from a checkout without `pip install -e .`
    if e.name != "mask2former":
        raise
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mask2former.config import (  # noqa: E402
    add_maskformer2_config,
    add_maskformer2_video_config,
    merge_config_checked,
)
from mask2former.data.robust_loading import BadSampleError, read_image  # noqa: E402
from mask2former.engine.predictor import VideoPredictor  # noqa: E402
from mask2former.model_zoo import check_trained_weights, exit_on_model_zoo_error  # noqa: E402
from mask2former.utils.visualizer import draw_tracks  # noqa: E402

from detectron2.config import get_cfg  # noqa: E402
from detectron2.data import MetadataCatalog  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
logger = logging.getLogger("demo_video")


class InputError(RuntimeError):
    """An input that cannot be read; the message names it."""


def get_parser():
    parser = argparse.ArgumentParser(description="Mask2Former-VIS video demo")
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--input", required=True, metavar="PATH",
                        help="a folder of frames (sorted by name) or a video file")
    parser.add_argument("--output", required=True, metavar="DIR",
                        help="folder for frames/ and video.mp4 (created if missing)")
    parser.add_argument("--confidence-threshold", type=float, default=0.5,
                        help="tracks with a lower score are not drawn")
    parser.add_argument("--fps", type=float, default=0,
                        help="frame rate of video.mp4 (default: the input video's, else 10)")
    parser.add_argument("--opts", default=[], nargs=argparse.REMAINDER,
                        help="config overrides as KEY VALUE pairs, e.g. MODEL.WEIGHTS model.pkl")
    return parser


def setup_cfg(args):
    cfg = get_cfg()
    add_maskformer2_config(cfg)
    add_maskformer2_video_config(cfg)
    merge_config_checked(cfg, args.config_file, args.opts)
    if cfg.MODEL.DEVICE.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    return cfg


def read_frames(path):
    """(BGR frames, their names, frames per second or 0) of a folder of images or a video file."""
    if os.path.isdir(path):
        names = sorted(f for f in os.listdir(path) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not names:
            raise InputError(f"{path}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in the folder")
        frames = []
        for n in names:
            try:
                frames.append(read_image(os.path.join(path, n), format="BGR"))
            except BadSampleError as e:
                raise InputError(f"frame {e.file_name} cannot be read: {e.reason}") from None
        return frames, [os.path.splitext(n)[0] for n in names], 0.0
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file or folder")
    video = cv2.VideoCapture(path)
    frames = []
    while video.isOpened():
        ok, frame = video.read()
        if not ok:
            break
        frames.append(frame)
    fps = video.get(cv2.CAP_PROP_FPS) or 0.0
    video.release()
    if not frames:
        raise InputError(f"{path}: not a readable video (OpenCV decoded no frame)")
    return frames, [f"{i:05d}" for i in range(len(frames))], fps


def write_outputs(drawn, names, out_dir, fps):
    frames_dir = os.path.join(out_dir, "frames")
    os.makedirs(frames_dir, exist_ok=True)
    for image, name in zip(drawn, names):
        cv2.imwrite(os.path.join(frames_dir, name + ".jpg"), image)
    h, w = drawn[0].shape[:2]
    path = os.path.join(out_dir, "video.mp4")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps or 10.0, (w, h))
    for image in drawn:
        writer.write(image)
    writer.release()
    return frames_dir, path


def main(argv=None):
    args = get_parser().parse_args(argv)
    setup_logger(name="demo_video")
    cfg = setup_cfg(args)
    check_trained_weights(cfg, args.config_file, opts_flag="--opts ")
    try:
        frames, names, fps = read_frames(args.input)
    except InputError as e:
        print(f"demo_video.py: error: {e}", file=sys.stderr)
        return 1
    predictor = VideoPredictor(cfg)
    metadata = MetadataCatalog.get(cfg.DATASETS.TEST[0] if len(cfg.DATASETS.TEST) else "__unused")
    predictions = predictor(frames)
    drawn, keep = draw_tracks(frames, predictions, metadata, args.confidence_threshold)
    frames_dir, video = write_outputs(drawn, names, args.output, args.fps or fps)
    logger.info("%d frames, %d tracks drawn (score >= %.2f) -> %s and %s", len(frames), len(keep),
                args.confidence_threshold, frames_dir, video)
    return 0


if __name__ == "__main__":
    with exit_on_model_zoo_error("demo_video.py"):  # missing weights, failed download: one line
        sys.exit(main())
