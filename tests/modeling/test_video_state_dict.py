"""The video models' state_dicts equal the original's listings key for key, shape for shape, and a
released-style pickle of the video model loads with no missing or unexpected key."""

import os
import pickle

import numpy as np
import pytest
import torch

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from helpers import build_on_meta, load_listing, make_cfg

# listing (tests/fixtures/state_dict/<name>.json, copied from the original) -> our config
VIDEO_LISTINGS = {
    "ytvis2019_r50": "youtubevis_2019/r50.yaml",
    "ytvis2019_swin_t": "youtubevis_2019/swin_t.yaml",
}


def _layout(model):
    return {
        k: [list(v.shape), str(v.dtype).replace("torch.", "")]
        for k, v in model.state_dict().items()
    }


@pytest.mark.parametrize("name", sorted(VIDEO_LISTINGS))
def test_video_state_dict_matches_listing(name):
    ref = load_listing(name)
    model = build_on_meta(VIDEO_LISTINGS[name])
    got, want = _layout(model), ref["state_dict"]
    missing = [k for k in want if k not in got]
    unexpected = [k for k in got if k not in want]
    assert not missing and not unexpected, (
        f"{name}: missing {missing[:10]} ({len(missing)}), unexpected {unexpected[:10]} "
        f"({len(unexpected)})"
    )
    wrong = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
    assert not wrong, f"{name}: shape/dtype differ: {dict(list(wrong.items())[:10])}"
    assert list(got) == list(want), f"{name}: same keys but a different order"
    assert len(got) == ref["num_tensors"]
    assert sum(p.numel() for p in model.parameters()) == ref["num_params"]


def test_video_listings_are_the_video_configs():
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
