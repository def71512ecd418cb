"""Writers of tiny samples in the *raw* formats of public datasets, for tests and smoke runs.

They produce the files a user downloads (ADE20K SceneParsing + instance annotations, Cityscapes
``gtFine``), so the preparation scripts, loaders and evaluators can be exercised end to end
without the real data. Content is simple (rectangles on bands) but the encodings are the real
ones.
"""

import contextlib
import json
import os
from typing import Callable, Dict, Iterable, List

import numpy as np
from PIL import Image

from .builtin_categories import ADE20K_150_CATEGORIES, ADE20K_INSTANCE_CATEGORIES

__all__ = ["write_ade20k_raw_sample", "write_cityscapes_sample", "registered_at", "unregister"]


def unregister(name: str) -> None:
    """Remove ``name`` from DatasetCatalog and MetadataCatalog (no error if absent)."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
    if name in MetadataCatalog.list():
        MetadataCatalog.remove(name)


@contextlib.contextmanager
def registered_at(names: Iterable[str], register_fn: Callable[[str], None], root: str):
    """Temporarily re-register the datasets ``names`` (created by ``register_fn(root)``, e.g.
    ``register_all_ade20k_panoptic``) under another datasets root; on exit they are registered
    again under the default root (``$DETECTRON2_DATASETS``)."""
    from ._common import get_datasets_root

    from .builtin_checks import add_missing_builtin_metadata, add_path_checks_to_builtin_datasets

    names = list(names)
    default_root = get_datasets_root()  # captured now: the body may change the environment
    for n in names:
        unregister(n)
    register_fn(str(root))
    add_path_checks_to_builtin_datasets()
    add_missing_builtin_metadata()
    try:
        yield
    finally:
        for n in names:
            unregister(n)
        register_fn(default_root)
        add_path_checks_to_builtin_datasets()
        add_missing_builtin_metadata()


def _rects(rng, h, w, n, min_size=10, max_size=24):
    """``n`` non-overlapping rectangles (y0, y1, x0, x1) inside the lower 3/4 of the image."""
    out = []
    for _ in range(200):
        if len(out) == n:
            break
        rh, rw = rng.integers(min_size, max_size, 2)
        y0 = int(rng.integers(h // 4, h - rh))
        x0 = int(rng.integers(0, w - rw))
        r = (y0, y0 + int(rh), x0, x0 + int(rw))
        if all(r[1] <= o[0] or o[1] <= r[0] or r[3] <= o[2] or o[3] <= r[2] for o in out):
            out.append(r)
    return out


def write_ade20k_raw_sample(
    dataset_dir: str, num_images: int = 2, seed: int = 0, height: int = 64, width: int = 96
) -> Dict[int, int]:
    """Write an ``ADEChallengeData2016``-like folder in the raw release formats.

    Files: ``images/{training,validation}/ADE_{train,val}_%08d.jpg``,
    ``annotations/.../*.png`` (uint8, 0 = void, 1..150), ``annotations_instance/.../*.png``
    (RGB, R = instance category 1..100, G = instance id), and ``categoryMapping.txt`` with a
    *shuffled* instance-category numbering (so that a converter ignoring the file fails).

    Returns:
        the instance-category -> 0-based ADE-150 id mapping written to ``categoryMapping.txt``.
    """
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(ADE20K_INSTANCE_CATEGORIES))
    mapping = {k + 1: ADE20K_INSTANCE_CATEGORIES[p]["id"] for k, p in enumerate(perm)}
    inverse = {v: k for k, v in mapping.items()}
    with open(os.path.join(_mkdir(dataset_dir), "categoryMapping.txt"), "w") as f:
        f.write("Instance100\tSceneParsing150\tName\n")
        for k, sem in mapping.items():
            f.write(f"{k}\t{sem + 1}\t{ADE20K_150_CATEGORIES[sem]['name']}\n")
    stuff = [c["id"] for c in ADE20K_150_CATEGORIES if not c["isthing"]][:6]
    things = [c["id"] for c in ADE20K_150_CATEGORIES if c["isthing"]][:6]
    colors = np.array([c["color"] for c in ADE20K_150_CATEGORIES], np.float32)
    for split, prefix in (("training", "ADE_train"), ("validation", "ADE_val")):
        dirs = [
            _mkdir(dataset_dir, sub, split)
            for sub in ("images", "annotations", "annotations_instance")
        ]
        for i in range(num_images):
            stem = f"{prefix}_{i + 1:08d}"
            sem = np.zeros((height, width), np.uint8)  # 0 = void
            cut = int(rng.integers(height // 3, 2 * height // 3))
            top, bottom = rng.choice(stuff, 2, replace=False)
            sem[:cut], sem[cut:] = top + 1, bottom + 1
            sem[cut - 1 : cut + 1, : width // 3] = 0  # a void seam
            ins = np.zeros((height, width, 3), np.uint8)
            rects = _rects(rng, height, width, 4)
            for k, (y0, y1, x0, x1) in enumerate(rects):
                cat = int(rng.choice(things))
                sem[y0:y1, x0:x1] = cat + 1
                if k == len(rects) - 1 and len(rects) > 2:
                    continue  # a thing region without instance annotation -> void in panoptic
                ins[y0:y1, x0:x1, 0] = inverse[cat]
                ins[y0:y1, x0:x1, 1] = k + 1
            image = colors[np.maximum(sem.astype(int) - 1, 0)] + rng.normal(
                0, 8, (height, width, 3)
            )
            Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(
                os.path.join(dirs[0], stem + ".jpg"), quality=95
            )
            Image.fromarray(sem).save(os.path.join(dirs[1], stem + ".png"))
            Image.fromarray(ins).save(os.path.join(dirs[2], stem + ".png"))
    return mapping


def write_cityscapes_sample(
    root: str,
    split: str = "val",
    num_images: int = 2,
    seed: int = 0,
    height: int = 128,
    width: int = 256,
) -> List[str]:
    """Write ``root/cityscapes/{leftImg8bit,gtFine}/<split>/<city>/...`` in the Cityscapes format
    (``_gtFine_labelIds.png``, ``_gtFine_instanceIds.png``, ``_gtFine_labelTrainIds.png``,
    ``_gtFine_polygons.json``, ``_leftImg8bit.png``). Returns the image paths."""
    from cityscapesscripts.helpers.labels import name2label

    rng = np.random.default_rng(seed)
    city = "frankfurt"
    img_dir = _mkdir(root, "cityscapes", "leftImg8bit", split, city)
    gt_dir = _mkdir(root, "cityscapes", "gtFine", split, city)
    paths = []
    for i in range(num_images):
        stem = f"{city}_000000_{i:06d}"
        label = np.zeros((height, width), np.uint8)
        inst = np.zeros((height, width), np.int32)
        objects = []

        def add(name, y0, y1, x0, x1, instance=None):
            lab = name2label[name]
            label[y0:y1, x0:x1] = lab.id
            inst[y0:y1, x0:x1] = lab.id * 1000 + instance if instance is not None else lab.id
            poly = [[x0, y0], [x1 - 1, y0], [x1 - 1, y1 - 1], [x0, y1 - 1]]
            objects.append({"label": name, "polygon": poly})

        add("sky", 0, height // 4, 0, width)
        add("building", height // 4, height // 2, 0, width)
        add("road", height // 2, height, 0, width)
        for k, (y0, y1, x0, x1) in enumerate(_rects(rng, height, width, 4, 14, 30)):
            add(["car", "person"][k % 2], y0, y1, x0, x1, instance=k)
        train = np.full_like(label, 255)
        for lab in name2label.values():
            if lab.id >= 0:
                train[label == lab.id] = lab.trainId if lab.trainId >= 0 else 255
        colors = np.array([name2label[o["label"]].color for o in objects[:3]], np.float32).mean(0)
        image = np.clip(rng.normal(colors, 10, (height, width, 3)), 0, 255).astype(np.uint8)
        base = os.path.join(gt_dir, stem + "_gtFine_")
        Image.fromarray(label).save(base + "labelIds.png")
        Image.fromarray(inst.astype(np.uint16)).save(base + "instanceIds.png")
        Image.fromarray(train).save(base + "labelTrainIds.png")
        with open(base + "polygons.json", "w") as f:
            json.dump({"imgHeight": height, "imgWidth": width, "objects": objects}, f)
        path = os.path.join(img_dir, stem + "_leftImg8bit.png")
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


def _mkdir(*parts) -> str:
    path = os.path.join(*parts)
    os.makedirs(path, exist_ok=True)
    return path
