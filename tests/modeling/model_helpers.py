"""Helpers of the model tests: config paths, cached built models, the shared spec files."""

import functools
import json
import os

import torch

from detectron2.modeling import build_model

import helpers

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED = os.path.abspath(os.path.join(REPO, "..", "shared"))
CONFIGS = os.path.join(REPO, "configs")
STATE_DICT_DIR = os.path.join(SHARED, "spec", "state_dict")
FIXTURES = os.path.join(SHARED, "fixtures")
SHARED_TOOLS = os.path.join(SHARED, "tools")
SWIN_PY = os.path.join(REPO, "mask2former", "modeling", "backbone", "swin.py")

# state_dict listing -> our config file
LISTINGS = {
    "coco_panoptic_r50": "coco/panoptic/r50.yaml",
    "ade20k_semantic_r50": "ade20k/semantic/r50.yaml",
    "cityscapes_panoptic_r101": "cityscapes/panoptic/r101.yaml",
    "coco_panoptic_swin_t": "coco/panoptic/swin_t.yaml",
    "coco_panoptic_swin_l": "coco/panoptic/swin_l.yaml",
}


def config_path(rel):
    return os.path.join(CONFIGS, rel)


def all_config_files():
    """Every model config (relative paths) except base files and configs/quickstart."""
    out = []
    for root, _, files in os.walk(CONFIGS):
        for f in files:
            rel = os.path.relpath(os.path.join(root, f), CONFIGS)
            if (
                f.endswith(".yaml")
                and not f.startswith("Base-")
                and not rel.startswith("quickstart")
            ):
                out.append(rel)
    return sorted(out)


def make_cfg(rel, *opts):
    # tests/helpers.make_cfg: also adds the video keys for configs/youtubevis_*
    return helpers.make_cfg(rel, *opts)


@functools.lru_cache(maxsize=None)
def cached_model(rel, *opts):
    """build_model(make_cfg(rel, *opts)) in eval mode, built once per session (do not mutate)."""
    torch.manual_seed(0)
    return build_model(make_cfg(rel, *opts)).eval()


def load_listing(name):
    with open(os.path.join(STATE_DICT_DIR, f"{name}.json")) as f:
        return json.load(f)


def build_on_meta(rel, *opts):
    """Build the model of a config on the meta device: the layout without allocating weights."""
    cfg = make_cfg(rel, "MODEL.DEVICE", "meta", *opts)
    with torch.device("meta"):
        return build_model(cfg)
