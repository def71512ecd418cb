"""Batched inference: several images of different sizes in one ``model([...])`` call give the same
results as one image at a time (issue 9).

Padding changes the features of the whole image (convolutions near the border, GroupNorm
statistics, position encodings, both decoders' attention), so the meta-arch runs images of
different padded sizes as separate batches (``MaskFormer.padding_groups``). Measured with the
deterministic weights below (R50, the two COCO samples resized to 96x128 / 128x96): padding
them together into one 128x128 batch changes sem_seg by up to ~16 (values up to ~37), the
panoptic ids of 14% of the pixels and the instance classes; grouped, sem_seg differs by <= 4e-5
(a batch of two equal-size images vs one at a time).
"""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from detectron2.modeling import build_model

from helpers import COCO_IMAGES, deterministic_init_, make_cfg

SAMPLES = COCO_IMAGES
# (sample, height, width): two sizes in one batch, plus a second image of the first size so that
# a group of equal-size images also runs as one batch.
INPUTS = [("000000142238.jpg", 64, 96), ("000000439180.jpg", 96, 64), ("000000439180.jpg", 64, 96)]


@pytest.fixture(scope="module")
def model():
    cfg = make_cfg(
        "coco/panoptic/r50.yaml",
        "MODEL.MASK_FORMER.TEST.SEMANTIC_ON", "True",
        "MODEL.MASK_FORMER.TEST.INSTANCE_ON", "True",
        "MODEL.MASK_FORMER.TEST.PANOPTIC_ON", "True",
    )
    return deterministic_init_(build_model(cfg).eval())


def load_input(name, h, w):
    img = Image.open(os.path.join(SAMPLES, name)).convert("RGB").resize((w, h), Image.BILINEAR)
    bgr = np.ascontiguousarray(np.asarray(img)[:, :, ::-1].transpose(2, 0, 1))
    # "height"/"width" differ from the image size for one input: the output resize is exercised
    return {"image": torch.as_tensor(bgr), "height": h, "width": w}


@pytest.fixture(scope="module")
def results(model):
    inputs = [load_input(*spec) for spec in INPUTS]
    inputs[2]["height"], inputs[2]["width"] = 80, 120
    with torch.no_grad():
        single = [model([x])[0] for x in inputs]
        batched = model(inputs)
    return single, batched


def test_padding_groups(model):
    inputs = [load_input(*spec) for spec in INPUTS] + [load_input(INPUTS[0][0], 50, 70)]
    # 50x70 pads to 64x96 like the first and third image
    assert model.padding_groups(inputs) == [[0, 2, 3], [1]]


def test_batched_equals_single(results):
    single, batched = results
    assert len(batched) == len(single)
    nonempty_panoptic = 0
    for i, (s, b) in enumerate(zip(single, batched)):
        assert b["sem_seg"].shape == s["sem_seg"].shape
        torch.testing.assert_close(b["sem_seg"], s["sem_seg"], rtol=1e-4, atol=1e-4)

        (seg_s, info_s), (seg_b, info_b) = s["panoptic_seg"], b["panoptic_seg"]
        assert torch.equal(seg_b, seg_s), f"image {i}: panoptic ids differ"
        assert info_b == info_s
        nonempty_panoptic += len(info_s) > 0

        ins_s, ins_b = s["instances"], b["instances"]
        assert ins_b.image_size == ins_s.image_size
        assert len(ins_b) == len(ins_s) > 0
        os_, ob = ins_s.scores.argsort(descending=True, stable=True), ins_b.scores.argsort(
            descending=True, stable=True
        )
        torch.testing.assert_close(ins_b.scores[ob], ins_s.scores[os_], rtol=1e-4, atol=1e-5)
        assert torch.equal(ins_b.pred_classes[ob], ins_s.pred_classes[os_])
        agree = (ins_b.pred_masks[ob] == ins_s.pred_masks[os_]).float().mean().item()
        assert agree >= 0.9999, f"image {i}: {agree:.5%} of instance mask pixels agree"
    assert nonempty_panoptic > 0, "no panoptic segment at all: the comparison would be vacuous"


def test_output_sizes(results):
    _, batched = results
    sizes = [tuple(r["sem_seg"].shape[-2:]) for r in batched]
    assert sizes == [(64, 96), (96, 64), (80, 120)]
    assert [tuple(r["panoptic_seg"][0].shape) for r in batched] == sizes


@pytest.mark.parametrize("image_size,out_size", [((60, 90), (60, 90)), ((60, 90), (75, 50))])
def test_crop_and_resize_matches_detectron2(image_size, out_size):
    """The meta-arch's crop + resize equals Detectron2's sem_seg_postprocess (the resize to the
    same size is skipped: bilinear at scale 1 is exactly the identity)."""
    from detectron2.modeling.postprocessing import sem_seg_postprocess

    from mask2former.modeling.postprocessing import crop_and_resize

    x = torch.randn(5, 64, 96, generator=torch.Generator().manual_seed(0))
    got = crop_and_resize(x, image_size, *out_size)
    want = sem_seg_postprocess(x, image_size, *out_size)
    assert got.is_contiguous()
    assert torch.equal(got, want)
