"""mask2former/modeling/test_time_augmentation.py: semantic multi-scale + flip TTA."""

import torch
from torch import nn

from mask2former.modeling.test_time_augmentation import SemanticSegmentorWithTTA

from helpers import make_cfg


class _ImageScoreModel(nn.Module):
    """sem_seg = the image's channels resized to the requested (height, width)."""

    def forward(self, batched_inputs):
        out = []
        for x in batched_inputs:
            img = x["image"].float()[None]
            out.append(
                {
                    "sem_seg": nn.functional.interpolate(
                        img, size=(x["height"], x["width"]), mode="bilinear", align_corners=False
                    )[0]
                }
            )
        return out


def test_semantic_tta_flips_back_and_averages():
    cfg = make_cfg()
    cfg.INPUT.FORMAT = "RGB"
    cfg.TEST.AUG.MIN_SIZES = (16,)
    cfg.TEST.AUG.MAX_SIZE = 1000
    cfg.TEST.AUG.FLIP = True
    image = torch.arange(3 * 16 * 24, dtype=torch.float32).reshape(3, 16, 24) % 251
    inputs = [{"image": image.to(torch.uint8), "height": 16, "width": 24}]
    model = _ImageScoreModel()
    out = SemanticSegmentorWithTTA(cfg, model)(inputs)[0]["sem_seg"]
    assert torch.allclose(out, image.to(torch.uint8).float(), atol=1e-4)  # flip undone exactly
    cfg.TEST.AUG.MIN_SIZES = (16, 32)
    out2 = SemanticSegmentorWithTTA(cfg, model)(inputs)[0]["sem_seg"]
    assert out2.shape == (3, 16, 24)
    assert not torch.allclose(out2, out)  # the 32 scale contributes (resize blurs)
