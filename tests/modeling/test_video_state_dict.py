"""A released-style pickle of the video model loads with no missing or unexpected key (the
state_dict listings themselves: tests/modeling/test_state_dict.py)."""

import os
import pickle

import numpy as np
import torch

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from helpers import LISTINGS, load_listing, make_cfg

# Key-for-key, shape-for-shape equality with the original's listings ytvis2019_r50 and
# ytvis2019_swin_t: tests/modeling/test_state_dict.py (helpers.LISTINGS).
VIDEO_LISTINGS = {k: v for k, v in LISTINGS.items() if k.startswith("ytvis")}


def test_video_listings_are_the_video_configs():
    assert sorted(VIDEO_LISTINGS) == ["ytvis2019_r50", "ytvis2019_swin_t"]
    for name, rel in VIDEO_LISTINGS.items():
        official = load_listing(name)["official_config"]
        assert "youtubevis_2019" in official and rel.startswith("youtubevis_2019/")


def test_released_video_pkl_loads_exactly(tmp_path):
    """A model-zoo pickle ({"model": numpy arrays, "__author__"}) of the R50 video model."""
    rel = VIDEO_LISTINGS["ytvis2019_r50"]
    torch.manual_seed(0)
    model = build_model(make_cfg(rel))
    g = torch.Generator().manual_seed(0)
    weights = {
        k: (
            torch.randn(v.shape, generator=g).to(v.dtype) if v.is_floating_point() else v.clone()
        ).numpy()
        for k, v in model.state_dict().items()
    }
    assert set(weights) == set(load_listing("ytvis2019_r50")["state_dict"])
    path = os.path.join(tmp_path, "model_final_video.pkl")
    with open(path, "wb") as f:
        pickle.dump({"model": weights, "__author__": "Mask2Former test"}, f)
    torch.manual_seed(1)
    fresh = build_model(make_cfg(rel))
    checkpointer = DetectionCheckpointer(fresh)
    incompatible = checkpointer._load_model(checkpointer._load_file(path))
    assert not incompatible.missing_keys
    assert not incompatible.unexpected_keys
    assert not incompatible.incorrect_shapes
    for k, v in fresh.state_dict().items():
        assert np.array_equal(v.numpy(), weights[k]), k
