"""A training batch whose images have no segments (or an all-empty mask) must give finite losses."""
import torch
from detectron2.modeling import build_model
from detectron2.structures import Instances

from helpers import QUICKSTART_CONFIG, TINY_QUICKSTART_OPTS, make_cfg


def _sample(g, n_inst, empty_mask=False):
    image = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=g)
    inst = Instances((64, 64))
    inst.gt_classes = torch.randint(0, 7, (n_inst,), generator=g)
    masks = torch.zeros(n_inst, 64, 64, dtype=torch.bool)
    for i in range(n_inst):
        if not empty_mask:
            masks[i, 8 * i: 8 * i + 20, 10:40] = True
    inst.gt_masks = masks
    return {"image": image, "instances": inst, "height": 64, "width": 64}


def test_no_segments_and_empty_masks_train_finitely():
    cfg = make_cfg(QUICKSTART_CONFIG, *TINY_QUICKSTART_OPTS)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    g = torch.Generator().manual_seed(0)
    for batch in ([_sample(g, 0), _sample(g, 0)],          # no segments at all
                  [_sample(g, 0), _sample(g, 2)],          # one image without segments
                  [_sample(g, 2, empty_mask=True)]):       # zero-area masks (e.g. cropped away)
        model.zero_grad()
        losses = model(batch)
        total = sum(losses.values())
        assert all(torch.isfinite(v) for v in losses.values()), losses
        total.backward()
        for n, p in model.named_parameters():
            if p.grad is not None:
                assert torch.isfinite(p.grad).all(), n
