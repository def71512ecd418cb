"""The YouTube-VIS clip mapper (SPEC §9): frame sampling, one augmentation per clip, per-frame
targets with consistent track ids (-1 where absent), test mode, selection by name/meta-arch.

Clips are read from small YouTube-VIS datasets written in the real format (frames as JPEG,
RLE annotations) and loaded with the project's loader.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from detectron2.data import transforms as T
from detectron2.structures import BoxMode, polygons_to_bitmask

from mask2former import add_maskformer2_video_config

from helpers import make_cfg
from mask2former.data.dataset_mappers import YTVISDatasetMapper, build_dataset_mapper
from mask2former.data.dataset_mappers.clip_augmentation import build_clip_augmentations
from mask2former.data.dataset_mappers.ytvis_dataset_mapper import clip_instances, sample_clip_frames
from mask2former.data.datasets import load_ytvis_json
from mask2former.data.synthetic_video import SYNTHETIC_YTVIS_CATEGORIES, write_ytvis_split
from mask2former.data.robust_loading import BadSampleError

H, W = 40, 56
ALL_AUGS = ["brightness", "contrast", "saturation", "rotation"]


def video_cfg(*opts):
    """A config with the video keys (``add_maskformer2_video_config``), then ``opts``; small
    sizes."""
    cfg = make_cfg()
    add_maskformer2_video_config(cfg)
    cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING = "choice_by_clip"
    cfg.INPUT.RANDOM_FLIP = "flip_by_clip"
    cfg.INPUT.MIN_SIZE_TRAIN = (32, 40, 48)
    cfg.INPUT.MAX_SIZE_TRAIN = 200
    cfg.INPUT.MIN_SIZE_TEST = 24
    cfg.INPUT.MAX_SIZE_TEST = 200
    cfg.INPUT.FORMAT = "RGB"
    cfg.INPUT.DATASET_MAPPER_NAME = "ytvis"
    cfg.merge_from_list(list(opts))
    return cfg


def _box(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def _noise(seed):
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


# Track 1 (circle) in frames 0-3, track 2 (square) in frames 1-4; frames 0 and 1 differ only
# by track 2. Masks of the 5 frames:
TRACK1 = [_box(4, 14, 4 + 3 * t, 16 + 3 * t) for t in range(4)] + [None]
TRACK2 = [None] + [_box(20, 34, 30 - 2 * t, 44 - 2 * t) for t in range(1, 5)]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """(per-video dicts from the loader, the raw frames): video 1 = the 5-frame clip above,
    video 2 = two identical frames with one object."""
    out = tmp_path_factory.mktemp("ytvis_mapper")
    base = _noise(0)
    frames = []
    for t in range(5):
        f = base.copy()
        for m, color in ((TRACK1[t], (255, 0, 0)), (TRACK2[t], (0, 0, 255))):
            if m is not None:
                f[m] = color
        frames.append(f)
    still = base.copy()
    still[_box(10, 30, 10, 40)] = (0, 200, 0)
    vids = [
        {
            "name": "moving",
            "frames": frames,
            "tracks": [{"category_id": 1, "masks": TRACK1}, {"category_id": 2, "masks": TRACK2}],
        },
        {
            "name": "still",
            "frames": [still, still.copy()],
            "tracks": [{"category_id": 5, "masks": [_box(10, 30, 10, 40)] * 2}],
        },
    ]
    json_file = write_ytvis_split(
        str(out), "train", vids, SYNTHETIC_YTVIS_CATEGORIES, rle_format="compressed"
    )
    return load_ytvis_json(json_file, str(out / "train" / "JPEGImages")), frames


def _check_clip(out, n):
    images, instances = out["image"], out["instances"]
    assert len(images) == len(instances) == len(out["file_names"]) == n
    shape = images[0].shape
    for img, inst in zip(images, instances):
        assert img.dtype == torch.uint8 and img.shape == shape and shape[0] == 3
        assert inst.image_size == tuple(shape[-2:])
        assert len(inst) == len(instances[0])
        assert torch.equal(inst.gt_classes, instances[0].gt_classes)
        assert inst.gt_ids.dtype == torch.int64 and inst.gt_masks.tensor.dtype == torch.bool
        present = inst.gt_masks.tensor.flatten(1).any(1)
        assert torch.equal(present, inst.gt_ids != -1)
        boxes = inst.gt_boxes.tensor
        assert (boxes[~present] == 0).all() and (boxes[present, 2:] > boxes[present, :2]).all()


def test_training_clip_ids_and_masks(videos):
    """All 5 frames sampled (5 of 5 within range): ids per frame are exactly the tracks present,
    the instance order is the same in every frame, masks are the annotations'."""
    records, _ = videos
    cfg = video_cfg(
        "INPUT.SAMPLING_FRAME_NUM",
        5,
        "INPUT.SAMPLING_FRAME_RANGE",
        4,
        "INPUT.MIN_SIZE_TRAIN",
        (H,),
        "INPUT.RANDOM_FLIP",
        "none",
    )
    mapper = YTVISDatasetMapper(cfg, is_train=True)
    np.random.seed(0)
    out = mapper(records[0])
    _check_clip(out, 5)
    assert out["frame_idx"] == [0, 1, 2, 3, 4]
    assert (out["height"], out["width"], out["length"], out["video_id"]) == (H, W, 5, 1)
    ids = torch.stack([inst.gt_ids for inst in out["instances"]]).tolist()
    assert ids == [[1, -1], [1, 2], [1, 2], [1, 2], [-1, 2]]
    assert out["instances"][0].gt_classes.tolist() == [0, 1]  # contiguous: circle, square
    for t, inst in enumerate(out["instances"]):
        for k, track in enumerate((TRACK1, TRACK2)):
            expected = track[t] if track[t] is not None else np.zeros((H, W), bool)
            assert (inst.gt_masks.tensor[k].numpy() == expected).all()


@pytest.mark.parametrize("fmt", ["RGB", "BGR"])
def test_images_are_the_frames_in_input_format(videos, fmt):
    records, _ = videos
    cfg = video_cfg("INPUT.MIN_SIZE_TEST", H, "INPUT.FORMAT", fmt)
    out = YTVISDatasetMapper(cfg, is_train=False)(records[0])
    assert out["file_names"] == records[0]["file_names"]
    for img, file_name in zip(out["image"], out["file_names"]):
        rgb = img.permute(1, 2, 0).numpy()
        rgb = rgb if fmt == "RGB" else rgb[..., ::-1]
        assert np.array_equal(rgb, np.asarray(Image.open(file_name).convert("RGB")))


def test_one_augmentation_per_clip_identical_frames_stay_identical(videos):
    """Resize choice, flip, crop, colour and rotation, sampled once per clip: two identical frames
    give identical images and targets, for every random draw."""
    records, _ = videos
    cfg = video_cfg(
        "INPUT.AUGMENTATIONS",
        ALL_AUGS,
        "INPUT.CROP.ENABLED",
        True,
        "INPUT.CROP.TYPE",
        "absolute_range",
        "INPUT.CROP.SIZE",
        (24, 36),
    )
    mapper = YTVISDatasetMapper(cfg, is_train=True)
    sizes = set()
    for seed in range(12):
        np.random.seed(seed)
        out = mapper(records[1])
        _check_clip(out, 2)
        a, b = out["image"]
        assert torch.equal(a, b)
        ia, ib = out["instances"]
        assert torch.equal(ia.gt_masks.tensor, ib.gt_masks.tensor)
        assert torch.equal(ia.gt_ids, ib.gt_ids)
        sizes.add(tuple(a.shape[-2:]))
    assert len(sizes) > 2  # the resize/crop really varies between clips


def test_per_frame_sampling_differs_across_frames(videos):
    """Control for the test above: with per-frame resize sampling ("choice"), the two identical
    frames get different sizes for some draw."""
    records, _ = videos
    cfg = video_cfg("INPUT.MIN_SIZE_TRAIN_SAMPLING", "choice")
    mapper = YTVISDatasetMapper(cfg, is_train=True)
    shapes = []
    for seed in range(12):
        np.random.seed(seed)
        out = mapper(records[1])
        shapes.append(out["image"][0].shape != out["image"][1].shape)
    assert any(shapes)


def test_clip_transform_parameters_equal_on_different_frames(videos):
    """The clip augmentation of two *different* frames has the same parameters (only the
    content-dependent blend sources of contrast/saturation differ)."""
    _, frames = videos
    cfg = video_cfg(
        "INPUT.AUGMENTATIONS",
        ALL_AUGS,
        "INPUT.CROP.ENABLED",
        True,
        "INPUT.CROP.TYPE",
        "absolute_range",
        "INPUT.CROP.SIZE",
        (24, 36),
    )
    augs = build_clip_augmentations(cfg, is_train=True)
    np.random.seed(3)
    _, tfms = augs([frames[0], frames[4]])
    t0, t1 = tfms[0].transforms, tfms[1].transforms
    assert [type(t) for t in t0] == [type(t) for t in t1] and len(t0) >= 7
    for a, b in zip(t0, t1):
        for key, va in vars(a).items():
            vb = vars(b)[key]
            if key == "src_image":  # per-frame content (mean grey / grey image)
                continue
            assert np.array_equal(np.asarray(va), np.asarray(vb)), (type(a).__name__, key)


def test_flip_applies_to_targets(videos):
    records, _ = videos
    cfg = video_cfg(
        "INPUT.SAMPLING_FRAME_NUM", 5, "INPUT.SAMPLING_FRAME_RANGE", 4, "INPUT.MIN_SIZE_TRAIN", (H,)
    )
    mapper = YTVISDatasetMapper(cfg, is_train=True)
    seen = set()
    for seed in range(8):
        np.random.seed(seed)
        out = mapper(records[0])
        mask = out["instances"][0].gt_masks.tensor[0].numpy()
        flipped = (mask == TRACK1[0][:, ::-1]).all()
        assert flipped or (mask == TRACK1[0]).all()
        # the image is flipped with its targets: the red circle sits under the mask
        red = out["image"][0][0].numpy()[mask]
        assert red.mean() > 200
        seen.add(bool(flipped))
    assert seen == {True, False}


def test_test_mode_reads_all_frames_in_order(videos):
    records, _ = videos
    cfg = video_cfg("INPUT.MIN_SIZE_TEST", 20)
    mapper = build_dataset_mapper(cfg, is_train=False)
    assert isinstance(mapper, YTVISDatasetMapper) and not mapper.is_train
    out = mapper(records[0])
    assert out["frame_idx"] == list(range(5)) and out["file_names"] == records[0]["file_names"]
    assert "instances" not in out and len(out["image"]) == 5
    assert all(img.shape == (3, 20, 28) for img in out["image"])  # short side 20, 40x56 -> 20x28
    assert (out["height"], out["width"]) == (H, W)
    unannotated = {k: v for k, v in records[0].items() if k != "annotations"}
    assert len(mapper(unannotated)["image"]) == 5


def test_sample_clip_frames():
    np.random.seed(0)
    for _ in range(300):
        length = int(np.random.randint(1, 30))
        num, rng = int(np.random.randint(1, 6)), int(np.random.randint(0, 6))
        idx = sample_clip_frames(length, num, rng)
        assert len(idx) == num and idx == sorted(idx)
        assert all(0 <= i < length for i in idx) and max(idx) - min(idx) <= 2 * rng
        if min(length, rng + 1) >= num:  # every window holds enough frames: no repeats
            assert len(set(idx)) == num
    np.random.seed(1)
    shuffled = [sample_clip_frames(10, 5, 10, shuffle=True) for _ in range(20)]
    assert any(s != sorted(s) for s in shuffled) and all(len(set(s)) == 5 for s in shuffled)
    assert sample_clip_frames(1, 3, 20) == [0, 0, 0]  # a one-frame video repeats its frame


def test_clip_instances_crop_removes_object_and_polygons():
    """An object cropped away gets id -1 in that frame; polygon annotations are rasterised
    after the transform (here a flip)."""
    poly = [[2.0, 2.0, 10.0, 2.0, 10.0, 8.0, 2.0, 8.0]]
    a = {
        "id": 5,
        "category_id": 3,
        "segmentation": poly,
        "bbox": [2, 2, 8, 6],
        "bbox_mode": BoxMode.XYWH_ABS,
        "iscrowd": 0,
    }
    b = dict(
        a,
        id=9,
        segmentation=[[30.0, 20.0, 40.0, 20.0, 40.0, 30.0, 30.0, 30.0]],
        bbox=[30, 20, 10, 10],
        category_id=1,
    )
    crowd = dict(b, id=11, iscrowd=1)
    flip = T.TransformList([T.HFlipTransform(W)])
    crop = T.TransformList([T.CropTransform(20, 15, 30, 20)])  # keeps b, drops a
    out = clip_instances([[a, b, crowd], [a, b]], [flip, crop], [(H, W), (20, 30)])
    assert [inst.gt_ids.tolist() for inst in out] == [[5, 9], [-1, 9]]
    assert out[0].gt_classes.tolist() == out[1].gt_classes.tolist() == [3, 1]
    expected = polygons_to_bitmask(poly, H, W)[:, ::-1]
    assert (out[0].gt_masks.tensor[0].numpy() == expected).all()
    assert not out[1].gt_masks.tensor[0].any() and out[1].gt_masks.tensor[1].sum() > 0
    assert a["segmentation"] is poly and a["bbox"] == [2, 2, 8, 6]  # inputs not modified


def test_clear_errors(videos, tmp_path):
    records, _ = videos
    mapper = YTVISDatasetMapper(video_cfg(), is_train=True)
    with pytest.raises(ValueError, match="no annotations"):
        mapper({k: v for k, v in records[0].items() if k != "annotations"})
    with pytest.raises(BadSampleError, match="00000.jpg.*but the video is"):
        mapper(dict(records[1], height=H + 1))
    with pytest.raises(ValueError, match="INPUT.AUGMENTATIONS has unknown entries"):
        YTVISDatasetMapper(video_cfg("INPUT.AUGMENTATIONS", ["hue"]), is_train=True)
    with pytest.raises(ValueError, match="MIN_SIZE_TRAIN_SAMPLING"):
        YTVISDatasetMapper(video_cfg("INPUT.MIN_SIZE_TRAIN_SAMPLING", "by_clip"), is_train=True)
    with pytest.raises(ValueError, match="SAMPLING_FRAME_NUM must be >= 1"):
        YTVISDatasetMapper(video_cfg("INPUT.SAMPLING_FRAME_NUM", 0), is_train=True)
    cfg = make_cfg()  # no video keys
    cfg.INPUT.DATASET_MAPPER_NAME = "ytvis"
    with pytest.raises(KeyError, match="add_maskformer2_video_config"):
        build_dataset_mapper(cfg, is_train=True)


def test_selected_by_name_or_video_meta_architecture():
    assert isinstance(build_dataset_mapper(video_cfg(), is_train=True), YTVISDatasetMapper)
    cfg = video_cfg("MODEL.META_ARCHITECTURE", "VideoMaskFormer")
    assert isinstance(build_dataset_mapper(cfg, is_train=True), YTVISDatasetMapper)
    cfg = video_cfg(
        "INPUT.DATASET_MAPPER_NAME",
        "mask_former_instance",
        "INPUT.MIN_SIZE_TRAIN_SAMPLING",
        "choice",
        "INPUT.RANDOM_FLIP",
        "horizontal",
    )
    assert not isinstance(build_dataset_mapper(cfg, is_train=True), YTVISDatasetMapper)


def test_synthetic_clips(tmp_path):
    """The generated dataset through loader and mapper with the released-config augmentations."""
    from mask2former.data.synthetic_video import generate_synthetic_ytvis

    d = generate_synthetic_ytvis(
        str(tmp_path),
        num_train=3,
        num_val=0,
        seed=0,
        height=48,
        width=64,
        min_frames=6,
        max_frames=6,
    )
    records = load_ytvis_json(f"{d}/train.json", f"{d}/train/JPEGImages")
    cfg = video_cfg("INPUT.SAMPLING_FRAME_NUM", 3, "INPUT.AUGMENTATIONS", ALL_AUGS)
    mapper = YTVISDatasetMapper(cfg, is_train=True)
    np.random.seed(0)
    n_present = 0
    for r in records:
        out = mapper(r)
        _check_clip(out, 3)
        n_tracks = len({a["id"] for f in r["annotations"] for a in f})
        assert 1 <= len(out["instances"][0]) <= n_tracks
        n_present += int((torch.stack([i.gt_ids for i in out["instances"]]) != -1).sum())
    assert n_present > 0


def test_a_video_model_with_an_image_mapper_is_a_clear_error():
    from mask2former.data.dataset_mappers import build_dataset_mapper

    cfg = video_cfg("MODEL.META_ARCHITECTURE", "VideoMaskFormer",
                    "INPUT.DATASET_MAPPER_NAME", "coco_panoptic_lsj")
    with pytest.raises(ValueError, match="takes clips.*INPUT.DATASET_MAPPER_NAME"):
        build_dataset_mapper(cfg, is_train=True)
    cfg.INPUT.DATASET_MAPPER_NAME = "mask_former_semantic"  # the default: the clip mapper is used
    assert type(build_dataset_mapper(cfg, is_train=True)).__name__ == "YTVISDatasetMapper"
