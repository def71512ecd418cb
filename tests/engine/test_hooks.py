import logging
import os

import pytest
import torch
from detectron2.engine import SimpleTrainer

from mask2former.engine import NonFiniteLossError


def _weights(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_guard_stops_before_step_and_keeps_last_checkpoint(tmp_path, toy_trainer_factory):
    # NaN at the 6th loader call = iteration 5; checkpoints after iterations 1 and 3.
    trainer = toy_trainer_factory(tmp_path, max_iter=6, period=2, bad_at=(5,))
    trainer.resume_or_load(resume=False)
    snapshots = {}
    orig = trainer.run_step

    def run_step():
        snapshots[trainer.iter] = _weights(trainer)
        orig()

    trainer.run_step = run_step
    with pytest.raises(NonFiniteLossError) as ei:
        trainer.train()
    msg = str(ei.value)
    assert "Iteration 5" in msg and "loss_b=nan <-" in msg and "loss_a=" in msg
    assert "model_0000003.pth" in msg
    # No optimizer step was taken at the bad iteration.
    for k, v in _weights(trainer).items():
        assert torch.equal(v, snapshots[5][k]), k
    # Nothing was saved after the failure (max_iter reached would normally write model_final).
    assert sorted(f for f in os.listdir(tmp_path) if f.endswith(".pth")) == [
        "model_0000001.pth", "model_0000003.pth"]
    with open(tmp_path / "last_checkpoint") as f:
        assert f.read() == "model_0000003.pth"


def test_guard_skip_counts_and_continues(tmp_path, toy_trainer_factory, caplog):
    trainer = toy_trainer_factory(tmp_path, max_iter=6, period=100, bad_at={2: "inf", 3: "grad"},
                                  action="skip")
    trainer.resume_or_load(resume=False)
    snapshots = {}
    orig = trainer.run_step

    def run_step():
        snapshots[trainer.iter] = _weights(trainer)
        orig()

    trainer.run_step = run_step
    with caplog.at_level(logging.WARNING, logger="mask2former.engine.hooks"):
        trainer.train()
    guard = [h for h in trainer._hooks if type(h).__name__ == "NonFiniteLossGuard"][0]
    assert guard.skipped_steps == 2
    # Skipped steps leave weights unchanged; normal steps change them.
    for it, changed in [(1, True), (2, False), (3, False), (4, True)]:
        same = all(torch.equal(snapshots[it][k], snapshots[it + 1][k]) for k in snapshots[it])
        assert same != changed, it
    assert all(torch.isfinite(v).all() for v in _weights(trainer).values())
    text = caplog.text
    assert "Iteration 2: non-finite loss term(s) loss_a" in text
    assert "Iteration 3: non-finite gradients" in text
    # The count is stored in the checkpoint (hook state) and restored on resume.
    ckpt = torch.load(tmp_path / "model_final.pth", weights_only=True)
    assert ckpt["trainer"]["hooks"]["NonFiniteLossGuard"] == {"skipped_steps": 2}
    t2 = toy_trainer_factory(tmp_path, max_iter=8, period=100, action="skip")
    t2.resume_or_load(resume=True)
    g2 = [h for h in t2._hooks if type(h).__name__ == "NonFiniteLossGuard"][0]
    assert g2.skipped_steps == 2 and t2.start_iter == 6


def test_guard_skip_gives_up_after_consecutive_limit(tmp_path, toy_trainer_factory):
    trainer = toy_trainer_factory(tmp_path, max_iter=10, period=100, bad_at=(1, 2, 3, 4),
                                  action="skip", max_skips=2)
    trainer.resume_or_load(resume=False)
    with pytest.raises(NonFiniteLossError, match="Iteration 3: .*after 3 consecutive"):
        trainer.train()
    assert not (tmp_path / "model_final.pth").exists()


def test_bad_action_is_rejected(tmp_path, toy_trainer_factory):
    with pytest.raises(ValueError, match="must be 'stop' or 'skip'"):
        toy_trainer_factory(tmp_path, action="ignore")


def test_missing_model_final_is_written_when_resuming_a_finished_run(tmp_path, toy_trainer_factory):
    trainer = toy_trainer_factory(tmp_path, max_iter=4, period=1)
    trainer.resume_or_load(resume=False)
    trainer.train()
    os.remove(tmp_path / "model_final.pth")  # as if killed right after model_0000003.pth
    (tmp_path / "last_checkpoint").write_text("model_0000003.pth")
    t2 = toy_trainer_factory(tmp_path, max_iter=4, period=1)
    t2.resume_or_load(resume=True)
    assert t2.start_iter == 4
    t2.train()
    final = torch.load(tmp_path / "model_final.pth", weights_only=True)
    ref = torch.load(tmp_path / "model_0000003.pth", weights_only=True)
    assert final["iteration"] == 3 and final["trainer"]["iteration"] == 3
    assert all(torch.equal(final["model"][k], ref["model"][k]) for k in ref["model"])


class _CpuAmpTrainer(SimpleTrainer):
    """SimpleTrainer with a GradScaler, like Detectron2's AMPTrainer but runnable on CPU."""

    def __init__(self, model, data_loader, optimizer):
        super().__init__(model, data_loader, optimizer)
        self.grad_scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)

    def run_step(self):
        data = next(self._data_loader_iter)
        loss_dict = self.model(data)
        losses = sum(loss_dict.values())
        self.optimizer.zero_grad()
        self.grad_scaler.scale(losses).backward()
        self.after_backward()
        self._write_metrics(loss_dict, 0.0)
        self.grad_scaler.step(self.optimizer)
        self.grad_scaler.update()


@pytest.mark.parametrize("action", ["stop", "skip"])
def test_guard_with_amp_grad_scaler(tmp_path, toy_trainer_factory, action):
    bad = {2: "grad", 3: "nan"}
    trainer = toy_trainer_factory(tmp_path, max_iter=5, period=100, bad_at=bad, action=action,
                                  step_trainer_cls=_CpuAmpTrainer)
    trainer.resume_or_load(resume=False)
    snapshots = {}
    orig = trainer.run_step

    def run_step():
        snapshots[trainer.iter] = (_weights(trainer), trainer._trainer.grad_scaler.get_scale())
        orig()

    trainer.run_step = run_step
    if action == "stop":
        # non-finite *gradients* are the GradScaler's business: no stop at iteration 2;
        # the non-finite *loss* at iteration 3 stops training
        with pytest.raises(NonFiniteLossError, match="Iteration 3: non-finite loss"):
            trainer.train()
    else:
        trainer.train()
        guard = [h for h in trainer._hooks if type(h).__name__ == "NonFiniteLossGuard"][0]
        assert guard.skipped_steps == 1
    w, scale = snapshots[2]
    w3, scale3 = snapshots[3]
    assert all(torch.equal(w[k], w3[k]) for k in w) and scale3 < scale  # scaler skipped step 2
    if action == "skip":
        w4, scale4 = snapshots[4]
        assert all(torch.equal(w3[k], w4[k]) for k in w3)  # step 3 skipped via the scaler


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("action", ["skip", "stop"])
def test_guard_decision_is_shared_by_two_workers(tmp_path, action):
    """Only worker 0 sees the NaN loss; both workers must take the same branch."""
    import json
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(__file__), "two_worker_guard.py")
    proc = subprocess.run(
        [sys.executable, script, str(tmp_path), action, str(_free_port())],
        capture_output=True, text=True, timeout=300,
    )
    results = []
    for rank in range(2):
        path = tmp_path / f"rank{rank}.json"
        assert path.exists(), f"worker {rank} wrote nothing:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        results.append(json.loads(path.read_text()))
    r0, r1 = results
    if action == "skip":
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert r0["error"] is None and r1["error"] is None
        assert r0["skipped_steps"] == r1["skipped_steps"] == 1
        # the step of iteration 2 was skipped on both workers; the others were taken
        assert r0["changed"] == r1["changed"] == [True, True, False, True, True]
        assert r0["finite"] and r1["finite"] and r0["final"] == r1["final"]
    else:
        assert "Iteration 2: non-finite loss term(s) loss_b" in r0["error"]
        assert "Iteration 2: a non-finite loss on another worker" in r1["error"]
        assert r0["changed"] == r1["changed"] == [True, True, False]  # no step at iteration 2
        assert r0["final"] == r1["final"]
