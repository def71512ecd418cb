"""mask2former/solver.py: optimizer parameter groups, full-model gradient clipping, schedules."""

import pytest
import torch
from torch import nn

from detectron2.solver.lr_scheduler import LRMultiplier

from mask2former.solver import add_full_model_gradient_clipping, build_lr_scheduler, build_optimizer

from helpers import make_cfg


def _cfg():
    return make_cfg()


class _ToyModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.backbone.relative_position_bias_table = nn.Parameter(torch.zeros(3, 2))
        self.query_embed = nn.Embedding(5, 4)
        self.norm = nn.LayerNorm(4)
        self.gn = nn.GroupNorm(2, 4)
        self.head = nn.Linear(4, 2)


def _group_of(opt, param):
    return next(g for g in opt.param_groups if any(p is param for p in g["params"]))


@pytest.mark.parametrize("name,cls", [("ADAMW", torch.optim.AdamW), ("SGD", torch.optim.SGD)])
def test_optimizer_param_groups(name, cls):
    cfg = _cfg()
    cfg.SOLVER.OPTIMIZER = name
    cfg.SOLVER.BASE_LR = 1e-3
    cfg.SOLVER.WEIGHT_DECAY = 0.05
    cfg.SOLVER.WEIGHT_DECAY_NORM = 0.0
    cfg.SOLVER.WEIGHT_DECAY_EMBED = 0.0
    cfg.SOLVER.BACKBONE_MULTIPLIER = 0.1
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "full_model"
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 0.01
    m = _ToyModel()
    opt = build_optimizer(cfg, m)
    assert isinstance(opt, cls) and "FullModelGradientClipping" in type(opt).__name__
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(m.parameters()))
    expect = {  # param: (lr, weight decay)
        m.backbone[0].weight: (1e-4, 0.05),
        m.backbone[1].weight: (1e-4, 0.0),  # norm in backbone
        m.backbone.relative_position_bias_table: (1e-4, 0.0),
        m.query_embed.weight: (1e-3, 0.0),
        m.norm.weight: (1e-3, 0.0),
        m.gn.bias: (1e-3, 0.0),
        m.head.weight: (1e-3, 0.05),
    }
    for p, (lr, wd) in expect.items():
        g = _group_of(opt, p)
        assert g["lr"] == pytest.approx(lr) and g["weight_decay"] == pytest.approx(wd)
    cfg.SOLVER.OPTIMIZER = "LAMB"
    with pytest.raises(ValueError, match="OPTIMIZER"):
        build_optimizer(cfg, m)


def _param_after_one_step(use_scaler: bool, clip: bool):
    torch.manual_seed(0)
    p = nn.Parameter(torch.ones(4))
    opt_cls = add_full_model_gradient_clipping(torch.optim.SGD, 0.01) if clip else torch.optim.SGD
    opt = opt_cls([p], lr=1.0)
    loss = (p * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum()
    if use_scaler:
        scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
        scaler.scale(loss).backward()
        assert p.grad.abs().max() > 1000  # really scaled
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        opt.step()
    return p.detach()


def test_full_model_clipping_happens_after_amp_unscale():
    plain = _param_after_one_step(use_scaler=False, clip=True)
    scaled = _param_after_one_step(use_scaler=True, clip=True)
    # grad (1,2,3,4) clipped to norm 0.01, lr 1 → the same step with and without the scaler
    expected = torch.ones(4) - torch.tensor([1.0, 2.0, 3.0, 4.0]) / 30**0.5 * 0.01
    assert torch.allclose(plain, expected, atol=1e-6)
    assert torch.allclose(scaled, expected, atol=1e-6)
    # and clipping really changes the step
    assert not torch.allclose(_param_after_one_step(False, False), expected, atol=1e-3)


def test_full_model_clipping_uses_global_norm():
    a, b = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    opt = add_full_model_gradient_clipping(torch.optim.SGD, 1.0)(
        [{"params": [a]}, {"params": [b]}], lr=1.0
    )
    (3 * a + 4 * b).sum().backward()  # global norm 5 → scale 1/5 for both
    opt.step()
    assert a.item() == pytest.approx(-0.6, abs=1e-5) and b.item() == pytest.approx(-0.8, abs=1e-5)


def test_poly_lr_scheduler():
    cfg = _cfg()
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupPolyLR"
    cfg.SOLVER.MAX_ITER = 100
    cfg.SOLVER.WARMUP_ITERS = 0
    cfg.SOLVER.POLY_LR_POWER = 0.9
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_lr_scheduler(cfg, opt)
    assert type(sched).__name__ == "WarmupPolyLR"
    for _ in range(50):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx((1 - 50 / 100) ** 0.9, rel=1e-4)
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupMultiStepLR"
    assert isinstance(build_lr_scheduler(cfg, opt), LRMultiplier)
