"""Config keys of Mask2Former and MaskFormer v1 (SPEC §3, §10) and the checks that explain bad
configs.

    cfg = detectron2.config.get_cfg()
    add_maskformer2_config(cfg)
    merge_config_checked(cfg, "configs/coco/panoptic/r50.yaml", ["MODEL.WEIGHTS", "model.pkl"])

`add_maskformer2_config` adds every key the released configs of both image variants use
(Mask2Former's ``add_maskformer2_config`` is a superset of MaskFormer v1's
``add_mask_former_config``), with the defaults of the original Mask2Former implementation, plus
``MODEL.MASK_FORMER.MASK_LOSS_TYPE`` and ``TEST.PANOPTIC_SEGMENT_WITHIN_MASK`` (to select
v1's loss and panoptic rule), plus the DeepLab keys (``MODEL.RESNETS.STEM_TYPE``,
``RES5_MULTI_GRID``, ``SOLVER.POLY_LR_*``, ...) from Detectron2's DeepLab project. It is
idempotent: a key that already exists is never reset, so calling it twice (or after
``add_deeplab_config``) keeps values that were already merged.

Video instance segmentation (Mask2Former-VIS, SPEC §9) adds its keys with
`add_maskformer2_video_config` (which also adds the image keys), as the original's
``mask2former_video`` did::

    add_maskformer2_config(cfg)
    add_maskformer2_video_config(cfg)
    cfg.merge_from_file("configs/youtubevis_2019/r50.yaml")

Known quirks of the original, kept on purpose (SPEC §3):
  * ``MODEL.MASK_FORMER.DEC_LAYERS`` counts the prediction made from the learnable queries:
    10 means 9 decoder layers and 9 auxiliary outputs (Mask2Former). MaskFormer v1's predictor
    counts layers: 6 means 6 decoder layers and 5 auxiliary outputs.
  * MaskFormer v1 had no TRANSFORMER_DECODER_NAME, CLASS_WEIGHT (1) or point-sampling keys; its
    configs here set TRANSFORMER_DECODER_NAME "TransformerPredictor", CLASS_WEIGHT 1.0,
    MASK_LOSS_TYPE "focal", TRAIN_NUM_POINTS 0 and TEST.PANOPTIC_SEGMENT_WITHIN_MASK False
    explicitly.
  * The feed-forward width of the deformable encoder is fixed at 1024 (no key).
  * ``MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS`` / ``_N_HEADS`` were ignored by
    the original (4 points; heads taken from ``MODEL.MASK_FORMER.NHEADS``). Here they are
    effective; their defaults (4, 8) reproduce the released models, which all use NHEADS 8.
"""

import difflib
import logging
import os
from typing import Iterable, List, Optional, Sequence

from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog

__all__ = [
    "add_maskformer2_config",
    "add_maskformer2_video_config",
    "ConfigError",
    "merge_config_checked",
    "check_num_classes",
    "expected_num_classes",
]

logger = logging.getLogger(__name__)


def _set_default(node, key, value):
    """Set ``node.key = value`` unless the key already exists (keeps merged values)."""
    if key not in node:
        node[key] = value


def _child(node, key):
    if key not in node:
        node[key] = CfgNode()
    return node[key]


def _add_deeplab_keys(cfg):
    """The DeepLab keys the released YAMLs set (from Detectron2's DeepLab project)."""
    if "POLY_LR_POWER" in cfg.SOLVER:  # already added (by us or by add_deeplab_config)
        return
    try:
        from detectron2.projects.deeplab import add_deeplab_config
    except ImportError:  # a Detectron2 build without the projects package: same keys by hand
        add_deeplab_config = None
    if add_deeplab_config is not None:
        add_deeplab_config(cfg)
        return
    _set_default(cfg.INPUT.CROP, "SINGLE_CATEGORY_MAX_AREA", 1.0)
    _set_default(cfg.SOLVER, "POLY_LR_POWER", 0.9)
    _set_default(cfg.SOLVER, "POLY_LR_CONSTANT_ENDING", 0.0)
    _set_default(cfg.MODEL.SEM_SEG_HEAD, "LOSS_TYPE", "hard_pixel_mining")
    _set_default(cfg.MODEL.SEM_SEG_HEAD, "PROJECT_FEATURES", ["res2"])
    _set_default(cfg.MODEL.SEM_SEG_HEAD, "PROJECT_CHANNELS", [48])
    _set_default(cfg.MODEL.SEM_SEG_HEAD, "ASPP_CHANNELS", 256)
    _set_default(cfg.MODEL.SEM_SEG_HEAD, "ASPP_DILATIONS", [6, 12, 18])
    _set_default(cfg.MODEL.SEM_SEG_HEAD, "ASPP_DROPOUT", 0.1)
    _set_default(cfg.MODEL.SEM_SEG_HEAD, "USE_DEPTHWISE_SEPARABLE_CONV", False)
    _set_default(cfg.MODEL.RESNETS, "RES4_DILATION", 1)
    _set_default(cfg.MODEL.RESNETS, "RES5_MULTI_GRID", [1, 2, 4])
    _set_default(cfg.MODEL.RESNETS, "STEM_TYPE", "deeplab")


def add_maskformer2_config(cfg):
    """Add the Mask2Former config keys (SPEC §3) to ``cfg`` in place; idempotent."""
    _add_deeplab_keys(cfg)

    # ---- data ----
    inp = cfg.INPUT
    _set_default(inp, "DATASET_MAPPER_NAME", "mask_former_semantic")
    _set_default(inp, "COLOR_AUG_SSD", False)
    _set_default(inp.CROP, "SINGLE_CATEGORY_MAX_AREA", 1.0)
    # A fixed pad size for the semantic/panoptic mappers (-1: no padding), despite its name.
    _set_default(inp, "SIZE_DIVISIBILITY", -1)
    # Large-scale jittering (LSJ) of the COCO mappers.
    _set_default(inp, "IMAGE_SIZE", 1024)
    _set_default(inp, "MIN_SCALE", 0.1)
    _set_default(inp, "MAX_SCALE", 2.0)

    # ---- solver ----
    _set_default(cfg.SOLVER, "WEIGHT_DECAY_EMBED", 0.0)
    _set_default(cfg.SOLVER, "OPTIMIZER", "ADAMW")
    _set_default(cfg.SOLVER, "BACKBONE_MULTIPLIER", 0.1)

    # ---- mask former (meta-architecture, transformer decoder, losses) ----
    mf = _child(cfg.MODEL, "MASK_FORMER")
    _set_default(mf, "DEEP_SUPERVISION", True)
    _set_default(mf, "NO_OBJECT_WEIGHT", 0.1)
    _set_default(mf, "CLASS_WEIGHT", 1.0)
    _set_default(mf, "DICE_WEIGHT", 1.0)
    _set_default(mf, "MASK_WEIGHT", 20.0)
    _set_default(mf, "NHEADS", 8)
    _set_default(mf, "DROPOUT", 0.1)
    _set_default(mf, "DIM_FEEDFORWARD", 2048)
    _set_default(mf, "ENC_LAYERS", 0)
    # Mask2Former: number of predictions (decoder layers + 1); MaskFormer v1: decoder layers.
    _set_default(mf, "DEC_LAYERS", 6)
    # ENC_LAYERS, PRE_NORM, ENFORCE_INPUT_PROJ and a backbone TRANSFORMER_IN_FEATURE ("res5") or
    # "transformer_encoder" are read by MaskFormer v1's TransformerPredictor (SPEC §10).
    _set_default(mf, "PRE_NORM", False)
    _set_default(mf, "HIDDEN_DIM", 256)
    _set_default(mf, "NUM_OBJECT_QUERIES", 100)
    _set_default(mf, "TRANSFORMER_IN_FEATURE", "res5")
    _set_default(mf, "ENFORCE_INPUT_PROJ", False)
    # Batch padding of the meta-architecture (-1: the backbone's size_divisibility).
    _set_default(mf, "SIZE_DIVISIBILITY", 32)
    _set_default(mf, "TRANSFORMER_DECODER_NAME", "MultiScaleMaskedTransformerDecoder")
    # Per-pixel mask loss and matching cost: "bce" (Mask2Former) or "focal" (MaskFormer v1:
    # sigmoid focal loss, alpha 0.25, gamma 2). Not a key of either original (each had one loss).
    _set_default(mf, "MASK_LOSS_TYPE", "bce")
    # Point-sampled mask loss (0 points: dense loss and matching, as MaskFormer v1).
    _set_default(mf, "TRAIN_NUM_POINTS", 112 * 112)
    _set_default(mf, "OVERSAMPLE_RATIO", 3.0)
    _set_default(mf, "IMPORTANCE_SAMPLE_RATIO", 0.75)

    test = _child(mf, "TEST")
    _set_default(test, "SEMANTIC_ON", True)
    _set_default(test, "INSTANCE_ON", False)
    _set_default(test, "PANOPTIC_ON", False)
    _set_default(test, "OBJECT_MASK_THRESHOLD", 0.0)
    _set_default(test, "OVERLAP_THRESHOLD", 0.0)
    _set_default(test, "SEM_SEG_POSTPROCESSING_BEFORE_INFERENCE", False)
    # Panoptic segment of a query: the pixels it wins where its own sigmoid >= 0.5 (True,
    # Mask2Former) or every pixel it wins (False, MaskFormer v1). Not a key of either original.
    _set_default(test, "PANOPTIC_SEGMENT_WITHIN_MASK", True)

    # ---- pixel decoder ----
    head = cfg.MODEL.SEM_SEG_HEAD
    _set_default(head, "MASK_DIM", 256)
    # encoder layers of MaskFormer v1's TransformerEncoderPixelDecoder (MSDeformAttnPixelDecoder
    # reads it too)
    _set_default(head, "TRANSFORMER_ENC_LAYERS", 0)
    _set_default(head, "PIXEL_DECODER_NAME", "BasePixelDecoder")
    _set_default(head, "DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES", ["res3", "res4", "res5"])
    _set_default(head, "DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS", 4)
    _set_default(head, "DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS", 8)

    # ---- Swin backbone ----
    swin = _child(cfg.MODEL, "SWIN")
    _set_default(swin, "PRETRAIN_IMG_SIZE", 224)
    _set_default(swin, "PATCH_SIZE", 4)
    _set_default(swin, "EMBED_DIM", 96)
    _set_default(swin, "DEPTHS", [2, 2, 6, 2])
    _set_default(swin, "NUM_HEADS", [3, 6, 12, 24])
    _set_default(swin, "WINDOW_SIZE", 7)
    _set_default(swin, "MLP_RATIO", 4.0)
    _set_default(swin, "QKV_BIAS", True)
    _set_default(swin, "QK_SCALE", None)
    _set_default(swin, "DROP_RATE", 0.0)
    _set_default(swin, "ATTN_DROP_RATE", 0.0)
    _set_default(swin, "DROP_PATH_RATE", 0.3)
    _set_default(swin, "APE", False)
    _set_default(swin, "PATCH_NORM", True)
    _set_default(swin, "OUT_FEATURES", ["res2", "res3", "res4", "res5"])
    _set_default(swin, "USE_CHECKPOINT", False)

    # ---- runtime ----
    # On CPU, install mask2former's caching allocator (mask2former/utils/allocator.py) in
    # train_net.py and demo/demo.py: large buffers are reused instead of page-faulted in again
    # for every image (CPU post-processing 3.7x faster; CPU training about the same). Like
    # CUDNN_BENCHMARK, a process-wide runtime setting; no effect on CUDA runs.
    _set_default(cfg, "CPU_CACHING_ALLOCATOR", True)

    # ---- reliability (mask2former/engine/hooks.py, mask2former/data/robust_loading.py) ----
    # SOLVER.NONFINITE_LOSS.ACTION "stop": a NaN/Inf loss term (or gradient) ends training with
    #   an error naming the iteration and the terms, before the optimizer step, and blocks
    #   further checkpoint saves so the last good one is kept. "skip": drop that step (no
    #   update), count it (event storage scalar ``nonfinite_skipped_steps``) and continue.
    # MAX_CONSECUTIVE_SKIPS: with "skip", stop anyway after this many non-finite steps in a row.
    # CHECK_GRADIENTS: also treat a non-finite gradient norm as a non-finite step.
    guard = _child(cfg.SOLVER, "NONFINITE_LOSS")
    _set_default(guard, "ACTION", "stop")
    _set_default(guard, "MAX_CONSECUTIVE_SKIPS", 20)
    _set_default(guard, "CHECK_GRADIENTS", True)
    # DATALOADER.SKIP_BAD_SAMPLES: a training sample whose files are unreadable or inconsistent
    #   (a data fault) is skipped with a warning naming the file and the reason (summarised every
    #   SKIPPED_SUMMARY_PERIOD skips and at the end); any other error stops training.
    _set_default(cfg.DATALOADER, "SKIP_BAD_SAMPLES", True)
    _set_default(cfg.DATALOADER, "SKIPPED_SUMMARY_PERIOD", 100)
    return cfg


def add_maskformer2_video_config(cfg):
    """Add the Mask2Former-VIS config keys (SPEC §9) to ``cfg`` in place; idempotent.

    Also adds the image keys (`add_maskformer2_config`), so either call order works.

    Keys (defaults of the original in brackets):
      * INPUT.SAMPLING_FRAME_NUM [2]: frames per training clip (and the decoder's frames per
        clip in training; at inference a clip has as many frames as it is given).
      * INPUT.SAMPLING_FRAME_RANGE [20]: the frames of a training clip are sampled within this
        distance of a reference frame.
      * INPUT.SAMPLING_FRAME_SHUFFLE [False]: shuffle the sampled frames.
      * INPUT.AUGMENTATIONS [[]]: extra clip augmentations, any of "brightness", "contrast",
        "saturation", "rotation".
      * MODEL.MASK_FORMER.TEST.WINDOW_SIZE [0]: not in the original. 0 runs a clip's frames all
        at once (the original); W > 0 runs clips longer than W frames in windows of W frames
        and associates the queries of consecutive windows by their embeddings (see
        `mask2former.modeling.meta_arch.video_maskformer_model`).
    """
    add_maskformer2_config(cfg)
    inp = cfg.INPUT
    _set_default(inp, "SAMPLING_FRAME_NUM", 2)
    _set_default(inp, "SAMPLING_FRAME_RANGE", 20)
    _set_default(inp, "SAMPLING_FRAME_SHUFFLE", False)
    _set_default(inp, "AUGMENTATIONS", [])
    _set_default(cfg.MODEL.MASK_FORMER.TEST, "WINDOW_SIZE", 0)
    return cfg


# ---------------------------------------------------------------------------- checks
# Mappers whose targets are the dataset's thing classes only; all others use stuff_classes
# (which in this project's panoptic metadata cover every class).
_INSTANCE_MAPPERS = ("mask_former_instance", "coco_instance_lsj")


class ConfigError(ValueError):
    """A config value is wrong; the message says which key to change and to what."""


def _all_keys(cfg: CfgNode, prefix: str = "") -> List[str]:
    keys = []
    for k, v in cfg.items():
        full = f"{prefix}{k}"
        keys.append(full)
        if isinstance(v, CfgNode):
            keys.extend(_all_keys(v, full + "."))
    return keys


def _unknown_key_message(cfg: CfgNode, err: Exception, source: str) -> Optional[str]:
    text = str(err.args[0]) if err.args else ""
    # merge_from_file raises KeyError("Non-existent config key: X"), merge_from_list an
    # AssertionError("Non-existent key: X")
    for marker in ("Non-existent config key: ", "Non-existent key: "):
        if marker in text:
            break
    else:
        return None
    key = text.split(marker, 1)[1].strip().strip("'\"")
    candidates = _all_keys(cfg)
    close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.85)
    if not close:  # compare the last component only, within any node
        last = key.rsplit(".", 1)[-1]
        close = [c for c in candidates
                 if c.rsplit(".", 1)[-1] in difflib.get_close_matches(
                     last, [x.rsplit(".", 1)[-1] for x in candidates], n=3, cutoff=0.75)][:3]
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    return (f"Unknown config key {key} (in {source}).{hint} Fix or remove it; if it is a "
            f"Mask2Former key, make sure add_maskformer2_config(cfg) runs before the merge.")


def merge_config_checked(cfg: CfgNode, config_file: Optional[str] = None,
                         opts: Sequence[str] = ()) -> CfgNode:
    """``cfg.merge_from_file(config_file)`` then ``cfg.merge_from_list(opts)`` with clear errors.

    Raises:
        ConfigError: for an unknown key (with close matches), a missing file, or an odd
            number of ``opts`` / a type mismatch.
    """
    if config_file:
        if not os.path.isfile(config_file) and "://" not in config_file:
            raise ConfigError(f"Config file not found: {config_file}. Pass --config-file with a "
                              f"path such as configs/coco/panoptic/r50.yaml.")
        try:
            cfg.merge_from_file(config_file)
        except KeyError as e:
            msg = _unknown_key_message(cfg, e, config_file)
            if msg is None:
                raise
            raise ConfigError(msg) from None
        except ValueError as e:  # yacs type mismatch
            raise ConfigError(f"Bad value in {config_file}: {e}") from None
        except FileNotFoundError as e:  # e.g. a missing _BASE_ file
            raise ConfigError(f"{config_file} refers to a file that does not exist: "
                              f"{e.filename}") from None
    opts = list(opts or [])
    if opts:
        if len(opts) % 2:
            raise ConfigError(f"Command-line overrides must be KEY VALUE pairs; got an odd number "
                              f"of items: {opts}")
        try:
            cfg.merge_from_list(opts)
        except (KeyError, AssertionError) as e:
            msg = _unknown_key_message(cfg, e, "the command-line overrides")
            if msg is None:
                raise
            raise ConfigError(msg) from None
        except ValueError as e:  # yacs type mismatch
            raise ConfigError(f"Bad command-line override: {e}") from None
    return cfg


def expected_num_classes(cfg: CfgNode, dataset_name: str) -> Optional[int]:
    """Number of classes the model needs for ``dataset_name``, or None if metadata is silent."""
    meta = MetadataCatalog.get(dataset_name)
    mapper = cfg.INPUT.get("DATASET_MAPPER_NAME", "")
    if mapper in _INSTANCE_MAPPERS:
        classes = getattr(meta, "thing_classes", None)
    else:
        classes = getattr(meta, "stuff_classes", None)
        if classes is None:
            classes = getattr(meta, "thing_classes", None)
    return None if classes is None else len(classes)


def check_num_classes(cfg: CfgNode, dataset_names: Optional[Iterable[str]] = None) -> None:
    """Raise :class:`ConfigError` if MODEL.SEM_SEG_HEAD.NUM_CLASSES disagrees with the metadata.

    Args:
        dataset_names: defaults to DATASETS.TRAIN + DATASETS.TEST.
    """
    if dataset_names is None:
        dataset_names = list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST)
    have = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
    for name in dataset_names:
        want = expected_num_classes(cfg, name)
        if want is None:
            logger.debug("Dataset %s has no class list in its metadata; not checked.", name)
            continue
        if want != have:
            raise ConfigError(
                f"MODEL.SEM_SEG_HEAD.NUM_CLASSES is {have} but dataset '{name}' has {want} "
                f"classes (metadata of mapper '{cfg.INPUT.get('DATASET_MAPPER_NAME', '')}'). Set "
                f"MODEL.SEM_SEG_HEAD.NUM_CLASSES {want}, or use a dataset with {have} classes.")
