"""The project's `Trainer` with a toy model (tiny linear model) and loader, to test the engine's
reliability features without the real model.

Imported by tests/engine/conftest.py and by the two-worker script (a plain module so that a
subprocess can import it)."""
import itertools

import torch
from mask2former.engine import Trainer

from helpers import make_cfg


class ToyModel(torch.nn.Module):
    """Loss dict model: batch = list of {"x": [4] tensor, "bad": None | "nan" | "inf" | "grad"}."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 2)
        self.head = torch.nn.Linear(2, 1)

    def forward(self, batch):
        x = torch.stack([b["x"] for b in batch])
        y = self.head(self.lin(x))
        loss_a = (y ** 2).mean()
        loss_b = y.abs().mean()
        bad = {b.get("bad") for b in batch}
        if "nan" in bad:
            loss_b = loss_b * float("nan")
        if "inf" in bad:
            loss_a = loss_a + float("inf")
        if "grad" in bad:  # finite loss, infinite gradient
            loss_a = loss_a + torch.sqrt(self.head.bias * 0).sum()  # d sqrt(0) -> inf * 0
        return {"loss_a": loss_a, "loss_b": loss_b}


def toy_loader(bad_at=()):
    """Infinite loader; the batch of the i-th call is bad when i is in ``bad_at``."""
    def gen():
        g = torch.Generator().manual_seed(0)
        for i in itertools.count():
            bad = bad_at.get(i) if isinstance(bad_at, dict) else ("nan" if i in bad_at else None)
            yield [{"x": torch.randn(4, generator=g), "bad": bad}]
    return gen()


def make_toy_trainer(tmp_path, *, max_iter=6, period=2, bad_at=(), action="stop", max_skips=20,
                     check_gradients=True, step_trainer_cls=None):
    """A `Trainer` on `ToyModel` and `toy_loader(bad_at)`; ``step_trainer_cls`` replaces the inner
    step trainer (a SimpleTrainer subclass built as ``cls(model, data_loader, optimizer)``)."""
    cfg = make_cfg()
    cfg.OUTPUT_DIR = str(tmp_path)
    cfg.SOLVER.MAX_ITER = max_iter
    cfg.SOLVER.CHECKPOINT_PERIOD = period
    cfg.SOLVER.BASE_LR = 0.01
    cfg.SOLVER.WARMUP_ITERS = 0
    cfg.SOLVER.IMS_PER_BATCH = 1
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupMultiStepLR"
    cfg.SOLVER.NONFINITE_LOSS.ACTION = action
    cfg.SOLVER.NONFINITE_LOSS.MAX_CONSECUTIVE_SKIPS = max_skips
    cfg.SOLVER.NONFINITE_LOSS.CHECK_GRADIENTS = check_gradients
    cfg.DATASETS.TRAIN = ()
    cfg.DATASETS.TEST = ()
    cfg.TEST.EVAL_PERIOD = 0
    cfg.MODEL.DEVICE = "cpu"

    class Toy(Trainer):
        @classmethod
        def build_model(cls, cfg):
            torch.manual_seed(0)
            return ToyModel()

        @classmethod
        def build_train_loader(cls, cfg):
            return toy_loader(bad_at)

        @classmethod
        def build_optimizer(cls, cfg, model):
            return torch.optim.AdamW(model.parameters(), lr=cfg.SOLVER.BASE_LR)

        @classmethod
        def build_step_trainer(cls, cfg, model, data_loader, optimizer):
            if step_trainer_cls is None:
                return super().build_step_trainer(cfg, model, data_loader, optimizer)
            return step_trainer_cls(model, data_loader, optimizer)

    return Toy(cfg)
