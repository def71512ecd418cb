"""bf16 autocast on CPU runs the whole model, the pixel decoder included, and stays close to fp32.

Stated tolerance (R50 COCO panoptic config, deterministic weights, a COCO sample at 64x96),
relative L2 error ``|a - b| / |b|`` of the bf16-autocast result against fp32:
  * pred_logits, pred_masks (final layer):  <= 5e-2   (measured 1.5e-2 / 1.6e-2)
  * sem_seg scores:                          <= 5e-2   (measured 2.2e-2)
  * sem_seg argmax and mask-logit signs agree on >= 98% of the pixels (measured 99.9% / 99.7%)
Panoptic and instance outputs are not compared: they threshold class scores (e.g. the 0.8
object-mask threshold), so a score near a threshold may flip under bf16 rounding.
"""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from detectron2.modeling import build_model

from helpers import COCO_IMAGES, deterministic_init_, make_cfg

IMAGE = os.path.join(COCO_IMAGES, "000000439180.jpg")
REL_TOL = 5e-2
AGREE = 0.98


def rel_err(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(scope="module")
def runs():
    cfg = make_cfg("coco/panoptic/r50.yaml", "MODEL.MASK_FORMER.TEST.SEMANTIC_ON", "True")
    model = deterministic_init_(build_model(cfg).eval())
    img = Image.open(IMAGE).convert("RGB").resize((96, 64), Image.BILINEAR)
    bgr = torch.as_tensor(np.ascontiguousarray(np.asarray(img)[:, :, ::-1].transpose(2, 0, 1)))
    inputs = [{"image": bgr}]

    heads, dtypes = [], {}
    model.sem_seg_head.register_forward_hook(lambda m, i, o: heads.append(o))  # -> None
    watched = {
        "backbone": model.backbone.res5,
        "pixel_decoder.value_proj": model.sem_seg_head.pixel_decoder.transformer.encoder.layers[0]
        .self_attn.value_proj,
        "pixel_decoder.mask_features": model.sem_seg_head.pixel_decoder.mask_features,
    }
    def record(name):
        def hook(module, inputs, output):
            dtypes.setdefault(name, output.dtype)  # returns None: the output is kept

        return hook

    for name, module in watched.items():
        module.register_forward_hook(record(name))
    with torch.no_grad():
        fp32 = model(inputs)[0]
        dtypes.clear()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(inputs)[0]
    return {"fp32": fp32, "bf16": bf16, "head32": heads[0], "head16": heads[1], "dtypes": dtypes}


def test_runs_in_bf16_including_pixel_decoder(runs):
    # nothing forces fp32: the encoder's linears and the FPN convs run in the autocast dtype
    assert runs["dtypes"] == {
        "backbone": torch.bfloat16,
        "pixel_decoder.value_proj": torch.bfloat16,
        "pixel_decoder.mask_features": torch.bfloat16,
    }
    for key in ("pred_logits", "pred_masks"):
        assert torch.isfinite(runs["head16"][key].float()).all()


def test_head_outputs_close_to_fp32(runs):
    h16, h32 = runs["head16"], runs["head32"]
    for key in ("pred_logits", "pred_masks"):
        assert h16[key].shape == h32[key].shape
        err = rel_err(h16[key].float(), h32[key])
        assert err <= REL_TOL, f"{key}: relative error {err:.3e} > {REL_TOL}"
    sign = ((h16["pred_masks"] > 0) == (h32["pred_masks"] > 0)).float().mean().item()
    assert sign >= AGREE, f"mask-logit signs agree on {sign:.2%} of the pixels"


def test_semantic_close_to_fp32(runs):
    s16, s32 = runs["bf16"]["sem_seg"].float(), runs["fp32"]["sem_seg"]
    assert s16.shape == s32.shape == (s32.shape[0], 64, 96)
    err = rel_err(s16, s32)
    assert err <= REL_TOL, f"sem_seg: relative error {err:.3e} > {REL_TOL}"
    agree = (s16.argmax(0) == s32.argmax(0)).float().mean().item()
    assert agree >= AGREE, f"sem_seg argmax agrees on {agree:.2%} of the pixels"
