"""A checkpoint in the released model-zoo format loads exactly through the loaders of
``train_net.py --eval-only`` and ``demo/demo.py``, and one that differs from the original model's
layout by a single tensor is refused.

The file is written by ``helpers.write_released_checkpoint`` from the original model's key/shape
listing (tests/fixtures/state_dict/coco_panoptic_r50.json) and the deterministic values alone,
not from the model under test, so it can disagree with the model.
"""

import numpy as np
import pytest

from detectron2.engine import default_argument_parser

from helpers import config_path, load_script, released_weights, write_released_checkpoint
from mask2former.checkpoint import CheckpointKeysError, CheckpointShapeError

LISTING = "coco_panoptic_r50"
CONFIG = config_path("coco/panoptic/r50.yaml")
CLASS_W = "sem_seg_head.predictor.class_embed.weight"


@pytest.fixture(scope="module")
def weights():
    return released_weights(LISTING)


def _load_with_train_net(path, out_dir, monkeypatch):
    """train_net.main(--eval-only MODEL.WEIGHTS path): the model it evaluates (evaluation itself
    is replaced, no dataset is read)."""
    train_net = load_script("train_net.py", "train_net", register=True)
    seen = []

    def record(cls, cfg, model, evaluators=None):
        seen.append(model)
        return {}

    monkeypatch.setattr(train_net.Trainer, "test", classmethod(record))
    args = default_argument_parser().parse_args(
        ["--config-file", CONFIG, "--eval-only", "MODEL.WEIGHTS", path, "MODEL.DEVICE", "cpu",
         "OUTPUT_DIR", str(out_dir)])
    train_net.main(args)
    assert len(seen) == 1
    return seen[0]


def _load_with_demo(path):
    """demo/demo.py's set-up: setup_cfg(its parser) then VisualizationDemo; its model."""
    demo = load_script("demo/demo.py", "m2f_demo_script", register=True)
    args = demo.get_parser().parse_args(
        ["--config-file", CONFIG, "--input", "unused.jpg",
         "--opts", "MODEL.WEIGHTS", path, "MODEL.DEVICE", "cpu"])
    return demo.VisualizationDemo(demo.setup_cfg(args)).predictor.model


LOADERS = {
    "train_net": lambda path, tmp_path, monkeypatch: _load_with_train_net(path, tmp_path,
                                                                          monkeypatch),
    "demo": lambda path, tmp_path, monkeypatch: _load_with_demo(path),
}


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_released_checkpoint_loads_exactly(loader, weights, tmp_path, monkeypatch):
    path = write_released_checkpoint(tmp_path / "model_final_released.pkl", weights)
    model = LOADERS[loader](path, tmp_path / "out", monkeypatch)
    state = model.state_dict()
    assert sorted(state) == sorted(weights)
    for key, value in state.items():
        assert np.array_equal(value.cpu().numpy(), weights[key]), key


def _renamed(w):
    w["sem_seg_head.predictor.class_embed.kernel"] = w.pop(CLASS_W)
    return CheckpointKeysError, r"1 model tensor\(s\) missing .*class_embed\.weight.*class_embed\.kernel"


def _missing(w):
    del w["sem_seg_head.pixel_decoder.adapter_1.weight"]
    return CheckpointKeysError, r"1 model tensor\(s\) missing from it \(sem_seg_head.pixel_decoder.adapter_1.weight\), 0 "


def _extra(w):
    w["sem_seg_head.predictor.extra_proj.weight"] = np.zeros((4, 4), np.float32)
    return CheckpointKeysError, r"0 model tensor\(s\) missing from it, 1 checkpoint tensor\(s\) the model does not have \(sem_seg_head.predictor.extra_proj.weight\)"


def _misshaped(w):
    w[CLASS_W] = w[CLASS_W][:81]  # a COCO-instance head (80 classes) on the panoptic model
    return CheckpointShapeError, r"set MODEL.SEM_SEG_HEAD.NUM_CLASSES 80"


CORRUPTIONS = {"renamed": _renamed, "missing": _missing, "extra": _extra, "misshaped": _misshaped}


@pytest.mark.parametrize("loader", sorted(LOADERS))
@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_released_checkpoint_differing_by_one_tensor_is_refused(corruption, loader, weights,
                                                                tmp_path, monkeypatch):
    w = dict(weights)
    error, message = CORRUPTIONS[corruption](w)
    path = write_released_checkpoint(tmp_path / f"model_{corruption}.pkl", w)
    with pytest.raises(error, match=message):
        LOADERS[loader](path, tmp_path / "out", monkeypatch)
