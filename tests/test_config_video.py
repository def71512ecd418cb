"""add_maskformer2_video_config and the YouTube-VIS configs (SPEC §9)."""

import os

import pytest

from detectron2.config import get_cfg

from helpers import CONFIGS, all_config_files, config_mismatches, make_cfg
from helpers import cfg_value as get
from mask2former import add_maskformer2_config, add_maskformer2_video_config

VIDEO_DEFAULTS = {
    "INPUT.SAMPLING_FRAME_NUM": 2,
    "INPUT.SAMPLING_FRAME_RANGE": 20,
    "INPUT.SAMPLING_FRAME_SHUFFLE": False,
    "INPUT.AUGMENTATIONS": [],
    "MODEL.MASK_FORMER.TEST.WINDOW_SIZE": 0,
}

BACKBONES = ("r50", "r101", "swin_t", "swin_s", "swin_b_in21k", "swin_l")
VIDEO_CONFIGS = [f"youtubevis_{y}/{b}.yaml" for y in (2019, 2021) for b in BACKBONES]

# COCO instance checkpoints the released video models were initialised from (model zoo)
COCO_INSTANCE_WEIGHTS = {
    "r50": "model_final_3c8ec9.pkl",
    "r101": "model_final_eba159.pkl",
    "swin_t": "model_final_86143f.pkl",
    "swin_s": "model_final_1e7f22.pkl",
    "swin_b_in21k": "model_final_83d103.pkl",
    "swin_l": "model_final_e5f453.pkl",
}
SWIN = {  # EMBED_DIM, DEPTHS, NUM_HEADS, WINDOW_SIZE, PRETRAIN_IMG_SIZE
    "swin_t": (96, [2, 2, 6, 2], [3, 6, 12, 24], 7, 224),
    "swin_s": (96, [2, 2, 18, 2], [3, 6, 12, 24], 7, 224),
    "swin_b_in21k": (128, [2, 2, 18, 2], [4, 8, 16, 32], 12, 384),
    "swin_l": (192, [2, 2, 18, 2], [6, 12, 24, 48], 12, 384),
}


@pytest.mark.parametrize("key", sorted(VIDEO_DEFAULTS))
def test_video_defaults(key):
    cfg = get_cfg()
    add_maskformer2_video_config(cfg)
    assert get(cfg, key) == VIDEO_DEFAULTS[key]
    assert cfg.MODEL.MASK_FORMER.DEC_LAYERS == 6  # the image keys come with it


def test_video_config_idempotent_in_either_order():
    a = get_cfg()
    add_maskformer2_config(a)
    add_maskformer2_video_config(a)
    b = get_cfg()
    add_maskformer2_video_config(b)
    add_maskformer2_config(b)
    assert a.dump() == b.dump()
    a.INPUT.SAMPLING_FRAME_NUM = 5
    a.MODEL.MASK_FORMER.TEST.WINDOW_SIZE = 8
    before = a.dump()
    add_maskformer2_video_config(a)
    assert a.dump() == before


def test_image_config_alone_rejects_video_keys():
    cfg = get_cfg()
    add_maskformer2_config(cfg)
    with pytest.raises(KeyError, match="Non-existent config key: (INPUT|MODEL.MASK_FORMER.TEST)"):
        cfg.merge_from_file(os.path.join(CONFIGS, VIDEO_CONFIGS[0]))


def test_video_families_complete():
    files = set(all_config_files())
    assert set(VIDEO_CONFIGS) <= files
    assert {f for f in files if f.startswith("youtubevis_")} == set(VIDEO_CONFIGS)


def expected_for(rel):
    year, name = rel[: -len(".yaml")].split("/")
    year = int(year.split("_")[1])
    exp = {
        "MODEL.META_ARCHITECTURE": "VideoMaskFormer",
        "MODEL.SEM_SEG_HEAD.NAME": "MaskFormerHead",
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES": 40,
        "MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME": "MSDeformAttnPixelDecoder",
        "MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS": 6,
        "MODEL.SEM_SEG_HEAD.CONVS_DIM": 256,
        "MODEL.SEM_SEG_HEAD.MASK_DIM": 256,
        "MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME": "VideoMultiScaleMaskedTransformerDecoder",
        "MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE": "multi_scale_pixel_decoder",
        "MODEL.MASK_FORMER.DEC_LAYERS": 10,
        "MODEL.MASK_FORMER.HIDDEN_DIM": 256,
        "MODEL.MASK_FORMER.NHEADS": 8,
        "MODEL.MASK_FORMER.DIM_FEEDFORWARD": 2048,
        "MODEL.MASK_FORMER.DROPOUT": 0.0,
        "MODEL.MASK_FORMER.CLASS_WEIGHT": 2.0,
        "MODEL.MASK_FORMER.MASK_WEIGHT": 5.0,
        "MODEL.MASK_FORMER.DICE_WEIGHT": 5.0,
        "MODEL.MASK_FORMER.NO_OBJECT_WEIGHT": 0.1,
        "MODEL.MASK_FORMER.TRAIN_NUM_POINTS": 12544,
        "MODEL.MASK_FORMER.OVERSAMPLE_RATIO": 3.0,
        "MODEL.MASK_FORMER.IMPORTANCE_SAMPLE_RATIO": 0.75,
        "MODEL.MASK_FORMER.SIZE_DIVISIBILITY": 32,
        "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES": 200 if name == "swin_l" else 100,
        "MODEL.MASK_FORMER.TEST.WINDOW_SIZE": 0,
        "MODEL.WEIGHTS": COCO_INSTANCE_WEIGHTS[name],
        "MODEL.PIXEL_MEAN": [123.675, 116.28, 103.53],
        "MODEL.PIXEL_STD": [58.395, 57.12, 57.375],
        "MODEL.BACKBONE.FREEZE_AT": 0,
        "DATASETS.TRAIN": [f"ytvis_{year}_train"],
        "DATASETS.TEST": [f"ytvis_{year}_val"],
        "SOLVER.IMS_PER_BATCH": 16,
        "SOLVER.BASE_LR": 0.0001,
        "SOLVER.WEIGHT_DECAY": 0.05,
        "SOLVER.OPTIMIZER": "ADAMW",
        "SOLVER.BACKBONE_MULTIPLIER": 0.1,
        "SOLVER.STEPS": [4000] if year == 2019 else [5500],
        "SOLVER.MAX_ITER": 6000 if year == 2019 else 8000,
        "SOLVER.AMP.ENABLED": True,
        "SOLVER.CLIP_GRADIENTS.ENABLED": True,
        "SOLVER.CLIP_GRADIENTS.CLIP_TYPE": "full_model",
        "SOLVER.CLIP_GRADIENTS.CLIP_VALUE": 0.01,
        "INPUT.SAMPLING_FRAME_NUM": 2,
        "INPUT.SAMPLING_FRAME_RANGE": 20,
        "INPUT.SAMPLING_FRAME_SHUFFLE": False,
        "INPUT.AUGMENTATIONS": [],
        "INPUT.MIN_SIZE_TRAIN_SAMPLING": "choice_by_clip",
        "INPUT.RANDOM_FLIP": "flip_by_clip",
        "INPUT.MIN_SIZE_TRAIN": [360, 480],
        "INPUT.MIN_SIZE_TEST": 360,
        "INPUT.CROP.TYPE": "absolute_range",
        "INPUT.CROP.SIZE": [600, 720],
        "INPUT.CROP.ENABLED": name in ("swin_b_in21k", "swin_l"),
        "INPUT.FORMAT": "RGB",
        "INPUT.DATASET_MAPPER_NAME": "ytvis",
        "DATALOADER.FILTER_EMPTY_ANNOTATIONS": False,
    }
    if name.startswith("swin"):
        dim, depths, heads, window, pre = SWIN[name]
        exp.update({
            "MODEL.BACKBONE.NAME": "D2SwinTransformer",
            "MODEL.SWIN.EMBED_DIM": dim,
            "MODEL.SWIN.DEPTHS": depths,
            "MODEL.SWIN.NUM_HEADS": heads,
            "MODEL.SWIN.WINDOW_SIZE": window,
            "MODEL.SWIN.PRETRAIN_IMG_SIZE": pre,
            "MODEL.SWIN.DROP_PATH_RATE": 0.3,
            "MODEL.SWIN.APE": False,
            "MODEL.SWIN.PATCH_NORM": True,
        })
    else:
        exp.update({
            "MODEL.BACKBONE.NAME": "build_resnet_backbone",
            "MODEL.RESNETS.DEPTH": 101 if name == "r101" else 50,
            "MODEL.RESNETS.STRIDE_IN_1X1": False,
            "MODEL.RESNETS.NORM": "FrozenBN",
        })
    return exp


@pytest.mark.parametrize("rel", VIDEO_CONFIGS)
def test_video_config_hyper_parameters(rel):
    cfg = make_cfg(rel)
    wrong = config_mismatches(cfg, expected_for(rel))
    assert not wrong, f"{rel}: (got, expected) {wrong}"
