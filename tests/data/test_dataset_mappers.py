"""Training mappers on the real COCO panoptic sample and on generated ADE20K / Cityscapes files.

Every dataset here is read by a real loader (Detectron2's or the project's) from files written
in the dataset's own on-disk format, then passed through the mapper chosen by
INPUT.DATASET_MAPPER_NAME.
"""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from detectron2.data import MetadataCatalog
from detectron2.data import transforms as T
from detectron2.data.datasets import load_coco_json, load_sem_seg
from detectron2.data.datasets.cityscapes import load_cityscapes_instances
from detectron2.data.datasets.cityscapes_panoptic import load_cityscapes_panoptic
from detectron2.data.datasets.coco_panoptic import load_coco_panoptic_json

from mask2former.data.dataset_mappers import (
    DATASET_MAPPERS,
    ColorAugSSDTransform,
    build_dataset_mapper,
)
from mask2former.data.datasets.panoptic import load_panoptic_json, rgb2id
from mask2former.data.datasets.register_ade20k_panoptic import get_ade20k_panoptic_metadata

from helpers import COCO_SAMPLE, make_cfg

_TEST_DATASET = "_test_mappers_meta"  # only metadata (ignore_label) is looked up by the mappers


def _id2rgb(ids: np.ndarray) -> np.ndarray:
    ids = ids.astype(np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)


def _cfg(mapper, *, crop=(48, 48), pad=64, lsj_size=64):
    cfg = make_cfg()
    if _TEST_DATASET not in MetadataCatalog.list():
        MetadataCatalog.get(_TEST_DATASET).set(ignore_label=255)
    cfg.DATASETS.TRAIN = (_TEST_DATASET,)
    cfg.INPUT.DATASET_MAPPER_NAME = mapper
    cfg.INPUT.FORMAT = "RGB"
    cfg.INPUT.MIN_SIZE_TRAIN = (56, 64, 72)
    cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING = "choice"
    cfg.INPUT.MAX_SIZE_TRAIN = 128
    cfg.INPUT.CROP.ENABLED = crop is not None
    if crop is not None:
        cfg.INPUT.CROP.TYPE = "absolute"
        cfg.INPUT.CROP.SIZE = crop
    cfg.INPUT.SIZE_DIVISIBILITY = pad
    cfg.INPUT.IMAGE_SIZE = lsj_size
    cfg.INPUT.MIN_SCALE = 0.1
    cfg.INPUT.MAX_SCALE = 2.0
    return cfg


def _check_common(out, *, pad=None):
    image, inst = out["image"], out["instances"]
    assert image.dtype == torch.uint8 and image.ndim == 3 and image.shape[0] == 3
    h, w = image.shape[-2:]
    if pad:
        assert (h, w) == (pad, pad)
    assert inst.image_size == (h, w)
    assert inst.gt_classes.dtype == torch.int64 and inst.gt_classes.ndim == 1
    assert isinstance(inst.gt_masks, torch.Tensor) and inst.gt_masks.dtype == torch.bool
    assert inst.gt_masks.shape == (len(inst), h, w)
    if "sem_seg" in out:
        assert out["sem_seg"].dtype == torch.int64 and out["sem_seg"].shape == (h, w)


# --------------------------------------------------------------------------------------------
# real COCO panoptic sample
# --------------------------------------------------------------------------------------------
def _coco_meta():
    with open(os.path.join(COCO_SAMPLE, "panoptic_coco_categories.json")) as f:
        cats = json.load(f)
    thing = {c["id"]: i for i, c in enumerate(cats) if c["isthing"]}
    stuff = {c["id"]: i for i, c in enumerate(cats)}
    return {"thing_dataset_id_to_contiguous_id": thing, "stuff_dataset_id_to_contiguous_id": stuff}


@pytest.fixture(scope="module")
def coco_panoptic_dicts():
    dicts = load_coco_panoptic_json(
        os.path.join(COCO_SAMPLE, "panoptic_examples.json"),
        os.path.join(COCO_SAMPLE, "input_images"),
        os.path.join(COCO_SAMPLE, "panoptic_examples"),
        _coco_meta(),
    )
    assert len(dicts) == 2
    for (
        d
    ) in dicts:  # load_coco_panoptic_json leaves out the image size; check_image_size needs none
        d.pop("height", None)
        d.pop("width", None)
    return dicts


@pytest.fixture(scope="module")
def coco_instance_dicts():
    dicts = load_coco_json(
        os.path.join(COCO_SAMPLE, "panoptic_coco_detection_format.json"),
        os.path.join(COCO_SAMPLE, "input_images"),
    )
    assert len(dicts) == 2 and all(d["annotations"] for d in dicts)
    return dicts


def _expected_segments(d, contiguous=True):
    """(class, pixel count) of the non-crowd segments of a COCO panoptic dict, at full size."""
    pan = rgb2id(np.asarray(Image.open(d["pan_seg_file_name"]).convert("RGB")))
    return {
        s["id"]: (s["category_id"], int((pan == s["id"]).sum()))
        for s in d["segments_info"]
        if not s.get("iscrowd", 0)
    }, pan


def test_panoptic_mapper_without_resize_is_exact_on_coco(coco_panoptic_dicts):
    cfg = _cfg("mask_former_panoptic", crop=None, pad=-1)
    mapper = build_dataset_mapper(cfg)
    mapper.augmentations = T.AugmentationList([])  # identity: compare with the raw PNG exactly
    for d in coco_panoptic_dicts:
        out = mapper(d)
        _check_common(out)
        segs, pan = _expected_segments(d)
        assert tuple(out["image"].shape[-2:]) == pan.shape
        got = sorted(
            (int(c), int(m.sum()))
            for c, m in zip(out["instances"].gt_classes, out["instances"].gt_masks)
        )
        assert got == sorted(segs.values())
        # masks are disjoint
        assert out["instances"].gt_masks.sum(0).max() <= 1


def test_panoptic_mapper_drops_crowd_segments(coco_panoptic_dicts):
    d = dict(coco_panoptic_dicts[0])
    d["segments_info"] = [dict(s) for s in d["segments_info"]]
    mapper = build_dataset_mapper(_cfg("mask_former_panoptic", crop=None, pad=-1))
    mapper.augmentations = T.AugmentationList([])
    before = len(mapper(d)["instances"])
    assert before == sum(1 for s in d["segments_info"] if not s["iscrowd"])
    first = next(i for i, s in enumerate(d["segments_info"]) if not s["iscrowd"])
    d["segments_info"][first]["iscrowd"] = 1
    out = mapper(d)
    assert len(out["instances"]) == before - 1


@pytest.mark.parametrize("name", ["mask_former_panoptic", "coco_panoptic_lsj"])
def test_panoptic_mappers_with_augmentation_on_coco(coco_panoptic_dicts, name):
    np.random.seed(0)
    pad = 64 if name == "mask_former_panoptic" else None
    mapper = build_dataset_mapper(_cfg(name))
    for d in coco_panoptic_dicts:
        for _ in range(3):
            out = mapper(d)
            _check_common(out, pad=64)
            classes = set(out["instances"].gt_classes.tolist())
            assert classes <= {c for c, _ in _expected_segments(d)[0].values()}
            assert out["instances"].gt_masks.sum(0).max() <= 1
            if name == "coco_panoptic_lsj":
                assert out["instances"].has("gt_boxes")
            if pad:  # padded area (128) holds no segment
                img = out["image"]
                pad_rows = (img == 128).all(0).all(1)
                if pad_rows.any():
                    assert not out["instances"].gt_masks[:, pad_rows].any()


@pytest.mark.parametrize("name", ["mask_former_instance", "coco_instance_lsj"])
def test_instance_mappers_on_coco(coco_instance_dicts, name):
    np.random.seed(1)
    mapper = build_dataset_mapper(_cfg(name))
    for d in coco_instance_dicts:
        n_noncrowd = sum(1 for a in d["annotations"] if not a.get("iscrowd", 0))
        for _ in range(3):
            out = mapper(d)
            _check_common(out, pad=64)
            assert len(out["instances"]) <= n_noncrowd
            if name == "coco_instance_lsj":
                assert all(m.any() for m in out["instances"].gt_masks)
                assert out["instances"].gt_boxes.tensor.shape == (len(out["instances"]), 4)


def test_instance_mapper_identity_matches_rle(coco_instance_dicts):
    import pycocotools.mask as mask_util

    mapper = build_dataset_mapper(_cfg("mask_former_instance", crop=None, pad=-1))
    mapper.augmentations = T.AugmentationList([])
    d = coco_instance_dicts[1]
    d = dict(d, annotations=[dict(a) for a in d["annotations"]])
    first = next(i for i, a in enumerate(d["annotations"]) if not a["iscrowd"])
    d["annotations"][first]["iscrowd"] = 1
    out = mapper(d)
    kept = [a for a in d["annotations"] if not a["iscrowd"]]
    assert len(out["instances"]) == len(kept)
    for m, a in zip(out["instances"].gt_masks, kept):
        assert torch.equal(m, torch.from_numpy(mask_util.decode(a["segmentation"]).astype(bool)))


def test_lsj_pads_masks_with_zero(coco_instance_dicts):
    cfg = _cfg("coco_instance_lsj", lsj_size=1024)
    cfg.INPUT.MIN_SCALE = cfg.INPUT.MAX_SCALE = 0.5  # 640x427 → 512 long side, padded to 1024
    cfg.INPUT.RANDOM_FLIP = "none"
    out = build_dataset_mapper(cfg)(coco_instance_dicts[0])
    _check_common(out, pad=1024)
    assert not out["instances"].gt_masks[:, 400:].any()
    assert not out["instances"].gt_masks[:, :, 600:].any()
    assert (out["image"][:, 400:] == 128).all()


# --------------------------------------------------------------------------------------------
# generated ADE20K-format data
# --------------------------------------------------------------------------------------------
def _scene(h, w, seed):
    """Random image + panoptic layout: background stuff and 3 rectangles (2 things, 1 stuff)."""
    rng = np.random.RandomState(seed)
    image = rng.randint(0, 255, (h, w, 3), dtype=np.uint8)
    ids = np.full((h, w), 1, dtype=np.int64)  # segment 1 everywhere
    for sid in (2, 3, 4):
        y0, x0 = rng.randint(0, h // 2), rng.randint(0, w // 2)
        ids[y0 : y0 + h // 3, x0 : x0 + w // 3] = sid
    return image, ids


@pytest.fixture(scope="module")
def ade20k_root(tmp_path_factory):
    """ADEChallengeData2016 layout: images/, annotations_detectron2/ (0-based, 255 = other),
    ade20k_panoptic_training/ + ade20k_panoptic_train.json, ade20k_instance_train.json."""
    root = tmp_path_factory.mktemp("ade") / "ADEChallengeData2016"
    meta = get_ade20k_panoptic_metadata()
    thing_ids = list(meta["thing_dataset_id_to_contiguous_id"])[:2]
    stuff_ids = [
        i
        for i in meta["stuff_dataset_id_to_contiguous_id"]
        if i not in meta["thing_dataset_id_to_contiguous_id"]
    ][:2]
    seg_cat = {1: stuff_ids[0], 2: thing_ids[0], 3: thing_ids[1], 4: stuff_ids[1]}
    for sub in ("images/training", "annotations_detectron2/training", "ade20k_panoptic_train"):
        (root / sub).mkdir(parents=True)
    images, pan_annos, inst_annos = [], [], []
    for i in range(2):
        name = f"ADE_train_{i + 1:08d}"
        image, ids = _scene(60, 80, i)
        Image.fromarray(image).save(root / "images/training" / f"{name}.jpg")
        sem = np.vectorize(lambda s: meta["stuff_dataset_id_to_contiguous_id"][seg_cat[s]])(ids)
        sem[:5] = 255  # "other" pixels
        Image.fromarray(sem.astype(np.uint8)).save(
            root / "annotations_detectron2/training" / f"{name}.png"
        )
        Image.fromarray(_id2rgb(ids)).save(root / "ade20k_panoptic_train" / f"{name}.png")
        images.append({"id": i + 1, "file_name": f"{name}.jpg", "height": 60, "width": 80})
        segments = []
        for sid in np.unique(ids):
            ys, xs = np.nonzero(ids == sid)
            bbox = [int(xs.min()), int(ys.min()), int(np.ptp(xs) + 1), int(np.ptp(ys) + 1)]
            segments.append(
                {
                    "id": int(sid),
                    "category_id": seg_cat[sid],
                    "iscrowd": 0,
                    "area": int(len(xs)),
                    "bbox": bbox,
                }
            )
            if seg_cat[sid] in thing_ids:
                import pycocotools.mask as mask_util

                rle = mask_util.encode(np.asfortranarray((ids == sid).astype(np.uint8)))
                rle["counts"] = rle["counts"].decode()
                inst_annos.append(
                    {
                        "id": len(inst_annos) + 1,
                        "image_id": i + 1,
                        "iscrowd": 0,
                        "category_id": seg_cat[sid],
                        "bbox": bbox,
                        "area": int(len(xs)),
                        "segmentation": rle,
                    }
                )
        pan_annos.append({"image_id": i + 1, "file_name": f"{name}.png", "segments_info": segments})
    cats = [
        {"id": c, "name": str(c), "isthing": int(c in thing_ids)}
        for c in sorted(set(seg_cat.values()))
    ]
    with open(root / "ade20k_panoptic_train.json", "w") as f:
        json.dump({"images": images, "annotations": pan_annos, "categories": cats}, f)
    with open(root / "ade20k_instance_train.json", "w") as f:
        json.dump(
            {
                "images": images,
                "annotations": inst_annos,
                "categories": [c for c in cats if c["isthing"]],
            },
            f,
        )
    return root, meta, seg_cat


def test_semantic_mapper_on_ade20k(ade20k_root):
    root, meta, _ = ade20k_root
    dicts = load_sem_seg(
        str(root / "annotations_detectron2/training"), str(root / "images/training")
    )
    assert len(dicts) == 2
    np.random.seed(2)
    cfg = _cfg("mask_former_semantic")
    cfg.INPUT.COLOR_AUG_SSD = True
    cfg.INPUT.CROP.SINGLE_CATEGORY_MAX_AREA = 0.75
    mapper = build_dataset_mapper(cfg)
    for d in dicts:
        raw = np.asarray(Image.open(d["sem_seg_file_name"]))
        for _ in range(3):
            out = mapper(d)
            _check_common(out, pad=64)
            sem = out["sem_seg"]
            # padding (crop 48 → 64) is ignore
            assert (sem[48:] == 255).all() and (sem[:, 48:] == 255).all()
            labels = [c for c in torch.unique(sem).tolist() if c != 255]
            assert set(labels) <= set(np.unique(raw).tolist())
            assert out["instances"].gt_classes.tolist() == labels
            for c, m in zip(out["instances"].gt_classes, out["instances"].gt_masks):
                assert torch.equal(m, sem == c)


def test_semantic_mapper_without_resize_is_exact(ade20k_root):
    root, _, _ = ade20k_root
    d = load_sem_seg(str(root / "annotations_detectron2/training"), str(root / "images/training"))[
        0
    ]
    mapper = build_dataset_mapper(_cfg("mask_former_semantic", crop=None, pad=-1))
    mapper.augmentations = T.AugmentationList([])
    out = mapper(d)
    raw = np.asarray(Image.open(d["sem_seg_file_name"])).astype(np.int64)
    assert torch.equal(out["sem_seg"], torch.from_numpy(raw))
    assert torch.equal(
        out["image"].permute(1, 2, 0), torch.from_numpy(np.array(Image.open(d["file_name"])))
    )


def test_panoptic_and_instance_mappers_on_ade20k(ade20k_root):
    root, meta, seg_cat = ade20k_root
    dicts = load_panoptic_json(
        str(root / "ade20k_panoptic_train.json"),
        str(root / "images/training"),
        str(root / "ade20k_panoptic_train"),
        str(root / "annotations_detectron2/training"),
        meta,
    )
    mapper = build_dataset_mapper(_cfg("mask_former_panoptic", crop=None, pad=-1))
    mapper.augmentations = T.AugmentationList([])
    for d in dicts:
        out = mapper(d)
        _check_common(out)
        assert "sem_seg" in out
        expected = sorted(
            (
                meta["stuff_dataset_id_to_contiguous_id"][c]
                if c not in meta["thing_dataset_id_to_contiguous_id"]
                else meta["thing_dataset_id_to_contiguous_id"][c]
            )
            for c in seg_cat.values()
        )
        assert sorted(out["instances"].gt_classes.tolist()) == expected
        assert out["instances"].gt_masks.sum(0).min() == 1  # the segments tile the image

    inst = load_coco_json(str(root / "ade20k_instance_train.json"), str(root / "images/training"))
    np.random.seed(3)
    mapper = build_dataset_mapper(_cfg("mask_former_instance"))
    for d in inst:
        out = mapper(d)
        _check_common(out, pad=64)
        assert len(out["instances"]) <= 2


# --------------------------------------------------------------------------------------------
# generated Cityscapes-format data
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cityscapes_root(tmp_path_factory):
    """leftImg8bit/train/<city>, gtFine/train/<city> (labelIds, labelTrainIds, instanceIds,
    polygons json), gtFine/cityscapes_panoptic_train/ + .json (cityscapes label ids)."""
    root = tmp_path_factory.mktemp("cs") / "cityscapes"
    city = "aachen"
    img_dir = root / "leftImg8bit/train" / city
    gt_dir = root / "gtFine/train" / city
    pan_dir = root / "gtFine/cityscapes_panoptic_train"
    for p in (img_dir, gt_dir, pan_dir):
        p.mkdir(parents=True)
    # segment → cityscapes label id: road 7 (train 0), car 26 (train 13), person 24 (train 11)
    seg_label = {1: 7, 2: 26, 3: 24, 4: 26}
    train_id = {7: 0, 26: 13, 24: 11}
    annos = []
    for i in range(2):
        base = f"{city}_{i:06d}_000019"
        image, ids = _scene(64, 128, 10 + i)
        Image.fromarray(image).save(img_dir / f"{base}_leftImg8bit.png")
        label = np.vectorize(seg_label.get)(ids).astype(np.uint8)
        Image.fromarray(label).save(gt_dir / f"{base}_gtFine_labelIds.png")
        Image.fromarray(np.vectorize(train_id.get)(label).astype(np.uint8)).save(
            gt_dir / f"{base}_gtFine_labelTrainIds.png"
        )
        inst = label.astype(np.int32)
        for sid in (2, 3, 4):
            inst[ids == sid] = seg_label[sid] * 1000 + sid
        Image.fromarray(inst.astype(np.uint16)).save(gt_dir / f"{base}_gtFine_instanceIds.png")
        with open(gt_dir / f"{base}_gtFine_polygons.json", "w") as f:
            json.dump({"imgHeight": 64, "imgWidth": 128, "objects": []}, f)
        pan_ids = np.where(inst >= 1000, inst, label.astype(np.int32) * 1000)
        Image.fromarray(_id2rgb(pan_ids)).save(pan_dir / f"{base}_gtFine_panoptic.png")
        segments = [
            {"id": int(s), "category_id": int(s // 1000), "iscrowd": 0} for s in np.unique(pan_ids)
        ]
        annos.append(
            {
                "image_id": base,
                "file_name": f"{base}_gtFine_panoptic.png",
                "segments_info": segments,
            }
        )
    with open(root / "gtFine/cityscapes_panoptic_train.json", "w") as f:
        json.dump({"annotations": annos}, f)
    meta = {
        "thing_dataset_id_to_contiguous_id": {24: 11, 26: 13},
        "stuff_dataset_id_to_contiguous_id": {7: 0, 24: 11, 26: 13},
    }
    return root, meta


def test_mappers_on_cityscapes(cityscapes_root):
    root, meta = cityscapes_root
    img = str(root / "leftImg8bit/train")
    from detectron2.data.datasets.cityscapes import load_cityscapes_semantic

    cfg = _cfg("mask_former_semantic", crop=(32, 64), pad=-1)
    sem = load_cityscapes_semantic(img, str(root / "gtFine/train"))
    np.random.seed(4)
    out = build_dataset_mapper(cfg)(sem[0])
    _check_common(out)
    assert set(out["instances"].gt_classes.tolist()) <= {0, 11, 13}

    pan = load_cityscapes_panoptic(
        img,
        str(root / "gtFine/cityscapes_panoptic_train"),
        str(root / "gtFine/cityscapes_panoptic_train.json"),
        meta,
    )
    mapper = build_dataset_mapper(_cfg("mask_former_panoptic", crop=None, pad=-1))
    mapper.augmentations = T.AugmentationList([])
    out = mapper(pan[0])
    _check_common(out)
    assert sorted(out["instances"].gt_classes.tolist()) == [0, 11, 13, 13]
    assert torch.equal(
        out["sem_seg"] == 13, out["instances"].gt_masks[out["instances"].gt_classes == 13].any(0)
    )

    inst = load_cityscapes_instances(
        img, str(root / "gtFine/train"), from_json=False, to_polygons=True
    )
    # the loader maps label ids to contiguous thing ids: person 24 → 0, car 26 → 2
    mapper = build_dataset_mapper(_cfg("mask_former_instance", crop=None, pad=-1))
    mapper.augmentations = T.AugmentationList([])
    out = mapper(inst[0])
    _check_common(out)
    assert sorted(out["instances"].gt_classes.tolist()) == [0, 2, 2]


# --------------------------------------------------------------------------------------------
# colour augmentation, registry
# --------------------------------------------------------------------------------------------
def test_color_aug_ssd_transform():
    rng = np.random.RandomState(0)
    img = rng.randint(0, 255, (8, 9, 3), dtype=np.uint8)
    ident = ColorAugSSDTransform("RGB")
    assert np.array_equal(ident.apply_image(img), img)
    bright = ColorAugSSDTransform("RGB", brightness_delta=10).apply_image(img)
    assert np.array_equal(bright, np.clip(img.astype(int) + 10, 0, 255).astype(np.uint8))
    # RGB and BGR variants agree up to channel order
    t_rgb = ColorAugSSDTransform("RGB", contrast_alpha=1.2, saturation_alpha=0.7, hue_delta=5)
    t_bgr = ColorAugSSDTransform("BGR", contrast_alpha=1.2, saturation_alpha=0.7, hue_delta=5)
    assert np.array_equal(t_rgb.apply_image(img), t_bgr.apply_image(img[:, :, ::-1])[:, :, ::-1])
    seg = rng.randint(0, 5, (8, 9))
    assert np.array_equal(t_rgb.apply_segmentation(seg), seg)
    with pytest.raises(ValueError):
        ColorAugSSDTransform("YUV")


def test_registry_and_errors():
    assert set(DATASET_MAPPERS) >= {
        "mask_former_semantic",
        "mask_former_panoptic",
        "mask_former_instance",
        "coco_instance_lsj",
        "coco_panoptic_lsj",
    }
    with pytest.raises(KeyError, match="DATASET_MAPPER_NAME"):
        build_dataset_mapper(_cfg("no_such_mapper"))
    mapper = build_dataset_mapper(_cfg("mask_former_semantic"))
    with pytest.raises(ValueError, match="sem_seg_file_name"):
        mapper({"file_name": os.path.join(COCO_SAMPLE, "input_images/000000439180.jpg")})


def test_panoptic_ids_missing_from_the_json_are_void_and_reported_once(caplog):
    from mask2former.data.dataset_mappers.common import PANOPTIC_VOID_IDS, panoptic_to_instances

    pan = np.zeros((6, 8), np.int64)
    pan[:3] = 5
    pan[3:, :2] = 7  # crowd
    pan[3:, 2:4] = PANOPTIC_VOID_IDS[1]  # crop padding
    segments = [{"id": 5, "category_id": 2}, {"id": 7, "category_id": 1, "iscrowd": 1}]
    with caplog.at_level("WARNING"):
        inst = panoptic_to_instances(pan, segments, "fine.png")
    assert inst.gt_classes.tolist() == [2] and caplog.records == []

    pan[5, 7] = 197121  # an id the JSON does not have
    with caplog.at_level("WARNING"):
        inst = panoptic_to_instances(pan, segments, "stray.png")
        panoptic_to_instances(pan, segments, "stray.png")  # the same file again: no new warning
        panoptic_to_instances(pan, segments)  # no file name given: nothing to name
    assert inst.gt_classes.tolist() == [2]
    assert not inst.gt_masks[:, 5, 7].any()  # unlabelled
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "stray.png" in message and "197121" in message and "1 pixels" in message
