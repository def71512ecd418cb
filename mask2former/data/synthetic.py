"""A small synthetic panoptic dataset in the real COCO panoptic format, for quick runs and tests.

Each image has textured background bands of "stuff" classes (sky, wall, grass) and a few
possibly-occluding "thing" instances (circles, squares, triangles, stars). Every class has a
distinctive shape *and* colour family, so a small model learns it in minutes on a CPU, while
size, colour jitter, texture, rotation and occlusion give variety. Output is deterministic given
the seed.

Layout written under ``<root>/synthetic/`` (same conventions as COCO panoptic)::

    images/{train,val}/000000.jpg
    panoptic_{train,val}/000000.png            RGB-encoded segment ids (id = R + 256 G + 256² B)
    panoptic_semseg_{train,val}/000000.png     contiguous class ids, 255 = void
    annotations/panoptic_{train,val}.json      COCO panoptic JSON (categories with "isthing")
    annotations/instances_{train,val}.json     COCO instance JSON (RLE masks of the things)

Command line::

    python -m mask2former.data.synthetic --root datasets --num-train 200 --num-val 50 --seed 0

The datasets are registered as ``synthetic_{panoptic,instance,sem_seg}_{train,val}`` (see
:func:`mask2former.data.datasets.register_synthetic`).
"""

import argparse
import json
import os
from typing import Dict, List, Tuple

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from .datasets.panoptic import id2rgb, panoptic_to_instance_annotations, panoptic_to_semantic

__all__ = [
    "SYNTHETIC_CATEGORIES",
    "generate_synthetic_dataset",
    "render_sample",
    "render_stuff_background",
    "sample_shape_params",
    "draw_shape",
    "thing_texture",
    "jitter_color",
    "main",
]

# Things first (contiguous ids 0..3), then stuff (4..6). Dataset ids are deliberately not
# contiguous, like COCO's, so that id mappings are exercised.
SYNTHETIC_CATEGORIES = [
    {"id": 1, "name": "circle", "isthing": 1, "color": [220, 40, 40], "supercategory": "shape"},
    {"id": 2, "name": "square", "isthing": 1, "color": [30, 60, 200], "supercategory": "shape"},
    {"id": 3, "name": "triangle", "isthing": 1, "color": [240, 200, 20], "supercategory": "shape"},
    {"id": 5, "name": "star", "isthing": 1, "color": [200, 40, 220], "supercategory": "shape"},
    {"id": 11, "name": "sky", "isthing": 0, "color": [135, 200, 240], "supercategory": "scene"},
    {"id": 12, "name": "wall", "isthing": 0, "color": [150, 130, 110], "supercategory": "scene"},
    {"id": 13, "name": "grass", "isthing": 0, "color": [60, 160, 60], "supercategory": "scene"},
]
_THINGS = [c for c in SYNTHETIC_CATEGORIES if c["isthing"]]
_STUFF = [c for c in SYNTHETIC_CATEGORIES if not c["isthing"]]
_SPLIT_INDEX = {"train": 0, "val": 1}
MIN_INSTANCE_AREA = 40  # visible pixels; smaller (heavily occluded) instances are dropped


def jitter_color(rng: np.random.Generator, base, amount: int = 30) -> np.ndarray:
    """``base`` RGB plus uniform noise in [-amount, amount] per channel (float32 [3])."""
    return np.clip(np.asarray(base, dtype=np.float32) + rng.uniform(-amount, amount, 3), 0, 255)


def _stuff_texture(rng, name: str, h: int, w: int) -> np.ndarray:
    """[h,w,3] float32 texture of a stuff class."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = jitter_color(rng, next(c["color"] for c in _STUFF if c["name"] == name), 15)
    if name == "sky":  # vertical gradient + soft blobs
        grad = (yy / max(h - 1, 1))[..., None] * np.array([40, 25, 5], np.float32)
        soft = cv2.GaussianBlur(rng.normal(0, 25, (h, w)).astype(np.float32), (0, 0), 6)
        return base + grad + soft[..., None]
    if name == "grass":  # high-frequency green noise with vertical streaks
        noise = rng.normal(0, 22, (h, w)).astype(np.float32)
        streak = 12 * np.sin(xx * rng.uniform(0.8, 1.6) + rng.uniform(0, 6.28))
        return base + (noise + streak)[..., None] * np.array([0.6, 1.0, 0.5], np.float32)
    # wall: bricks
    bh, bw = int(rng.integers(8, 14)), int(rng.integers(18, 30))
    row = (yy // bh).astype(int)
    shifted = xx + (row % 2) * (bw // 2)
    mortar = ((yy % bh) < 2) | ((shifted % bw) < 2)
    tex = base + rng.normal(0, 6, (h, w, 1)).astype(np.float32)
    tex[mortar] = base * 0.55
    return tex


def thing_texture(rng, color: np.ndarray, h: int, w: int) -> np.ndarray:
    """[h,w,3] float32 texture of a thing: plain, striped or speckled ``color``."""
    kind = rng.integers(0, 3)
    tex = np.broadcast_to(color, (h, w, 3)).astype(np.float32).copy()
    if kind == 1:  # stripes
        yy, xx = np.mgrid[0:h, 0:w]
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(5, 10)
        stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period) > 0
        tex[stripes] *= 0.7
    elif kind == 2:  # speckle
        tex += rng.normal(0, 18, (h, w, 1)).astype(np.float32)
    return tex


def sample_shape_params(rng: np.random.Generator, h: int, w: int) -> Tuple[float, ...]:
    """Random (size, cx, cy, rot) of a thing shape that fits in an [h, w] image; ``size`` is
    its "radius" in pixels, ``rot`` its rotation in radians."""
    size = rng.uniform(0.06, 0.25) * min(h, w)
    cx, cy = rng.uniform(size * 0.5, w - size * 0.5), rng.uniform(size * 0.5, h - size * 0.5)
    rot = rng.uniform(0, 2 * np.pi)
    return size, cx, cy, rot


def draw_shape(name: str, size: float, cx: float, cy: float, rot: float, h: int, w: int):
    """Binary mask [h, w] uint8 of the thing shape ``name`` (circle, square, triangle, star)
    centred at (cx, cy), which may lie outside the image (the shape is clipped)."""
    mask = np.zeros((h, w), np.uint8)
    if name == "circle":
        cv2.circle(mask, (int(cx), int(cy)), max(int(size), 3), 1, -1)
        return mask
    if name == "square":
        n, radii = 4, [size * 1.1] * 4
    elif name == "triangle":
        n, radii = 3, [size * 1.3] * 3
    else:  # star
        n, radii = 10, [size * 1.3 if k % 2 == 0 else size * 0.55 for k in range(10)]
    angles = rot + np.arange(n) * 2 * np.pi / n
    pts = np.stack(
        [cx + np.array(radii) * np.cos(angles), cy + np.array(radii) * np.sin(angles)], 1
    )
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return mask


def _shape_mask(rng, name: str, h: int, w: int) -> np.ndarray:
    """Binary mask [h,w] of a random instance of a thing shape."""
    return draw_shape(name, *sample_shape_params(rng, h, w), h, w)


def render_stuff_background(rng: np.random.Generator, height: int, width: int):
    """Textured background of 2-3 horizontal "stuff" bands with wavy borders (sky on top).

    Returns:
        image [H,W,3] float32 RGB, segment ids [H,W] int64 (0 = void seams between bands) and
        the stuff segments_info (dataset category ids, without area/bbox).
    """
    image = np.zeros((height, width, 3), np.float32)
    pan = np.zeros((height, width), np.int64)
    segments: List[Dict] = []
    names = ["sky", "wall", "grass"]
    if rng.random() < 0.3:
        names.pop(int(rng.integers(0, 3)))
    cuts = np.sort(rng.uniform(0.2, 0.8, len(names) - 1)) * height
    xx = np.arange(width, dtype=np.float32)
    yy = np.arange(height, dtype=np.float32)[:, None]
    band = np.zeros((height, width), np.int64)
    for k, cut in enumerate(cuts):
        wave = cut + rng.uniform(3, 12) * np.sin(
            xx * rng.uniform(0.02, 0.08) + rng.uniform(0, 6.28)
        )
        band[yy >= wave[None, :]] = k + 1
    for k, name in enumerate(names):
        m = band == k
        if m.sum() < MIN_INSTANCE_AREA:
            continue
        cat = next(c for c in _STUFF if c["name"] == name)
        image[m] = _stuff_texture(rng, name, height, width)[m]
        seg_id = cat["id"] * 1000
        pan[m] = seg_id
        segments.append({"id": seg_id, "category_id": cat["id"], "iscrowd": 0})
    # thin void seams between bands (2 px), as in real annotations
    seam = np.zeros_like(band, dtype=bool)
    seam[1:] |= band[1:] != band[:-1]
    seam = cv2.dilate(seam.astype(np.uint8), np.ones((2, 1), np.uint8)).astype(bool)
    pan[seam] = 0
    return image, pan, segments


def render_sample(rng: np.random.Generator, height: int, width: int):
    """Render one sample.

    Returns:
        image [H,W,3] uint8 RGB, segment ids [H,W] int64 (0 = void), segments_info list with
        dataset category ids (COCO panoptic format, without area/bbox).
    """
    image, pan, segments = render_stuff_background(rng, height, width)

    # Things: drawn in order, later ones occlude earlier ones.
    placed = []
    for k in range(int(rng.integers(2, 7))):
        cat = _THINGS[int(rng.integers(0, len(_THINGS)))]
        mask = _shape_mask(rng, cat["name"], height, width).astype(bool)
        color = jitter_color(rng, cat["color"], 30)
        image[mask] = thing_texture(rng, color, height, width)[mask]
        seg_id = cat["id"] * 1000 + k + 1
        pan[mask] = seg_id
        placed.append((seg_id, cat["id"]))
    for seg_id, cat_id in placed:
        visible = pan == seg_id
        if visible.sum() < MIN_INSTANCE_AREA:
            pan[visible] = 0  # too occluded: void, like unannotated fragments
            continue
        segments.append({"id": seg_id, "category_id": cat_id, "iscrowd": 0})
    # drop stuff segments that became invisible
    present = set(np.unique(pan).tolist())
    segments = [s for s in segments if s["id"] in present]

    image += rng.normal(0, 3, image.shape).astype(np.float32)  # sensor noise
    return np.clip(image, 0, 255).astype(np.uint8), pan, segments


def _bbox_area(pan: np.ndarray, seg_id: int) -> Tuple[List[int], int]:
    ys, xs = np.nonzero(pan == seg_id)
    bbox = [
        int(xs.min()),
        int(ys.min()),
        int(xs.max() - xs.min() + 1),
        int(ys.max() - ys.min() + 1),
    ]
    return bbox, int(len(ys))


def _generate_split(out_dir: str, split: str, num: int, seed: int, size: int) -> None:
    img_dir = os.path.join(out_dir, "images", split)
    pan_dir = os.path.join(out_dir, f"panoptic_{split}")
    sem_dir = os.path.join(out_dir, f"panoptic_semseg_{split}")
    ann_dir = os.path.join(out_dir, "annotations")
    for d in (img_dir, pan_dir, sem_dir, ann_dir):
        os.makedirs(d, exist_ok=True)
    to_contiguous = {c["id"]: i for i, c in enumerate(SYNTHETIC_CATEGORIES)}
    thing_ids = {c["id"] for c in _THINGS}
    images, pan_anns, ins_anns = [], [], []
    for i in tqdm(range(num), desc=f"synthetic {split}", unit="img"):
        rng = np.random.default_rng([seed, _SPLIT_INDEX[split], i])
        image, pan, segments = render_sample(rng, size, size)
        stem = f"{i:06d}"
        image_id = i + 1
        Image.fromarray(image).save(os.path.join(img_dir, stem + ".jpg"), quality=95)
        Image.fromarray(id2rgb(pan)).save(os.path.join(pan_dir, stem + ".png"))
        sem = panoptic_to_semantic(pan, segments, to_contiguous)
        Image.fromarray(sem).save(os.path.join(sem_dir, stem + ".png"))
        for s in segments:
            s["bbox"], s["area"] = _bbox_area(pan, s["id"])
        images.append({"id": image_id, "file_name": stem + ".jpg", "height": size, "width": size})
        pan_anns.append(
            {"image_id": image_id, "file_name": stem + ".png", "segments_info": segments}
        )
        ins_anns += panoptic_to_instance_annotations(
            pan, segments, thing_ids, image_id, start_id=len(ins_anns) + 1
        )
    info = {"description": "Mask2Former synthetic panoptic dataset", "seed": seed}
    with open(os.path.join(ann_dir, f"panoptic_{split}.json"), "w") as f:
        json.dump(
            {
                "info": info,
                "images": images,
                "annotations": pan_anns,
                "categories": SYNTHETIC_CATEGORIES,
            },
            f,
        )
    with open(os.path.join(ann_dir, f"instances_{split}.json"), "w") as f:
        json.dump(
            {"info": info, "images": images, "annotations": ins_anns, "categories": _THINGS}, f
        )


def generate_synthetic_dataset(
    root: str, num_train: int = 200, num_val: int = 50, seed: int = 0, image_size: int = 256
) -> str:
    """Write the synthetic dataset to ``<root>/synthetic`` and return that directory."""
    if image_size < 32:
        raise ValueError(f"image_size must be >= 32, got {image_size}")
    out_dir = os.path.join(root, "synthetic")
    for split, num in (("train", num_train), ("val", num_val)):
        if num > 0:
            _generate_split(out_dir, split, num, seed, image_size)
    return out_dir


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--root",
        default=os.getenv("DETECTRON2_DATASETS", "datasets"),
        help="datasets root; output goes to ROOT/synthetic",
    )
    parser.add_argument("--num-train", type=int, default=200)
    parser.add_argument("--num-val", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=256)
    args = parser.parse_args(argv)
    out = generate_synthetic_dataset(
        args.root, args.num_train, args.num_val, args.seed, args.image_size
    )
    print(f"Wrote synthetic dataset to {out}")
    return out


if __name__ == "__main__":
    main()
