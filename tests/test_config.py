"""add_maskformer2_config (SPEC §3) and the hyper-parameters of every config file."""

import os

import pytest

from detectron2.config import get_cfg

from mask2former import add_maskformer2_config, add_maskformer2_video_config
from helpers import all_config_files as model_configs
from helpers import cfg_value as get
from helpers import config_mismatches, is_video_config

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")

DEFAULTS = {
    "INPUT.DATASET_MAPPER_NAME": "mask_former_semantic",
    "INPUT.COLOR_AUG_SSD": False,
    "INPUT.CROP.SINGLE_CATEGORY_MAX_AREA": 1.0,
    "INPUT.SIZE_DIVISIBILITY": -1,
    "INPUT.IMAGE_SIZE": 1024,
    "INPUT.MIN_SCALE": 0.1,
    "INPUT.MAX_SCALE": 2.0,
    "SOLVER.WEIGHT_DECAY_EMBED": 0.0,
    "SOLVER.OPTIMIZER": "ADAMW",
    "SOLVER.BACKBONE_MULTIPLIER": 0.1,
    "MODEL.MASK_FORMER.DEEP_SUPERVISION": True,
    "MODEL.MASK_FORMER.NO_OBJECT_WEIGHT": 0.1,
    "MODEL.MASK_FORMER.CLASS_WEIGHT": 1.0,
    "MODEL.MASK_FORMER.DICE_WEIGHT": 1.0,
    "MODEL.MASK_FORMER.MASK_WEIGHT": 20.0,
    "MODEL.MASK_FORMER.NHEADS": 8,
    "MODEL.MASK_FORMER.DROPOUT": 0.1,
    "MODEL.MASK_FORMER.DIM_FEEDFORWARD": 2048,
    "MODEL.MASK_FORMER.ENC_LAYERS": 0,
    "MODEL.MASK_FORMER.DEC_LAYERS": 6,
    "MODEL.MASK_FORMER.PRE_NORM": False,
    "MODEL.MASK_FORMER.HIDDEN_DIM": 256,
    "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES": 100,
    "MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE": "res5",
    "MODEL.MASK_FORMER.ENFORCE_INPUT_PROJ": False,
    "MODEL.MASK_FORMER.SIZE_DIVISIBILITY": 32,
    "MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME": "MultiScaleMaskedTransformerDecoder",
    "MODEL.MASK_FORMER.TRAIN_NUM_POINTS": 112 * 112,
    "MODEL.MASK_FORMER.MASK_LOSS_TYPE": "bce",
    "MODEL.MASK_FORMER.OVERSAMPLE_RATIO": 3.0,
    "MODEL.MASK_FORMER.IMPORTANCE_SAMPLE_RATIO": 0.75,
    "MODEL.MASK_FORMER.TEST.SEMANTIC_ON": True,
    "MODEL.MASK_FORMER.TEST.INSTANCE_ON": False,
    "MODEL.MASK_FORMER.TEST.PANOPTIC_ON": False,
    "MODEL.MASK_FORMER.TEST.OBJECT_MASK_THRESHOLD": 0.0,
    "MODEL.MASK_FORMER.TEST.OVERLAP_THRESHOLD": 0.0,
    "MODEL.MASK_FORMER.TEST.SEM_SEG_POSTPROCESSING_BEFORE_INFERENCE": False,
    "MODEL.MASK_FORMER.TEST.PANOPTIC_SEGMENT_WITHIN_MASK": True,
    "MODEL.SEM_SEG_HEAD.MASK_DIM": 256,
    "MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS": 0,
    "MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME": "BasePixelDecoder",
    "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES": ["res3", "res4", "res5"],
    "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS": 4,
    "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS": 8,
    "MODEL.SWIN.PRETRAIN_IMG_SIZE": 224,
    "MODEL.SWIN.PATCH_SIZE": 4,
    "MODEL.SWIN.EMBED_DIM": 96,
    "MODEL.SWIN.DEPTHS": [2, 2, 6, 2],
    "MODEL.SWIN.NUM_HEADS": [3, 6, 12, 24],
    "MODEL.SWIN.WINDOW_SIZE": 7,
    "MODEL.SWIN.MLP_RATIO": 4.0,
    "MODEL.SWIN.QKV_BIAS": True,
    "MODEL.SWIN.QK_SCALE": None,
    "MODEL.SWIN.DROP_RATE": 0.0,
    "MODEL.SWIN.ATTN_DROP_RATE": 0.0,
    "MODEL.SWIN.DROP_PATH_RATE": 0.3,
    "MODEL.SWIN.APE": False,
    "MODEL.SWIN.PATCH_NORM": True,
    "MODEL.SWIN.OUT_FEATURES": ["res2", "res3", "res4", "res5"],
    "MODEL.SWIN.USE_CHECKPOINT": False,
    # DeepLab keys the released YAMLs set
    "MODEL.RESNETS.STEM_TYPE": "deeplab",
    "MODEL.RESNETS.RES5_MULTI_GRID": [1, 2, 4],
    "SOLVER.POLY_LR_POWER": 0.9,
    "SOLVER.POLY_LR_CONSTANT_ENDING": 0.0,
}


def new_cfg():
    cfg = get_cfg()
    add_maskformer2_config(cfg)
    return cfg


def load(rel):
    cfg = new_cfg()
    if is_video_config(rel):
        add_maskformer2_video_config(cfg)
    cfg.merge_from_file(os.path.join(CONFIGS, rel))
    return cfg




@pytest.mark.parametrize("key", sorted(DEFAULTS))
def test_default(key):
    assert get(new_cfg(), key) == DEFAULTS[key]


def test_idempotent_and_keeps_merged_values():
    cfg = new_cfg()
    cfg.MODEL.MASK_FORMER.NUM_OBJECT_QUERIES = 200
    cfg.SOLVER.POLY_LR_POWER = 1.5
    before = cfg.dump()
    add_maskformer2_config(cfg)
    assert cfg.dump() == before
    assert cfg.MODEL.MASK_FORMER.NUM_OBJECT_QUERIES == 200


def test_after_add_deeplab_config():
    from detectron2.projects.deeplab import add_deeplab_config

    cfg = get_cfg()
    add_deeplab_config(cfg)
    add_maskformer2_config(cfg)
    assert cfg.MODEL.MASK_FORMER.DEC_LAYERS == 6


def test_unknown_key_still_fails():
    cfg = new_cfg()
    with pytest.raises(AssertionError, match="Non-existent key"):
        cfg.merge_from_list(["MODEL.MASK_FORMER.NOT_A_KEY", 1])


# ---- hyper-parameters of the config files (SPEC §3) -------------------------------------------
COMMON = {
    "MODEL.META_ARCHITECTURE": "MaskFormer",
    "MODEL.SEM_SEG_HEAD.NAME": "MaskFormerHead",
    "MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME": "MSDeformAttnPixelDecoder",
    "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES": ["res3", "res4", "res5"],
    "MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS": 6,
    "MODEL.SEM_SEG_HEAD.CONVS_DIM": 256,
    "MODEL.SEM_SEG_HEAD.MASK_DIM": 256,
    "MODEL.SEM_SEG_HEAD.NORM": "GN",
    "MODEL.SEM_SEG_HEAD.COMMON_STRIDE": 4,
    "MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME": "MultiScaleMaskedTransformerDecoder",
    "MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE": "multi_scale_pixel_decoder",
    "MODEL.MASK_FORMER.HIDDEN_DIM": 256,
    "MODEL.MASK_FORMER.NHEADS": 8,
    "MODEL.MASK_FORMER.DIM_FEEDFORWARD": 2048,
    "MODEL.MASK_FORMER.DEC_LAYERS": 10,
    "MODEL.MASK_FORMER.DROPOUT": 0.0,
    "MODEL.MASK_FORMER.PRE_NORM": False,
    "MODEL.MASK_FORMER.DEEP_SUPERVISION": True,
    "MODEL.MASK_FORMER.CLASS_WEIGHT": 2.0,
    "MODEL.MASK_FORMER.MASK_WEIGHT": 5.0,
    "MODEL.MASK_FORMER.DICE_WEIGHT": 5.0,
    "MODEL.MASK_FORMER.NO_OBJECT_WEIGHT": 0.1,
    "MODEL.MASK_FORMER.TRAIN_NUM_POINTS": 12544,
    "MODEL.MASK_FORMER.OVERSAMPLE_RATIO": 3.0,
    "MODEL.MASK_FORMER.IMPORTANCE_SAMPLE_RATIO": 0.75,
    "MODEL.MASK_FORMER.SIZE_DIVISIBILITY": 32,
    "MODEL.MASK_FORMER.TEST.OBJECT_MASK_THRESHOLD": 0.8,
    "MODEL.MASK_FORMER.TEST.OVERLAP_THRESHOLD": 0.8,
    "TEST.DETECTIONS_PER_IMAGE": 100,
    "SOLVER.OPTIMIZER": "ADAMW",
    "SOLVER.BASE_LR": 0.0001,
    "SOLVER.WEIGHT_DECAY": 0.05,
    "SOLVER.IMS_PER_BATCH": 16,
    "SOLVER.BACKBONE_MULTIPLIER": 0.1,
    "SOLVER.CLIP_GRADIENTS.ENABLED": True,
    "SOLVER.CLIP_GRADIENTS.CLIP_TYPE": "full_model",
    "SOLVER.CLIP_GRADIENTS.CLIP_VALUE": 0.01,
    "SOLVER.AMP.ENABLED": True,
    "INPUT.FORMAT": "RGB",
    "MODEL.PIXEL_MEAN": [123.675, 116.28, 103.53],
    "MODEL.PIXEL_STD": [58.395, 57.12, 57.375],
    "MODEL.RESNETS.STRIDE_IN_1X1": False,
    "MODEL.BACKBONE.FREEZE_AT": 0,
}

SWIN = {  # backbone -> (EMBED_DIM, DEPTHS, NUM_HEADS, WINDOW_SIZE, PRETRAIN_IMG_SIZE, weights)
    "swin_t": (96, [2, 2, 6, 2], [3, 6, 12, 24], 7, 224, "swin_tiny_patch4_window7_224.pkl"),
    "swin_s": (96, [2, 2, 18, 2], [3, 6, 12, 24], 7, 224, "swin_small_patch4_window7_224.pkl"),
    "swin_b": (128, [2, 2, 18, 2], [4, 8, 16, 32], 12, 384, "swin_base_patch4_window12_384.pkl"),
    "swin_b_in21k": (
        128,
        [2, 2, 18, 2],
        [4, 8, 16, 32],
        12,
        384,
        "swin_base_patch4_window12_384_22k.pkl",
    ),
    "swin_l": (
        192,
        [2, 2, 18, 2],
        [6, 12, 24, 48],
        12,
        384,
        "swin_large_patch4_window12_384_22k.pkl",
    ),
}

DATASETS = {  # (dataset, task) -> (train, test, classes, mapper, (semantic, instance, panoptic))
    ("coco", "panoptic"): (
        "coco_2017_train_panoptic",
        "coco_2017_val_panoptic_with_sem_seg",
        133,
        "coco_panoptic_lsj",
        (True, True, True),
    ),
    ("coco", "instance"): (
        "coco_2017_train",
        "coco_2017_val",
        80,
        "coco_instance_lsj",
        (False, True, False),
    ),
    ("ade20k", "semantic"): (
        "ade20k_sem_seg_train",
        "ade20k_sem_seg_val",
        150,
        "mask_former_semantic",
        (True, False, False),
    ),
    ("ade20k", "panoptic"): (
        "ade20k_panoptic_train",
        "ade20k_panoptic_val",
        150,
        "mask_former_panoptic",
        (True, True, True),
    ),
    ("ade20k", "instance"): (
        "ade20k_instance_train",
        "ade20k_instance_val",
        100,
        "mask_former_instance",
        (True, True, True),  # as the original (only instance AP is scored)
    ),
    ("cityscapes", "semantic"): (
        "cityscapes_fine_sem_seg_train",
        "cityscapes_fine_sem_seg_val",
        19,
        "mask_former_semantic",
        (True, False, False),
    ),
    ("cityscapes", "instance"): (
        "cityscapes_fine_instance_seg_train",
        "cityscapes_fine_instance_seg_val",
        8,
        "mask_former_instance",
        (False, True, False),
    ),
    ("cityscapes", "panoptic"): (
        "cityscapes_fine_panoptic_train",
        "cityscapes_fine_panoptic_val",
        19,
        "mask_former_panoptic",
        (True, True, True),
    ),
    ("mapillary_vistas", "semantic"): (
        "mapillary_vistas_sem_seg_train",
        "mapillary_vistas_sem_seg_val",
        65,
        "mask_former_semantic",
        (True, False, False),
    ),
    ("mapillary_vistas", "panoptic"): (
        "mapillary_vistas_panoptic_train",
        "mapillary_vistas_panoptic_val",
        65,
        "mask_former_panoptic",
        (True, False, True),
    ),
}


def expected_for(rel):
    dataset, task, name = rel[: -len(".yaml")].split("/")
    exp = dict(COMMON)
    train, test, classes, mapper, (sem, ins, pan) = DATASETS[(dataset, task)]
    exp.update(
        {
            "DATASETS.TRAIN": (train,),
            "DATASETS.TEST": (test,),
            "MODEL.SEM_SEG_HEAD.NUM_CLASSES": classes,
            "INPUT.DATASET_MAPPER_NAME": mapper,
            "MODEL.MASK_FORMER.TEST.SEMANTIC_ON": sem,
            "MODEL.MASK_FORMER.TEST.INSTANCE_ON": ins,
            "MODEL.MASK_FORMER.TEST.PANOPTIC_ON": pan,
        }
    )
    large = name == "swin_l"
    exp["MODEL.MASK_FORMER.NUM_OBJECT_QUERIES"] = 200 if large and task != "semantic" else 100
    if name.startswith("swin"):
        dim, depths, heads, window, pre, weights = SWIN[name]
        exp.update(
            {
                "MODEL.BACKBONE.NAME": "D2SwinTransformer",
                "MODEL.SWIN.EMBED_DIM": dim,
                "MODEL.SWIN.DEPTHS": depths,
                "MODEL.SWIN.NUM_HEADS": heads,
                "MODEL.SWIN.WINDOW_SIZE": window,
                "MODEL.SWIN.PRETRAIN_IMG_SIZE": pre,
                "MODEL.SWIN.DROP_PATH_RATE": 0.3,
                "MODEL.SWIN.APE": False,
                "MODEL.SWIN.PATCH_NORM": True,
                "MODEL.WEIGHTS": weights,
            }
        )
    else:
        exp.update(
            {
                "MODEL.BACKBONE.NAME": "build_resnet_backbone",
                "MODEL.RESNETS.DEPTH": 101 if name == "r101" else 50,
                # SyncBN: Cityscapes and the ADE20K semantic R101 config of the original
                "MODEL.RESNETS.NORM": "SyncBN" if dataset == "cityscapes" or (
                    dataset == "ade20k" and task == "semantic" and name == "r101") else "FrozenBN",
            }
        )
    if dataset == "coco":
        exp["SOLVER.MAX_ITER"] = 737500 if large else 368750
        exp.update({"INPUT.IMAGE_SIZE": 1024, "INPUT.MIN_SCALE": 0.1, "INPUT.MAX_SCALE": 2.0})
    elif dataset == "ade20k":
        exp["SOLVER.MAX_ITER"] = 160000
        exp["SOLVER.LR_SCHEDULER_NAME"] = "WarmupPolyLR"
        crop = 640 if (task != "semantic" or name in ("swin_b", "swin_b_in21k", "swin_l")) else 512
        exp["INPUT.CROP.SIZE"] = [crop, crop]
    elif dataset == "cityscapes":
        exp["SOLVER.MAX_ITER"] = 90000
        exp["SOLVER.LR_SCHEDULER_NAME"] = "WarmupPolyLR"
        exp["INPUT.CROP.SIZE"] = [512, 1024]
    else:
        exp["SOLVER.MAX_ITER"] = 300000
        exp["SOLVER.LR_SCHEDULER_NAME"] = "WarmupPolyLR"
        exp["INPUT.CROP.SIZE"] = [1024, 1024]
        exp["MODEL.SEM_SEG_HEAD.IGNORE_VALUE"] = 65
        # the original's Mapillary Vistas configs keep every query (semantic and panoptic)
        exp["MODEL.MASK_FORMER.TEST.OBJECT_MASK_THRESHOLD"] = 0.0
    return exp


MASK2FORMER_CONFIGS = [  # image configs; the video ones: tests/test_config_video.py
    c for c in model_configs()
    if not os.path.basename(c).startswith(("maskformer_", "per_pixel_baseline"))
    and not c.startswith("youtubevis_")
]


@pytest.mark.parametrize("rel", MASK2FORMER_CONFIGS)
def test_config_hyper_parameters(rel):
    cfg = load(rel)
    wrong = config_mismatches(cfg, expected_for(rel))
    assert not wrong, f"{rel}: (got, expected) {wrong}"


# ---- MaskFormer v1 configs (SPEC §10) -------------------------------------------------------
V1_COMMON = {
    "MODEL.META_ARCHITECTURE": "MaskFormer",
    "MODEL.SEM_SEG_HEAD.NAME": "MaskFormerHead",
    "MODEL.SEM_SEG_HEAD.CONVS_DIM": 256,
    "MODEL.SEM_SEG_HEAD.MASK_DIM": 256,
    "MODEL.SEM_SEG_HEAD.NORM": "GN",
    "MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME": "TransformerPredictor",
    "MODEL.MASK_FORMER.HIDDEN_DIM": 256,
    "MODEL.MASK_FORMER.NHEADS": 8,
    "MODEL.MASK_FORMER.DIM_FEEDFORWARD": 2048,
    "MODEL.MASK_FORMER.DEC_LAYERS": 6,
    "MODEL.MASK_FORMER.ENC_LAYERS": 0,
    "MODEL.MASK_FORMER.DROPOUT": 0.1,
    "MODEL.MASK_FORMER.PRE_NORM": False,
    "MODEL.MASK_FORMER.ENFORCE_INPUT_PROJ": False,
    "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES": 100,
    "MODEL.MASK_FORMER.DEEP_SUPERVISION": True,
    "MODEL.MASK_FORMER.CLASS_WEIGHT": 1.0,
    "MODEL.MASK_FORMER.MASK_WEIGHT": 20.0,
    "MODEL.MASK_FORMER.DICE_WEIGHT": 1.0,
    "MODEL.MASK_FORMER.NO_OBJECT_WEIGHT": 0.1,
    "MODEL.MASK_FORMER.MASK_LOSS_TYPE": "focal",
    "MODEL.MASK_FORMER.TRAIN_NUM_POINTS": 0,
    "MODEL.MASK_FORMER.TEST.INSTANCE_ON": False,
    "MODEL.MASK_FORMER.TEST.SEMANTIC_ON": True,
    "MODEL.MASK_FORMER.TEST.PANOPTIC_SEGMENT_WITHIN_MASK": False,
    "SOLVER.OPTIMIZER": "ADAMW",
    "SOLVER.CLIP_GRADIENTS.CLIP_TYPE": "full_model",
    "SOLVER.CLIP_GRADIENTS.CLIP_VALUE": 0.01,
    "SOLVER.AMP.ENABLED": False,
    "INPUT.FORMAT": "RGB",
}
V1_CONFIGS = [c for c in model_configs() if os.path.basename(c).startswith("maskformer_")]


@pytest.mark.parametrize("rel", V1_CONFIGS)
def test_maskformer_v1_config(rel):
    cfg = load(rel)
    wrong = {k: (get(cfg, k), v) for k, v in V1_COMMON.items() if get(cfg, k) != v}
    assert not wrong, f"{rel}: (got, expected) {wrong}"
    panoptic = "/panoptic/" in rel
    head = cfg.MODEL.SEM_SEG_HEAD
    assert head.PIXEL_DECODER_NAME == (
        "TransformerEncoderPixelDecoder" if panoptic else "BasePixelDecoder")
    assert head.TRANSFORMER_ENC_LAYERS == (6 if panoptic else 0)
    assert cfg.MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE == (
        "transformer_encoder" if panoptic else "res5")
    assert cfg.MODEL.MASK_FORMER.TEST.PANOPTIC_ON == panoptic
    swin = "swin" in rel
    assert cfg.MODEL.BACKBONE.NAME == (
        "D2SwinTransformer" if swin else
        "build_resnet_deeplab_backbone" if rel.endswith("r101c.yaml") else "build_resnet_backbone")
    assert cfg.MODEL.RESNETS.DEPTH == (50 if rel.endswith("r50.yaml") or swin else 101)
    if "ade20k/semantic" in rel and swin:  # Swin's segmentation recipe
        assert (cfg.SOLVER.BASE_LR, cfg.SOLVER.WEIGHT_DECAY, cfg.SOLVER.BACKBONE_MULTIPLIER) == (
            0.00006, 0.01, 1.0)
    elif not swin:
        assert (cfg.SOLVER.BASE_LR, cfg.SOLVER.WEIGHT_DECAY, cfg.SOLVER.BACKBONE_MULTIPLIER) == (
            0.0001, 0.0001, 0.1)


@pytest.mark.parametrize("rel", [c for c in model_configs()
                                 if os.path.basename(c).startswith("per_pixel_baseline")])
def test_per_pixel_baseline_config(rel):
    cfg = load(rel)
    assert cfg.MODEL.META_ARCHITECTURE == "SemanticSegmentor"
    plus = "baseline_plus" in rel
    assert cfg.MODEL.SEM_SEG_HEAD.NAME == (
        "PerPixelBaselinePlusHead" if plus else "PerPixelBaselineHead")
    assert cfg.MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME == "BasePixelDecoder"
    assert cfg.MODEL.RESNETS.DEPTH == (101 if rel.endswith("r101.yaml") else 50)
    if plus:
        assert cfg.MODEL.MASK_FORMER.NUM_OBJECT_QUERIES == cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES


def _base_chain(path):
    """The files a config inherits from, itself first (following _BASE_)."""
    import yaml

    chain = [os.path.normpath(path)]
    while True:
        with open(chain[-1]) as f:
            base = (yaml.safe_load(f) or {}).get("_BASE_")
        if not base:
            return chain
        chain.append(os.path.normpath(os.path.join(os.path.dirname(chain[-1]), base)))


@pytest.mark.parametrize("rel", model_configs())
def test_at_most_three_levels_of_base(rel):
    """Per-dataset/task bases plus per-backbone overrides: a model config, its task base, the
    dataset base and the family base at most (the original has at most two levels)."""
    chain = _base_chain(os.path.join(CONFIGS, rel))
    assert len(chain) - 1 <= 3, " -> ".join(os.path.relpath(c, CONFIGS) for c in chain)
    # a model config never inherits from another model config: only from Base-*.yaml files
    assert all(os.path.basename(c).startswith("Base-") for c in chain[1:]), chain


@pytest.mark.parametrize("rel", model_configs())
def test_no_inert_keys(rel):
    """The config files never write keys the built model does not read: the DeepLab stem keys
    only matter to the DeepLab ResNet (build_resnet_deeplab_backbone)."""
    cfg = load(rel)
    inert = () if "deeplab" in cfg.MODEL.BACKBONE.NAME else ("STEM_TYPE:", "RES5_MULTI_GRID:")
    for path in _base_chain(os.path.join(CONFIGS, rel)):
        with open(path) as f:
            text = f.read()
        assert not [k for k in inert if k in text], f"{path} sets keys {rel} never reads"
        assert "not used" not in text, f"{path} has a key commented 'not used'"


def test_the_original_package_exports():
    """Scripts written for the original import these names from the package."""
    import mask2former

    for name in ("add_maskformer2_config", "add_maskformer2_video_config", "MaskFormer",
                 "VideoMaskFormer", "SemanticSegmentorWithTTA", "InstanceSegEvaluator",
                 "YTVISEvaluator", "COCOInstanceNewBaselineDatasetMapper",
                 "COCOPanopticNewBaselineDatasetMapper", "MaskFormerInstanceDatasetMapper",
                 "MaskFormerPanopticDatasetMapper", "MaskFormerSemanticDatasetMapper",
                 "YTVISDatasetMapper"):
        assert callable(getattr(mask2former, name)), name


@pytest.mark.parametrize("rel,threshold", [
    ("mapillary_vistas/panoptic/r50.yaml", 0.0), ("mapillary_vistas/panoptic/swin_l.yaml", 0.0),
    ("mapillary_vistas/semantic/r50.yaml", 0.0), ("mapillary_vistas/semantic/swin_l.yaml", 0.0),
    ("coco/panoptic/r50.yaml", 0.8)])
def test_object_mask_threshold_as_the_original(rel, threshold):
    assert load(rel).MODEL.MASK_FORMER.TEST.OBJECT_MASK_THRESHOLD == threshold


def test_ade20k_facts_as_the_original():
    assert load("ade20k/semantic/r101.yaml").MODEL.RESNETS.NORM == "SyncBN"
    test = load("ade20k/instance/r50.yaml").MODEL.MASK_FORMER.TEST
    assert test.SEMANTIC_ON and test.INSTANCE_ON and test.PANOPTIC_ON
