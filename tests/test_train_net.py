"""train_net.py: optimizer / clipping / schedule / evaluators / TTA, and real training runs
(loss decreasing, resume, 2 processes, 2 "machines") of a tiny model on generated data."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from torch import nn

from detectron2.config import get_cfg
from detectron2.data import MetadataCatalog
from detectron2.engine import default_argument_parser
from detectron2.evaluation import (
    CityscapesSemSegEvaluator,
    COCOEvaluator,
    COCOPanopticEvaluator,
    DatasetEvaluators,
    SemSegEvaluator,
)
from detectron2.projects.deeplab import add_deeplab_config
from detectron2.solver.lr_scheduler import LRMultiplier

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import train_net  # noqa: E402
from mask2former import add_maskformer2_config  # noqa: E402
from mask2former.evaluation import InstanceSegEvaluator  # noqa: E402
from mask2former.solver import (  # noqa: E402
    add_full_model_gradient_clipping,
    build_lr_scheduler,
    build_optimizer,
)
from mask2former.modeling.test_time_augmentation import SemanticSegmentorWithTTA  # noqa: E402

# A tiny Mask2Former (R18-like backbone, 32-d head, 8 queries, 3 decoder layers) on 64x64
# synthetic COCO-panoptic data; deterministic mapper (no scale jitter, no flip), FrozenBN so
# that the per-process batch size does not change the maths.
TINY_CONFIG = f"""
_BASE_: {REPO}/configs/coco/panoptic/r50.yaml
MODEL:
  WEIGHTS: ""
  DEVICE: cpu
  RESNETS:
    DEPTH: 18
    RES2_OUT_CHANNELS: 64
    NORM: "FrozenBN"
  SEM_SEG_HEAD:
    NUM_CLASSES: 7
    CONVS_DIM: 32
    MASK_DIM: 32
    TRANSFORMER_ENC_LAYERS: 1
  MASK_FORMER:
    HIDDEN_DIM: 32
    NUM_OBJECT_QUERIES: 8
    NHEADS: 4
    DIM_FEEDFORWARD: 64
    DEC_LAYERS: 4
    TRAIN_NUM_POINTS: 256
    TEST:
      SEMANTIC_ON: True
      INSTANCE_ON: False
      PANOPTIC_ON: True
DATASETS:
  TRAIN: ("synthetic_panoptic_train",)
  TEST: ("synthetic_panoptic_val",)
INPUT:
  DATASET_MAPPER_NAME: "coco_panoptic_lsj"
  IMAGE_SIZE: 64
  MIN_SCALE: 1.0
  MAX_SCALE: 1.0
  RANDOM_FLIP: "none"
  MIN_SIZE_TEST: 64
  MAX_SIZE_TEST: 64
SOLVER:
  IMS_PER_BATCH: 2
  BASE_LR: 0.003
  MAX_ITER: 8
  WARMUP_ITERS: 0
  CHECKPOINT_PERIOD: 4
  STEPS: ()
  AMP:
    ENABLED: False
TEST:
  EVAL_PERIOD: 0
DATALOADER:
  NUM_WORKERS: 0
SEED: 7
"""

# Runs train_net.py's own entry point with a hook that appends each iteration's total_loss
# (averaged over workers by Detectron2) to $LOSS_LOG. Top-level patching so that processes
# spawned by detectron2.engine.launch get it too.
DRIVER = f"""
import json, os, sys
sys.path.insert(0, {REPO!r})
import train_net
from detectron2.engine import HookBase
import detectron2.utils.comm as comm

class _LossLog(HookBase):
    def after_step(self):
        if comm.is_main_process():
            loss = self.trainer.storage.history("total_loss").latest()
            with open(os.environ["LOSS_LOG"], "a") as f:
                f.write(json.dumps({{"iter": self.trainer.iter, "loss": loss,
                                     "world": comm.get_world_size()}}) + "\\n")

_orig = train_net.Trainer.build_hooks
train_net.Trainer.build_hooks = lambda self: _orig(self) + [_LossLog()]

if __name__ == "__main__":
    train_net.invoke_main()
"""


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from mask2former.data.datasets import register_synthetic
    from mask2former.data.synthetic import generate_synthetic_dataset

    root = str(tmp_path_factory.mktemp("datasets"))
    generate_synthetic_dataset(root, num_train=8, num_val=2, seed=0, image_size=64)
    register_synthetic(root)
    return root


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(TINY_CONFIG)
    return str(path)


def _cfg():
    cfg = get_cfg()
    add_deeplab_config(cfg)
    add_maskformer2_config(cfg)
    return cfg


# --------------------------------------------------------------------------------------------
# optimizer, clipping, schedule
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# evaluators, TTA
# --------------------------------------------------------------------------------------------
def test_evaluators_by_evaluator_type(synthetic_root, tmp_path):
    cfg = _cfg()
    t = cfg.MODEL.MASK_FORMER.TEST
    t.SEMANTIC_ON, t.PANOPTIC_ON, t.INSTANCE_ON = True, True, True
    build = train_net.build_evaluators
    ev = build(cfg, "synthetic_panoptic_val", str(tmp_path))
    assert isinstance(ev, DatasetEvaluators)
    kinds = [type(e) for e in ev._evaluators]
    assert kinds == [COCOPanopticEvaluator, SemSegEvaluator, InstanceSegEvaluator]
    # the Trainer's evaluator contains these (plus whatever reporting it adds)
    trainer_ev = train_net.Trainer.build_evaluator(cfg, "synthetic_panoptic_val", str(tmp_path))
    assert (
        any(
            isinstance(e, DatasetEvaluators) and [type(x) for x in e._evaluators] == kinds
            for e in getattr(trainer_ev, "_evaluators", [trainer_ev])
        )
        or [type(x) for x in getattr(trainer_ev, "_evaluators", [])] == kinds
    )
    t.SEMANTIC_ON, t.INSTANCE_ON = False, False
    assert isinstance(build(cfg, "synthetic_panoptic_val", str(tmp_path)), COCOPanopticEvaluator)
    assert isinstance(build(cfg, "synthetic_sem_seg_val", str(tmp_path)), SemSegEvaluator)
    assert type(build(cfg, "synthetic_instance_val", str(tmp_path))) is COCOEvaluator
    assert isinstance(
        build(cfg, "cityscapes_fine_sem_seg_val", str(tmp_path)), CityscapesSemSegEvaluator
    )
    MetadataCatalog.get("_test_no_evaluator").set(evaluator_type="nonsense")
    with pytest.raises(NotImplementedError, match="nonsense"):
        build(cfg, "_test_no_evaluator", str(tmp_path))


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
    cfg = _cfg()
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


# --------------------------------------------------------------------------------------------
# real training runs
# --------------------------------------------------------------------------------------------
def _args(config, *opts, resume=False):
    argv = ["--config-file", config] + (["--resume"] if resume else []) + list(opts)
    return default_argument_parser().parse_args(argv)


def _train_in_process(config, out_dir, *opts, resume=False):
    cfg = train_net.setup(_args(config, "OUTPUT_DIR", out_dir, *opts, resume=resume))
    trainer = train_net.Trainer(cfg)
    losses = []

    from detectron2.engine import HookBase

    class Record(HookBase):
        def after_step(self):
            losses.append(self.trainer.storage.history("total_loss").latest())

    trainer.register_hooks([Record()])
    trainer.resume_or_load(resume=resume)
    start = trainer.start_iter
    trainer.train()
    return trainer, start, losses


@pytest.mark.slow
def test_training_loss_decreases_and_resume_continues(
    synthetic_root, tiny_config, tmp_path, monkeypatch
):
    monkeypatch.setenv("DETECTRON2_DATASETS", synthetic_root)
    out = str(tmp_path / "run")
    trainer, start, losses = _train_in_process(tiny_config, out, "SOLVER.MAX_ITER", "8")
    assert start == 0 and len(losses) == 8 and trainer.iter == 8  # iter = max_iter after train()
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < 0.9 * sum(losses[:3]) / 3, losses  # >10% lower in 8 steps
    assert sorted(f for f in os.listdir(out) if f.endswith(".pth")) == [
        "model_0000003.pth",
        "model_0000007.pth",
        "model_final.pth",
    ]
    ckpt = torch.load(os.path.join(out, "model_0000003.pth"), map_location="cpu")
    assert ckpt["iteration"] == 3
    assert "optimizer" in ckpt["trainer"]["_trainer"] and "LRScheduler" in ckpt["trainer"]["hooks"]

    # --eval-only with the trained weights, plus semantic TTA (2 scales x flip); on the CPU
    # main() runs with the caching allocator (CPU_CACHING_ALLOCATOR) and removes it afterwards
    from mask2former.layers.ms_deform_attn import extension_loaded
    from mask2former.utils.allocator import cpu_caching_allocator_stats

    seen = []
    original_test = train_net.Trainer.test

    def recording_test(cls, cfg, model, evaluators=None):
        seen.append(cpu_caching_allocator_stats()["enabled"])
        return original_test(cfg, model, evaluators)

    monkeypatch.setattr(train_net.Trainer, "test", classmethod(recording_test))
    res = train_net.main(
        _args(
            tiny_config,
            "--eval-only",
            "OUTPUT_DIR",
            str(tmp_path / "eval"),
            "MODEL.WEIGHTS",
            os.path.join(out, "model_final.pth"),
            "TEST.AUG.ENABLED",
            "True",
            "TEST.AUG.MIN_SIZES",
            "(48, 64)",
            "TEST.AUG.MAX_SIZE",
            "128",
        )
    )
    assert {"panoptic_seg", "sem_seg", "sem_seg_TTA"} <= set(res)
    if extension_loaded():
        assert seen and all(seen)  # evaluation ran with the caching allocator ...
    assert not cpu_caching_allocator_stats()["enabled"]  # ... which main() removed again
    assert 0 <= res["sem_seg_TTA"]["mIoU"] <= 100 and 0 <= res["panoptic_seg"]["PQ"] <= 100

    # resume from the iteration-3 checkpoint: continues at iteration 4, runs 4..9
    with open(os.path.join(out, "last_checkpoint"), "w") as f:
        f.write("model_0000003.pth")
    trainer2, start2, losses2 = _train_in_process(
        tiny_config, out, "SOLVER.MAX_ITER", "10", resume=True
    )
    assert start2 == 4 and len(losses2) == 6 and trainer2.iter == 10
    # the resumed model starts where the first run was at iteration 4 (same data order is not
    # guaranteed after resume, so compare loss scale, not values)
    assert losses2[0] < losses[0]


def _free_ports(n):
    """n distinct free ports (all sockets are open at once, so they cannot repeat)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _run_driver(tmp_path, tiny_config, synthetic_root, tag, extra_args, n_procs=1):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    log = tmp_path / f"{tag}.jsonl"
    env = dict(
        os.environ, DETECTRON2_DATASETS=synthetic_root, LOSS_LOG=str(log), OMP_NUM_THREADS="1"
    )
    cmd = (
        [sys.executable, str(driver), "--config-file", tiny_config]
        + extra_args
        + [
            "OUTPUT_DIR",
            str(tmp_path / f"out_{tag}"),
            "SOLVER.MAX_ITER",
            "6",
            "DATASETS.TEST",
            "()",
        ]
    )
    return (
        subprocess.Popen(
            cmd,
            env=env,
            cwd=str(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ),
        log,
    )


def _losses(log):
    rows = [json.loads(line) for line in open(log)]
    return [r["loss"] for r in rows], {r["world"] for r in rows}


@pytest.mark.slow
def test_two_processes_and_two_machines_train_like_one(synthetic_root, tiny_config, tmp_path):
    port_procs, port = _free_ports(2)
    procs = {
        "single": _run_driver(tmp_path, tiny_config, synthetic_root, "single", ["--num-gpus", "1"]),
        "two_procs": _run_driver(
            tmp_path,
            tiny_config,
            synthetic_root,
            "two_procs",
            ["--num-gpus", "2", "--dist-url", f"tcp://127.0.0.1:{port_procs}"],
        ),
    }
    machines = [
        _run_driver(
            tmp_path,
            tiny_config,
            synthetic_root,
            f"machine{r}",
            [
                "--num-gpus",
                "1",
                "--num-machines",
                "2",
                "--machine-rank",
                str(r),
                "--dist-url",
                f"tcp://127.0.0.1:{port}",
            ],
        )
        for r in range(2)
    ]
    for name, (p, _) in list(procs.items()) + [(f"machine {r}", m) for r, m in enumerate(machines)]:
        output, _ = p.communicate(timeout=600)
        assert p.returncode == 0, f"{name} failed:\n{output[-3000:]}"

    single, w1 = _losses(procs["single"][1])
    two, w2 = _losses(procs["two_procs"][1])
    multi, w3 = _losses(machines[0][1])
    assert not os.path.exists(machines[1][1])  # only the global main process logs
    assert (w1, w2, w3) == ({1}, {2}, {2})
    assert len(single) == len(two) == len(multi) == 6
    print(
        "total_loss per iteration:", {"1 process": single, "2 processes": two, "2 machines": multi}
    )
    # same data per iteration, same init (DDP broadcast), same normalisation: the curves agree
    # up to the random point sampling of the loss
    for a, b, c in zip(single, two, multi):
        assert b == pytest.approx(a, rel=0.05) and c == pytest.approx(a, rel=0.05)
    assert single[-1] < single[0] and two[-1] < two[0] and multi[-1] < multi[0]


# --------------------------------------------------------------------------------------------
# tools/submit_slurm.py
# --------------------------------------------------------------------------------------------
def _submit_module():
    sys.path.insert(0, os.path.join(REPO, "tools"))
    try:
        import submit_slurm
    finally:
        sys.path.pop(0)
    return submit_slurm


def test_submit_slurm_parameters_and_requeue(tmp_path):
    s = _submit_module()
    args = s.parse_args(
        [
            "--job-dir",
            str(tmp_path),
            "--config-file",
            "x.yaml",
            "--nodes",
            "2",
            "--num-gpus",
            "8",
            "--partition",
            "learnfair",
            "SOLVER.MAX_ITER",
            "5",
        ]
    )
    params = s.executor_parameters(args)
    assert params["nodes"] == 2 and params["tasks_per_node"] == 1
    assert params["gpus_per_node"] == 8 and params["slurm_partition"] == "learnfair"
    assert args.num_machines == 2 and args.opts == ["SOLVER.MAX_ITER", "5"]
    requeued = s.TrainingJob(args).checkpoint()
    assert requeued.function.args.resume is True and args.resume is False
    local = s.parse_args(
        [
            "--job-dir",
            str(tmp_path),
            "--config-file",
            "x.yaml",
            "--cluster",
            "local",
            "--nodes",
            "2",
        ]
    )
    with pytest.raises(ValueError, match="--nodes 1"):
        s.executor_parameters(local)
    assert s._rendezvous_port("123", 0) == s._rendezvous_port("123", 0)
    assert 20000 <= s._rendezvous_port("123", 0) < 40000


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:pkg_resources is deprecated:DeprecationWarning")
def test_submit_slurm_local_executor_trains(synthetic_root, tiny_config, tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", synthetic_root)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    s = _submit_module()
    out = tmp_path / "out"
    args = s.parse_args(
        [
            "--cluster",
            "local",
            "--job-dir",
            str(tmp_path / "job"),
            "--config-file",
            tiny_config,
            "--num-gpus",
            "1",
            "--timeout",
            "10",
            "OUTPUT_DIR",
            str(out),
            "SOLVER.MAX_ITER",
            "2",
            "DATASETS.TEST",
            "()",
        ]
    )
    job = s.submit(args)
    assert job.result() == "done", job.stderr()
    assert (out / "model_final.pth").exists()
    assert "machine 0/1" in job.stdout()
