"""TEST.PRECISION: bf16 inference (autocast backbone and head, fp32 post-processing) and the
clear errors / fp32 fallback of mask2former.utils.precision."""

import logging

import pytest
import torch
from detectron2.modeling import build_model

from mask2former.utils import precision

from helpers import QUICKSTART_CONFIG, TINY_QUICKSTART_OPTS, deterministic_init_, make_cfg


def _model(*opts):
    cfg = make_cfg(QUICKSTART_CONFIG, *TINY_QUICKSTART_OPTS, "MODEL.MASK_FORMER.TEST.PANOPTIC_ON",
                   "True", "MODEL.MASK_FORMER.TEST.INSTANCE_ON", "True", *opts)
    return deterministic_init_(build_model(cfg).eval())


def test_bf16_inference_runs_the_network_in_bf16_and_post_processes_in_fp32(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_support", lambda: (True, "test"))
    fp32, bf16 = _model(), _model("TEST.PRECISION", "bf16")
    assert fp32.inference_dtype is None and bf16.inference_dtype == torch.bfloat16
    seen = []
    linear = bf16.sem_seg_head.predictor.class_embed
    linear.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    g = torch.Generator().manual_seed(0)
    inputs = [{"image": torch.randint(0, 255, (3, 64, 96), generator=g).to(torch.uint8),
               "height": 64, "width": 96}]
    with torch.no_grad():
        want, got = fp32(inputs)[0], bf16(inputs)[0]
    assert seen and set(seen) == {torch.bfloat16}
    assert got["sem_seg"].dtype == torch.float32 and got["instances"].scores.dtype == torch.float32
    err = (got["sem_seg"] - want["sem_seg"]).norm() / want["sem_seg"].norm()
    assert err < 5e-2, err  # bf16 keeps ~3 significant digits


def test_unsupported_cpu_runs_fp32_and_says_why(monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_bf16_support", lambda: (False, "test: no bf16 here"))
    with caplog.at_level(logging.WARNING):
        assert precision.inference_dtype("bf16", "cpu") is None
    assert "running fp32, because test: no bf16 here" in caplog.text


def test_bad_precisions_are_clear_errors():
    with pytest.raises(ValueError, match="fp16 is for CUDA"):
        precision.inference_dtype("fp16", "cpu")
    with pytest.raises(ValueError, match="TEST.PRECISION must be one of"):
        precision.inference_dtype("int8", "cpu")
    assert precision.inference_dtype("FP32", "cpu") is None
