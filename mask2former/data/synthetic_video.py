"""A small synthetic *video* instance segmentation dataset in the real YouTube-VIS format.

Each clip shows 1-4 moving, rotating, occluding shapes of the synthetic thing classes (circle,
square, triangle, star: the classes, colours and textures of :mod:`mask2former.data.synthetic`)
over a textured stuff background seen by a slowly panning camera. Objects may enter or leave
the frame (or pass through it), so some frames of a track have no segmentation (``None``), and
a later shape hides the parts of earlier ones it covers (heavily occluded objects are absent in
that frame). Output is deterministic given the seed.

Layout written under ``<root>/synthetic_ytvis/`` (as ``ytvis_2019/``)::

    train.json, valid.json                       YouTube-VIS JSON (videos, annotations, categories)
    train/JPEGImages/<video>/<frame>.jpg         frames, named like YouTube-VIS (00000, 00005, ...)
    valid/JPEGImages/<video>/<frame>.jpg

Segmentations are uncompressed RLE (``{"size": [h, w], "counts": [run lengths]}``) as in the real
``train.json`` (``--rle compressed`` writes COCO compressed strings instead). Unlike the real
``valid.json``, ours has annotations, so the split can be scored offline.

Command line::

    python -m mask2former.data.synthetic_video --root datasets --num-train 48 --num-val 8 --seed 0

The splits are registered as ``synthetic_ytvis_{train,val}`` (see
:func:`mask2former.data.datasets.register_synthetic_ytvis`).
"""

import argparse
import json
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image
from tqdm import tqdm

from .synthetic import (
    MIN_INSTANCE_AREA,
    SYNTHETIC_CATEGORIES,
    draw_shape,
    jitter_color,
    render_stuff_background,
    thing_texture,
)

__all__ = [
    "SYNTHETIC_YTVIS_CATEGORIES",
    "render_clip",
    "mask_to_rle",
    "write_ytvis_split",
    "generate_synthetic_ytvis",
    "main",
]

SYNTHETIC_YTVIS_CATEGORIES = [
    {"id": c["id"], "name": c["name"], "supercategory": c["supercategory"]}
    for c in SYNTHETIC_CATEGORIES
    if c["isthing"]
]
_THINGS = [c for c in SYNTHETIC_CATEGORIES if c["isthing"]]
_SPLITS = {"train": ("train", 0), "val": ("valid", 1)}  # split -> (folder/JSON name, rng stream)
MIN_VISIBLE_AREA = MIN_INSTANCE_AREA // 2  # visible pixels for an object to be present in a frame
_MOTIONS = ("inside", "enter", "leave", "cross")


def _outside_point(rng, h: int, w: int, margin: float) -> np.ndarray:
    """A point ``margin`` pixels beyond a random border of the [h, w] frame."""
    side = int(rng.integers(0, 4))
    along = rng.uniform(0.2, 0.8)
    if side == 0:
        return np.array([-margin, along * h])
    if side == 1:
        return np.array([w + margin, along * h])
    if side == 2:
        return np.array([along * w, -margin])
    return np.array([along * w, h + margin])


def _inside_point(rng, h: int, w: int, size: float) -> np.ndarray:
    pad_x, pad_y = min(size, w / 2 - 1), min(size, h / 2 - 1)
    return np.array([rng.uniform(pad_x, w - pad_x), rng.uniform(pad_y, h - pad_y)])


def _sample_object(rng, h: int, w: int, motion: str) -> Dict:
    cat = _THINGS[int(rng.integers(0, len(_THINGS)))]
    size = rng.uniform(0.1, 0.2) * min(h, w)
    margin = 1.5 * size  # every shape lies within 1.3 * size of its centre
    inside = [_inside_point(rng, h, w, size) for _ in range(2)]
    start = _outside_point(rng, h, w, margin) if motion in ("enter", "cross") else inside[0]
    end = _outside_point(rng, h, w, margin) if motion in ("leave", "cross") else inside[1]
    color = jitter_color(rng, cat["color"], 30)
    return {
        "category": cat,
        "size": size,
        "scale_change": rng.uniform(-0.2, 0.2),
        "start": start,
        "end": end,
        "rot": rng.uniform(0, 2 * np.pi),
        "spin": rng.uniform(-0.15, 0.15),
        "texture": thing_texture(rng, color, h, w),
    }


def render_clip(rng: np.random.Generator, num_frames: int, height: int, width: int):
    """Render one clip.

    Returns:
        frames: list of ``num_frames`` [H, W, 3] uint8 RGB images;
        tracks: list of ``{"category_id": dataset id, "masks": [[H, W] bool or None per frame]}``,
            each present (visible area >= MIN_VISIBLE_AREA) in at least one frame; later tracks
            occlude earlier ones.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    pan = int(rng.integers(0, max(width // 8, 1)))  # camera pan over the clip, in pixels
    background, _, _ = render_stuff_background(rng, height, width + pan)
    pan_dir = 1 if rng.random() < 0.5 else -1
    # the first object stays in view; the others may enter, leave or cross the frame
    motions = ["inside"] + [
        _MOTIONS[int(rng.integers(0, len(_MOTIONS)))] for _ in range(int(rng.integers(0, 4)))
    ]
    objects = [_sample_object(rng, height, width, m) for m in motions]
    frames, owner = [], []
    for t in range(num_frames):
        a = t / max(num_frames - 1, 1)
        x0 = int(round(pan * (a if pan_dir > 0 else 1 - a)))
        image = background[:, x0 : x0 + width].copy()
        top = np.full((height, width), -1, np.int64)  # index of the visible object per pixel
        for k, obj in enumerate(objects):
            cx, cy = (1 - a) * obj["start"] + a * obj["end"]
            size = obj["size"] * (1 + obj["scale_change"] * a)
            rot = obj["rot"] + obj["spin"] * t
            mask = draw_shape(obj["category"]["name"], size, cx, cy, rot, height, width) > 0
            dx, dy = np.round(np.array([cx, cy]) - obj["start"]).astype(int)
            tex = np.roll(obj["texture"], (dy, dx), axis=(0, 1))  # moves with the object
            image[mask] = tex[mask]
            top[mask] = k
        image += rng.normal(0, 3, image.shape).astype(np.float32)  # sensor noise
        frames.append(np.clip(image, 0, 255).astype(np.uint8))
        owner.append(top)
    tracks = []
    for k, obj in enumerate(objects):
        masks = []
        for top in owner:
            visible = top == k
            masks.append(visible if visible.sum() >= MIN_VISIBLE_AREA else None)
        if any(m is not None for m in masks):
            tracks.append({"category_id": obj["category"]["id"], "masks": masks})
    return frames, tracks


def mask_to_rle(mask: np.ndarray, compressed: bool) -> Dict:
    """COCO RLE of a [H, W] binary mask: ``counts`` a string (compressed) or the list of run
    lengths in column-major order starting with a run of zeros (uncompressed, as YouTube-VIS)."""
    if compressed:
        rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
    flat = mask.astype(np.uint8).reshape(-1, order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0] + counts
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def write_ytvis_split(
    out_dir: str,
    folder: str,
    videos: Sequence[Dict],
    categories: List[Dict],
    *,
    rle_format: str = "uncompressed",
    info: Optional[Dict] = None,
) -> str:
    """Write ``out_dir/<folder>.json`` and ``out_dir/<folder>/JPEGImages/<video>/<frame>.jpg``.

    Args:
        videos: ``{"name": folder name, "frames": [[H, W, 3] uint8 RGB], "tracks": [{
            "category_id", "masks": [[H, W] bool or None per frame]}]}`` (as :func:`render_clip`).
        categories: ``[{"id", "name", ...}]`` written as the JSON's categories.
        rle_format: "uncompressed" (list counts, like YouTube-VIS train.json) or "compressed".
    Returns:
        the JSON path.
    """
    if rle_format not in ("uncompressed", "compressed"):
        raise ValueError(f"rle_format must be 'uncompressed' or 'compressed', got {rle_format!r}")
    vid_entries, anns = [], []
    for vid_id, video in enumerate(videos, start=1):
        frame_dir = os.path.join(out_dir, folder, "JPEGImages", video["name"])
        os.makedirs(frame_dir, exist_ok=True)
        names = []
        for t, frame in enumerate(video["frames"]):
            names.append(f"{video['name']}/{5 * t:05d}.jpg")  # YouTube-VIS: every 5th frame
            Image.fromarray(frame).save(
                os.path.join(out_dir, folder, "JPEGImages", names[-1]), quality=95
            )
        h, w = video["frames"][0].shape[:2]
        vid_entries.append(
            {"id": vid_id, "width": w, "height": h, "length": len(names), "file_names": names}
        )
        for track in video["tracks"]:
            segs, boxes, areas = [], [], []
            for m in track["masks"]:
                if m is None:
                    segs.append(None), boxes.append(None), areas.append(None)
                    continue
                ys, xs = np.nonzero(m)
                segs.append(mask_to_rle(m, rle_format == "compressed"))
                boxes.append(
                    [int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1]
                )
                areas.append(int(len(ys)))
            anns.append(
                {
                    "id": len(anns) + 1,
                    "video_id": vid_id,
                    "category_id": track["category_id"],
                    "iscrowd": 0,
                    "height": h,
                    "width": w,
                    "length": 1,
                    "segmentations": segs,
                    "bboxes": boxes,
                    "areas": areas,
                }
            )
    json_file = os.path.join(out_dir, f"{folder}.json")
    with open(json_file, "w") as f:
        json.dump(
            {
                "info": info or {},
                "licenses": [],
                "videos": vid_entries,
                "annotations": anns,
                "categories": categories,
            },
            f,
        )
    return json_file


def generate_synthetic_ytvis(
    root: str,
    num_train: int = 48,
    num_val: int = 8,
    seed: int = 0,
    height: int = 192,
    width: int = 256,
    min_frames: int = 6,
    max_frames: int = 10,
    rle_format: str = "uncompressed",
) -> str:
    """Write the synthetic video dataset to ``<root>/synthetic_ytvis`` and return that folder.

    Clip ``i`` of a split has ``min_frames``..``max_frames`` frames and is rendered from the seed
    sequence (seed, split, i), so output is byte-identical for the same arguments.
    """
    if min(height, width) < 32:
        raise ValueError(f"height and width must be >= 32, got {height}x{width}")
    if not 1 <= min_frames <= max_frames:
        raise ValueError(f"need 1 <= min_frames <= max_frames, got {min_frames}, {max_frames}")
    out_dir = os.path.join(root, "synthetic_ytvis")
    info = {"description": "Mask2Former synthetic YouTube-VIS-format dataset", "seed": seed}
    for split, num in (("train", num_train), ("val", num_val)):
        if num <= 0:
            continue
        folder, stream = _SPLITS[split]
        videos = []
        for i in tqdm(range(num), desc=f"synthetic_ytvis {split}", unit="clip"):
            rng = np.random.default_rng([seed, stream, i])
            length = int(rng.integers(min_frames, max_frames + 1))
            frames, tracks = render_clip(rng, length, height, width)
            videos.append({"name": f"{split}{i:05d}", "frames": frames, "tracks": tracks})
        write_ytvis_split(
            out_dir, folder, videos, SYNTHETIC_YTVIS_CATEGORIES, rle_format=rle_format, info=info
        )
    return out_dir


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--root",
        default=os.getenv("DETECTRON2_DATASETS", "datasets"),
        help="datasets root; output goes to ROOT/synthetic_ytvis",
    )
    parser.add_argument("--num-train", type=int, default=48)
    parser.add_argument("--num-val", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--min-frames", type=int, default=6)
    parser.add_argument("--max-frames", type=int, default=10)
    parser.add_argument("--rle", choices=("uncompressed", "compressed"), default="uncompressed")
    args = parser.parse_args(argv)
    out = generate_synthetic_ytvis(
        args.root,
        args.num_train,
        args.num_val,
        args.seed,
        args.height,
        args.width,
        args.min_frames,
        args.max_frames,
        args.rle,
    )
    print(f"Wrote synthetic YouTube-VIS dataset to {out}")
    return out


if __name__ == "__main__":
    main()
