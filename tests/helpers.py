"""The one helper module of the test suite: repository paths, configs, samples, scripts.

``tests/`` is on ``sys.path`` (pytest's rootdir conftest), so every test imports it as
``from helpers import ...``. Nothing here reads outside the repository: the real COCO sample,
the reference fixtures and the original models' state_dict listings are copied into it
(``datasets/samples/``, ``tests/fixtures/``; their READMEs say where they came from).
"""

import functools
import importlib.util
import json
import os
import sys

import torch

from detectron2.config import CfgNode, get_cfg
from detectron2.modeling import build_model

from mask2former import add_maskformer2_config, add_maskformer2_video_config
from mask2former.utils.testing import deterministic_init_  # noqa: F401  (re-exported)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO, "configs")
FIXTURES = os.path.join(REPO, "tests", "fixtures")
STATE_DICT_DIR = os.path.join(FIXTURES, "state_dict")
# Two real COCO val2017 images with panoptic ground truth (datasets/samples/README.md)
COCO_SAMPLE = os.path.join(REPO, "datasets", "samples", "coco_panoptic_sample")
COCO_IMAGES = os.path.join(COCO_SAMPLE, "input_images")
COCO_IMAGE_FILES = sorted(
    os.path.join(COCO_IMAGES, f) for f in os.listdir(COCO_IMAGES) if f.endswith(".jpg"))


def leave_worker() -> None:
    """End a test's gloo worker process (Detectron2's ``launch``) once its results are written:
    a barrier (neither worker leaves while the other still talks to it), then exit without the
    interpreter's teardown. torch 2.3.1's gloo group, left to the exit destructors,
    intermittently aborts the process ("terminate called without an active exception", SIGABRT:
    seen in a full suite run on 2 busy cores), and ``destroy_process_group()`` intermittently
    blocks instead (tests/modeling/test_criterion.py). The caller must have closed its files."""
    from detectron2.utils import comm

    comm.synchronize()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def repo_path(*parts: str) -> str:
    """Absolute path of a file of the repository."""
    return os.path.join(REPO, *parts)


def config_path(rel: str) -> str:
    """Absolute path of ``configs/<rel>`` (``rel`` may also be absolute)."""
    return rel if os.path.isabs(rel) else os.path.join(CONFIGS, rel)


def all_config_files():
    """Every model config (paths relative to configs/) except base files and configs/quickstart."""
    out = []
    for root, _, files in os.walk(CONFIGS):
        for f in files:
            rel = os.path.relpath(os.path.join(root, f), CONFIGS)
            if f.endswith(".yaml") and not f.startswith("Base-") and not rel.startswith("quickstart"):
                out.append(rel)
    return sorted(out)


def is_video_config(rel) -> bool:
    """True for the video (Mask2Former-VIS) configs: those whose META_ARCHITECTURE, read through
    their ``_BASE_`` chain, is "VideoMaskFormer"."""
    if rel is None:
        return False
    merged = CfgNode.load_yaml_with_base(config_path(rel), allow_unsafe=True)
    return merged.get("MODEL", {}).get("META_ARCHITECTURE") == "VideoMaskFormer"


def make_cfg(rel=None, *opts, device="cpu", video=None):
    """A config with the Mask2Former keys, ``configs/<rel>`` merged (if given), then ``opts``;
    MODEL.DEVICE is ``device``. The video keys (`add_maskformer2_video_config`) are added for
    ``video=True`` and, by default, for the video configs (:func:`is_video_config`)."""
    cfg = get_cfg()
    add_maskformer2_config(cfg)
    if video or (video is None and is_video_config(rel)):
        add_maskformer2_video_config(cfg)
    if rel is not None:
        cfg.merge_from_file(config_path(rel))
    cfg.merge_from_list(["MODEL.DEVICE", device, *opts])
    return cfg


@functools.lru_cache(maxsize=None)
def cached_model(rel, *opts):
    """``build_model(make_cfg(rel, *opts))`` in eval mode, built once per session (do not mutate)."""
    torch.manual_seed(0)
    return build_model(make_cfg(rel, *opts)).eval()


def build_on_meta(rel, *opts):
    """Build the model of a config on the meta device: the layout without allocating weights."""
    cfg = make_cfg(rel, *opts, device="meta")
    with torch.device("meta"):
        return build_model(cfg)


# state_dict listing (tests/fixtures/state_dict/<name>.json) -> our config file
LISTINGS = {
    "coco_panoptic_r50": "coco/panoptic/r50.yaml",
    "ade20k_semantic_r50": "ade20k/semantic/r50.yaml",
    "cityscapes_panoptic_r101": "cityscapes/panoptic/r101.yaml",
    "coco_panoptic_swin_t": "coco/panoptic/swin_t.yaml",
    "coco_panoptic_swin_l": "coco/panoptic/swin_l.yaml",
    # MaskFormer v1 (facebookresearch/MaskFormer)
    "v1_ade20k_semantic_r50": "ade20k/semantic/maskformer_r50.yaml",
    "v1_coco_panoptic_r50": "coco/panoptic/maskformer_r50.yaml",
    "ytvis2019_r50": "youtubevis_2019/r50.yaml",
    "ytvis2019_swin_t": "youtubevis_2019/swin_t.yaml",
}

# A small video model (R18 GN, width 32, 4 queries, 2 decoder layers) on top of
# configs/youtubevis_2019/r50.yaml: the structure of the released model, fast on CPU.
TINY_VIDEO_CONFIG = "youtubevis_2019/r50.yaml"
TINY_VIDEO_OPTS = (
    "MODEL.WEIGHTS", "", "MODEL.RESNETS.DEPTH", "18", "MODEL.RESNETS.RES2_OUT_CHANNELS", "64",
    "MODEL.RESNETS.NORM", "GN", "MODEL.SEM_SEG_HEAD.CONVS_DIM", "32",
    "MODEL.SEM_SEG_HEAD.MASK_DIM", "32", "MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS", "1",
    "MODEL.MASK_FORMER.HIDDEN_DIM", "32", "MODEL.MASK_FORMER.DIM_FEEDFORWARD", "64",
    "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES", "4", "MODEL.MASK_FORMER.DEC_LAYERS", "3",
    "MODEL.MASK_FORMER.TRAIN_NUM_POINTS", "256", "MODEL.SEM_SEG_HEAD.NUM_CLASSES", "5",
)


def load_listing(name: str) -> dict:
    """The original model's state_dict listing ``tests/fixtures/state_dict/<name>.json``:
    {"official_config", "num_tensors", "num_params", "state_dict": {key: [shape, dtype]}}."""
    with open(os.path.join(STATE_DICT_DIR, f"{name}.json")) as f:
        return json.load(f)


def released_weights(name: str) -> dict:
    """``{key: numpy array}`` for every tensor of the original model's listing ``name``
    (``tests/fixtures/state_dict/<name>.json``), made only from that listing: floating-point
    tensors hold ``deterministic_values(key, shape)``, integer ones zeros. Independent of this
    project's model code."""
    import numpy as np

    from mask2former.utils.testing import deterministic_values

    weights = {}
    for key, (shape, dtype) in load_listing(name)["state_dict"].items():
        if dtype.startswith("float"):
            weights[key] = deterministic_values(key, shape, torch.float32).numpy().astype(dtype)
        else:
            weights[key] = np.zeros(shape, dtype=dtype)
    return weights


def write_released_checkpoint(path, weights: dict, author: str = "Mask2Former tests") -> str:
    """Write ``weights`` ({key: numpy array}) as a released model-zoo checkpoint: a pickle of
    ``{"model": weights, "__author__": author}`` (the format of the original's model_final_*.pkl).
    Returns ``path`` as a string."""
    import pickle

    with open(path, "wb") as f:
        pickle.dump({"model": weights, "__author__": author}, f)
    return str(path)


def load_script(path: str, module_name: str, *, register: bool = False):
    """Execute the script at ``path`` (absolute, or relative to the repository root) as module
    ``module_name``; scripts are not packages (some have dashes in their names), tests call their
    functions directly. With ``register`` the module is kept in ``sys.modules`` and reused by later
    calls (for scripts whose objects are pickled or imported by name)."""
    if register and module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, os.path.join(REPO, path))
    module = importlib.util.module_from_spec(spec)
    if register:
        sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)  # no half-initialised module for later calls
        raise
    return module


# A tiny Mask2Former (R18-like backbone, 32-d head, 8 queries, 3 decoder layers) on 64x64
# synthetic COCO-panoptic data; deterministic mapper (no scale jitter, no flip), FrozenBN so
# that the per-process batch size does not change the maths.
TINY_TRAIN_CONFIG = f"""
_BASE_: {CONFIGS}/coco/panoptic/r50.yaml
MODEL:
  WEIGHTS: ""
  DEVICE: cpu
  RESNETS:
    DEPTH: 18
    RES2_OUT_CHANNELS: 64
    NORM: "FrozenBN"
  SEM_SEG_HEAD:
    NUM_CLASSES: 7
    CONVS_DIM: 32
    MASK_DIM: 32
    TRANSFORMER_ENC_LAYERS: 1
  MASK_FORMER:
    HIDDEN_DIM: 32
    NUM_OBJECT_QUERIES: 8
    NHEADS: 4
    DIM_FEEDFORWARD: 64
    DEC_LAYERS: 4
    TRAIN_NUM_POINTS: 256
    TEST:
      SEMANTIC_ON: True
      INSTANCE_ON: False
      PANOPTIC_ON: True
DATASETS:
  TRAIN: ("synthetic_panoptic_train",)
  TEST: ("synthetic_panoptic_val",)
INPUT:
  DATASET_MAPPER_NAME: "coco_panoptic_lsj"
  IMAGE_SIZE: 64
  MIN_SCALE: 1.0
  MAX_SCALE: 1.0
  RANDOM_FLIP: "none"
  MIN_SIZE_TEST: 64
  MAX_SIZE_TEST: 64
SOLVER:
  IMS_PER_BATCH: 2
  BASE_LR: 0.003
  MAX_ITER: 8
  WARMUP_ITERS: 0
  CHECKPOINT_PERIOD: 4
  STEPS: ()
  AMP:
    ENABLED: False
TEST:
  EVAL_PERIOD: 0
DATALOADER:
  NUM_WORKERS: 0
SEED: 7
"""


# The quick-start model shrunk further (32-wide, 4 queries, 1 encoder / 1 decoder layer, 64 px):
# for tests that run real training steps in seconds.
QUICKSTART_CONFIG = config_path("quickstart/synthetic_panoptic.yaml")
TINY_QUICKSTART_OPTS = [
    "SOLVER.IMS_PER_BATCH", "1", "DATALOADER.NUM_WORKERS", "0", "INPUT.IMAGE_SIZE", "64",
    "MODEL.SEM_SEG_HEAD.CONVS_DIM", "32", "MODEL.SEM_SEG_HEAD.MASK_DIM", "32",
    "MODEL.MASK_FORMER.HIDDEN_DIM", "32", "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES", "4",
    "MODEL.MASK_FORMER.DEC_LAYERS", "2", "MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS", "1",
    "MODEL.MASK_FORMER.DIM_FEEDFORWARD", "64", "MODEL.MASK_FORMER.TRAIN_NUM_POINTS", "256",
    "SOLVER.WARMUP_ITERS", "0", "TEST.EVAL_PERIOD", "0", "DATASETS.TEST", "()",
]


def parity_tool():
    """``tools/parity_check.py`` as a module: ``run(fixture, config, image=None, *, model=None)``
    -> [(name, agrees, detail)], ``build_model(fixture, config)``, ``report``, ``main``."""
    return load_script("tools/parity_check.py", "m2f_parity_check", register=True)


def cfg_value(cfg, dotted: str):
    """``cfg.A.B.C`` for ``dotted`` = "A.B.C"."""
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def config_mismatches(cfg, expected: dict) -> dict:
    """{key: (got, expected)} for the keys of ``expected`` whose value in ``cfg`` differs
    (lists and tuples compare by their items)."""
    wrong = {}
    for key, want in expected.items():
        got = cfg_value(cfg, key)
        if isinstance(want, (list, tuple)):
            got, want = list(got), list(want)
        if got != want:
            wrong[key] = (got, want)
    return wrong
