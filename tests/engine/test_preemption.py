"""Checkpoint-and-stop on the preemption signal (`PreemptionCheckpoint`, `train_or_evaluate`)."""
import argparse
import json
import os
import signal
import threading

import pytest
import torch
from detectron2.engine import HookBase

from mask2former.engine import PreemptionCheckpoint, TrainingPreempted, train_or_evaluate
from mask2former.engine.hooks import PREEMPT_SIGNAL_ENV, preempt_signal_from_env


class _SignalAt(HookBase):
    """Sends ``signum`` to this process before step ``at`` (as Slurm would, mid-training)."""

    def __init__(self, at, signum=signal.SIGUSR2):
        self.at, self.signum = at, signum

    def before_step(self):
        if self.trainer.iter == self.at:
            os.kill(os.getpid(), self.signum)


def _adam_steps(ckpt):
    """AdamW's step count of every parameter in a checkpoint (the DefaultTrainer's state)."""
    return {int(s["step"]) for s in ckpt["trainer"]["_trainer"]["optimizer"]["state"].values()}


def _preemption_hooks(trainer):
    return [h for h in trainer._hooks if isinstance(h, PreemptionCheckpoint)]


@pytest.fixture
def preempt_env(monkeypatch):
    monkeypatch.setenv(PREEMPT_SIGNAL_ENV, "USR2")
    yield
    assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL  # restored after training


def test_signal_names():
    assert preempt_signal_from_env({}) is None
    assert preempt_signal_from_env({PREEMPT_SIGNAL_ENV: " "}) is None
    assert preempt_signal_from_env({PREEMPT_SIGNAL_ENV: "USR2"}) == signal.SIGUSR2
    assert preempt_signal_from_env({PREEMPT_SIGNAL_ENV: "sigusr1"}) == signal.SIGUSR1
    assert preempt_signal_from_env({PREEMPT_SIGNAL_ENV: str(int(signal.SIGTERM))}) == signal.SIGTERM
    with pytest.raises(ValueError, match="MASK2FORMER_PREEMPT_SIGNAL='USR3' is not a signal"):
        preempt_signal_from_env({PREEMPT_SIGNAL_ENV: "USR3"})


def test_no_hook_without_the_variable(tmp_path, toy_trainer_factory, monkeypatch):
    monkeypatch.delenv(PREEMPT_SIGNAL_ENV, raising=False)
    assert _preemption_hooks(toy_trainer_factory(tmp_path)) == []


def test_signal_saves_the_current_iteration_and_resume_continues(tmp_path, toy_trainer_factory,
                                                                 preempt_env):
    # periodic checkpoints after iterations 1, 3, 5, 7; the signal arrives during iteration 4
    trainer = toy_trainer_factory(tmp_path, max_iter=8, period=2)
    assert len(_preemption_hooks(trainer)) == 1
    trainer.register_hooks([_SignalAt(4)])
    trainer.resume_or_load(resume=False)
    with pytest.raises(TrainingPreempted) as ei:
        trainer.train()
    assert ei.value.iteration == 4 and ei.value.checkpoint == "model_0000004.pth"
    assert "continues at iteration 5" in str(ei.value)
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000004.pth"
    ckpt = torch.load(tmp_path / "model_0000004.pth", weights_only=True)
    assert ckpt["iteration"] == 4 and ckpt["trainer"]["iteration"] == 4
    # AdamW counted exactly the 5 steps 0..4
    assert _adam_steps(ckpt) == {5}
    marker = json.loads((tmp_path / "preempted.json").read_text())
    assert marker["iteration"] == 4 and marker["checkpoint"] == "model_0000004.pth"
    assert marker["signal"] == "SIGUSR2"
    # the last iterations' metrics were written (after_train of the writers still ran)
    records = [json.loads(line) for line in (tmp_path / "metrics.json").read_text().splitlines()]
    assert records[-1]["iteration"] == 4
    assert not (tmp_path / "model_final.pth").exists()

    t2 = toy_trainer_factory(tmp_path, max_iter=8, period=2)
    t2.resume_or_load(resume=True)
    assert t2.start_iter == 5
    t2.train()
    final = torch.load(tmp_path / "model_final.pth", weights_only=True)
    assert _adam_steps(final) == {8}
    records = [json.loads(line) for line in (tmp_path / "metrics.json").read_text().splitlines()]
    its = [r["iteration"] for r in records]
    assert its == sorted(set(its)) and its[-1] == 7  # strictly increasing across both runs


def test_signal_blocked_by_the_launcher_is_handled_once_training_runs(tmp_path, toy_trainer_factory,
                                                                      preempt_env):
    # tools/submit_slurm.py blocks the signal in the main thread before it starts training: one
    # that arrives during start-up stays pending there and stops training after its first step.
    trainer = toy_trainer_factory(tmp_path, max_iter=8, period=100)
    trainer.resume_or_load(resume=False)
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
    try:
        signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR2)
        assert signal.SIGUSR2 in signal.sigpending()
        with pytest.raises(TrainingPreempted) as ei:
            trainer.train()
        assert ei.value.iteration == 0
        # blocked again afterwards, as the launcher had it
        assert signal.SIGUSR2 in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def test_train_or_evaluate_returns_the_preemption(tmp_path, toy_trainer_factory, preempt_env):
    cls = type(toy_trainer_factory(tmp_path / "probe"))

    class SignalledTrainer(cls):
        def build_hooks(self):
            return super().build_hooks() + [_SignalAt(2)]

    cfg = toy_trainer_factory(tmp_path / "probe").cfg.clone()
    cfg.OUTPUT_DIR = str(tmp_path / "run")
    args = argparse.Namespace(eval_only=False, resume=False)
    res = train_or_evaluate(cfg, args, SignalledTrainer)
    assert res == {"preempted": {"iteration": 2, "checkpoint": "model_0000002.pth"}}
