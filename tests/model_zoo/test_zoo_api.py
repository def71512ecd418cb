"""mask2former.model_zoo.get / get_config and MODEL.WEIGHTS mask2former://... end to end: a
synthetic zoo entry (tiny config, released-format checkpoint served by the local server)."""
import dataclasses
import pickle

import numpy as np
import pytest
import torch
from zoo_server import md5, released_format_pkl

from detectron2.modeling import build_model
from helpers import REPO, make_cfg
from mask2former import model_zoo
from mask2former.checkpoint import Mask2FormerCheckpointer
from mask2former.model_zoo import table

TINY = f"""
_BASE_: {REPO}/configs/coco/panoptic/r50.yaml
MODEL:
  WEIGHTS: ""
  RESNETS: {{DEPTH: 18, RES2_OUT_CHANNELS: 64, NORM: "FrozenBN"}}
  SEM_SEG_HEAD: {{NUM_CLASSES: 7, CONVS_DIM: 32, MASK_DIM: 32, TRANSFORMER_ENC_LAYERS: 1}}
  MASK_FORMER: {{HIDDEN_DIM: 32, NUM_OBJECT_QUERIES: 8, NHEADS: 4, DIM_FEEDFORWARD: 64,
                DEC_LAYERS: 2}}
"""
QUERY_KEY = "sem_seg_head.predictor.query_feat.weight"
BIAS_KEY = "sem_seg_head.predictor.class_embed.bias"


@pytest.fixture
def tiny_entry(zoo_server, tmp_path, monkeypatch):
    """Zoo entry ``test/panoptic/tiny`` (config in tmp_path) whose checkpoint the server serves.

    Returns (entry, the checkpoint's {name: ndarray})."""
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    # a complete released-format file for the tiny config (inference loads need every weight):
    # the model's own initial weights, with the two tensors of released_format_pkl(7)
    torch.manual_seed(1)
    weights = {k: v.numpy() for k, v in build_model(make_cfg(str(config))).state_dict().items()}
    weights.update(pickle.loads(released_format_pkl(7))["model"])
    data = pickle.dumps({"model": weights, "__author__": "tests/model_zoo (synthetic)"}, protocol=2)
    url = zoo_server.put(data, f"model_final_{md5(data)[:6]}.pkl", folder="maskformer/test/tiny")
    base = table.find_model("coco/panoptic/r50")
    entry = dataclasses.replace(base, name="test/panoptic/tiny", config=str(config), url=url,
                                md5_prefix=md5(data)[:6], queries=8, params_m=None)
    original = table._models
    monkeypatch.setattr(table, "_models", lambda: original() + (entry,))
    return entry, pickle.loads(data)["model"]


def test_get_downloads_and_loads_the_released_weights(tiny_entry, zoo_server):
    entry, weights = tiny_entry
    model = model_zoo.get("test/panoptic/tiny")  # trained=True, device="cpu"
    state = model.state_dict()
    assert torch.equal(state[QUERY_KEY], torch.from_numpy(weights[QUERY_KEY]))
    assert torch.equal(state[BIAS_KEY], torch.arange(8, dtype=torch.float32))
    assert next(model.parameters()).device.type == "cpu"
    assert len(zoo_server.requests) == 1

    # the same file through MODEL.WEIGHTS mask2former://<name>: from the cache, no request
    cfg = model_zoo.get_config("test/panoptic/tiny")
    cfg.MODEL.DEVICE = "cpu"
    other = build_model(cfg)
    assert not torch.equal(other.state_dict()[QUERY_KEY], state[QUERY_KEY])
    Mask2FormerCheckpointer(other, strict_shapes=True).load(entry.weights)
    assert torch.equal(other.state_dict()[QUERY_KEY], state[QUERY_KEY])
    assert len(zoo_server.requests) == 1


def test_get_untrained_loads_only_the_config_weights(tiny_entry, zoo_server):
    torch.manual_seed(0)
    model = model_zoo.get("test/panoptic/tiny", trained=False)
    assert not np.array_equal(model.state_dict()[QUERY_KEY].numpy(), tiny_entry[1][QUERY_KEY])
    assert zoo_server.requests == []  # MODEL.WEIGHTS "" in this config: nothing to fetch


def test_get_config(tiny_entry):
    entry, _ = tiny_entry
    cfg = model_zoo.get_config("test/panoptic/tiny")
    assert cfg.MODEL.MASK_FORMER.NUM_OBJECT_QUERIES == 8 and cfg.MODEL.WEIGHTS == ""
    assert model_zoo.get_config("test/panoptic/tiny", trained=True).MODEL.WEIGHTS == entry.url
    assert model_zoo.get_config_file("test/panoptic/tiny") == entry.config


def test_missing_config_file_is_a_clear_error(monkeypatch):
    base = table.find_model("coco/panoptic/r50")
    gone = dataclasses.replace(base, name="test/panoptic/gone", config="configs/test/gone.yaml")
    original = table._models
    monkeypatch.setattr(table, "_models", lambda: original() + (gone,))
    with pytest.raises(FileNotFoundError, match="zoo entry test/panoptic/gone is missing"):
        model_zoo.get_config_file("test/panoptic/gone")
