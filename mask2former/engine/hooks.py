"""Training hooks: non-finite loss guard, skipped-sample summary, missing final checkpoint,
checkpoint-and-stop on a preemption signal."""
import json
import logging
import math
import os
import signal
import time
from typing import Dict, List, Optional

import torch
from detectron2.engine import HookBase
from detectron2.utils import comm
from detectron2.utils.events import get_event_storage

__all__ = ["NonFiniteLossGuard", "NonFiniteLossError", "AfterBackwardRelay",
           "SkippedSamplesSummary", "EnsureFinalCheckpoint", "PreemptionCheckpoint",
           "TrainingPreempted", "PREEMPT_SIGNAL_ENV", "PREEMPTED_MARKER", "preempt_signal_from_env"]

logger = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """A loss term or the gradient norm became NaN/Inf."""


def _fmt(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) else str(v)


class NonFiniteLossGuard(HookBase):
    """Stop (default) or skip a training step whose loss terms or gradients are NaN/Inf.

    The hook records the loss dict the model returns (a forward hook on ``trainer.model``, so
    checkpoint key names are untouched) and checks it in ``after_backward``, i.e. after the
    gradients exist but *before* the optimizer step:

    * ``action="stop"``: raise :class:`NonFiniteLossError` naming the iteration and every loss
      term (non-finite ones marked), and block the trainer's checkpointer (if it supports
      ``block_saves``) so no later save replaces the last good checkpoint.
    * ``action="skip"``: drop the gradients (``p.grad = None``: AdamW/SGD leave those
      parameters and their state untouched; with AMP they are set to NaN so that the
      GradScaler skips the step), remove the non-finite terms from the loss dict the
      trainer logs, count the step and continue. After ``max_consecutive_skips`` non-finite steps
      in a row it stops as above. The count is saved in checkpoints (hook state).

    With several workers the decision is all-reduced so every worker takes the same branch.
    With AMP (a trainer with ``grad_scaler``) the gradient check is off: scaled gradients are
    inf/NaN by design now and then, and the GradScaler already skips those steps.
    """

    def __init__(self, action: str = "stop", max_consecutive_skips: int = 20,
                 check_gradients: bool = True):
        action = action.lower()
        if action not in ("stop", "skip"):
            raise ValueError(
                f"SOLVER.NONFINITE_LOSS.ACTION must be 'stop' or 'skip', got {action!r}")
        self.action = action
        self.max_consecutive_skips = int(max_consecutive_skips)
        self.check_gradients = check_gradients
        self.skipped_steps = 0
        self.consecutive = 0
        self._loss_dict: Optional[Dict[str, torch.Tensor]] = None
        self._handle = None

    @classmethod
    def from_config(cls, cfg) -> "NonFiniteLossGuard":
        node = cfg.SOLVER.NONFINITE_LOSS
        return cls(node.ACTION, node.MAX_CONSECUTIVE_SKIPS, node.CHECK_GRADIENTS)

    # -- state (saved with the trainer's checkpoint) --
    def state_dict(self):
        return {"skipped_steps": self.skipped_steps}

    def load_state_dict(self, state_dict):
        self.skipped_steps = int(state_dict.get("skipped_steps", 0))

    # -- hook points --
    def before_train(self):
        def record(module, inputs, output):
            if module.training and isinstance(output, dict):
                self._loss_dict = output

        self._handle = self.trainer.model.register_forward_hook(record)

    def after_train(self):
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        if self.skipped_steps:
            logger.warning("Training skipped %d step(s) with a non-finite loss or gradient.",
                           self.skipped_steps)

    def before_step(self):
        self._loss_dict = None

    def _grad_scaler(self):
        """The AMP GradScaler of the (inner) trainer, or None."""
        inner = getattr(self.trainer, "_trainer", self.trainer)
        return getattr(inner, "grad_scaler", None)

    def _params(self) -> List[torch.nn.Parameter]:
        return [p for p in self.trainer.model.parameters() if p.grad is not None]

    def after_backward(self):
        loss_dict = self._loss_dict
        bad_terms = []
        values = {}
        if loss_dict is not None:
            items = [(k, v) for k, v in loss_dict.items() if torch.is_tensor(v)]
            if items:  # one device->host copy for all terms
                sums = torch.stack([v.detach().float().sum() for _, v in items]).tolist()
                for (k, _), x in zip(items, sums):
                    values[k] = x
                    if not math.isfinite(x):
                        bad_terms.append(k)
        grad_bad = False
        scaler = self._grad_scaler()
        # With AMP the gradients are still scaled here and inf/NaN ones are expected now and
        # then: the GradScaler skips those steps and lowers its scale by itself.
        if self.check_gradients and not bad_terms and scaler is None:
            grads = [p.grad for p in self._params()]
            if grads:
                norms = torch._foreach_norm(grads)
                grad_bad = not bool(torch.isfinite(torch.stack(norms)).all())
        bad = bool(bad_terms) or grad_bad
        if comm.get_world_size() > 1:
            flag = torch.tensor([float(bad)], device=next(self.trainer.model.parameters()).device)
            torch.distributed.all_reduce(flag)
            bad = bool(flag.item() > 0)
        if not bad:
            self.consecutive = 0
            return

        it = self.trainer.iter
        terms = ", ".join(f"{k}={_fmt(v)}" + (" <-" if k in bad_terms else "")
                          for k, v in values.items())
        what = (f"non-finite loss term(s) {', '.join(bad_terms)}" if bad_terms else
                "non-finite gradients (finite loss)" if grad_bad else
                "a non-finite loss on another worker")
        self.consecutive += 1
        if self.action == "skip" and self.consecutive <= self.max_consecutive_skips:
            self.skipped_steps += 1
            for p in self.trainer.model.parameters():
                if scaler is None:
                    p.grad = None  # AdamW/SGD leave parameters without gradient untouched
                elif p.grad is not None:
                    p.grad.fill_(float("nan"))  # the GradScaler then skips this step

            if loss_dict is not None:
                for k in bad_terms:
                    loss_dict.pop(k)
            get_event_storage().put_scalar("nonfinite_skipped_steps", self.skipped_steps,
                                            smoothing_hint=False)
            logger.warning("Iteration %d: %s; step skipped (%d skipped so far). Loss terms: %s",
                           it, what, self.skipped_steps, terms or "n/a")
            return

        ckpt = getattr(self.trainer, "checkpointer", None)
        last = ""
        if ckpt is not None:
            if hasattr(ckpt, "block_saves"):
                ckpt.block_saves(f"training stopped on a non-finite loss at iteration {it}")
            tag = getattr(ckpt, "_last_tag", None)
            last = tag() if tag is not None else ""
        extra = (f" after {self.consecutive} consecutive non-finite steps"
                 if self.action == "skip" else "")
        raise NonFiniteLossError(
            f"Iteration {it}: {what}{extra}. Loss terms: {terms or 'n/a'}. The optimizer step was "
            f"not taken and no checkpoint is written from now on; the last good checkpoint is "
            f"{last or 'none (none saved yet)'}. Resume from it with a lower SOLVER.BASE_LR or "
            f"gradient clipping" + (
                ", or set SOLVER.NONFINITE_LOSS.ACTION skip to skip such steps." if
                self.action == "stop" else
                " (raising SOLVER.NONFINITE_LOSS.MAX_CONSECUTIVE_SKIPS rarely helps a run that "
                "diverged)."))


class AfterBackwardRelay(HookBase):
    """Forward ``after_backward`` from an inner trainer to a hook of the outer trainer.

    Detectron2's ``DefaultTrainer`` runs steps through an inner ``SimpleTrainer``/``AMPTrainer``
    whose ``after_backward`` only calls the inner trainer's own hooks, so hooks registered on
    the ``DefaultTrainer`` never see it. Register this on ``trainer._trainer``.
    """

    def __init__(self, target: HookBase):
        self.target = target

    def after_backward(self):
        self.target.after_backward()


class SkippedSamplesSummary(HookBase):
    """Log the summary of skipped training samples (from the skip log written by all loader
    workers) every ``period`` iterations when it changed, and at the end of training."""

    def __init__(self, skip_log: str, period: int = 1000):
        self.skip_log = skip_log
        self.period = max(int(period), 1)
        self._last_count = 0

    def _log(self, force: bool = False):
        from ..data.robust_loading import read_skip_log, summarize_skip_log

        n = len(read_skip_log(self.skip_log, "train"))
        if n != self._last_count or (force and n):
            logger.warning("Skipped samples (see %s): %s", self.skip_log,
                           summarize_skip_log(self.skip_log, "train"))
            self._last_count = n

    def after_step(self):
        if (self.trainer.iter + 1) % self.period == 0:
            self._log()

    def after_train(self):
        self._log(force=True)


class EnsureFinalCheckpoint(HookBase):
    """Write ``model_final.pth`` when a resumed run has nothing left to train.

    A run killed after its last periodic checkpoint (iteration MAX_ITER-1) but before
    ``model_final.pth`` was written resumes at MAX_ITER, runs no step, and Detectron2 would never
    write the final file. This hook writes it from the loaded (identical) weights.
    """

    def __init__(self, checkpointer, file_prefix: str = "model"):
        self.checkpointer = checkpointer
        self.file_prefix = file_prefix

    def after_train(self):
        t = self.trainer
        if t.start_iter < t.max_iter or not comm.is_main_process():
            return  # steps ran: the PeriodicCheckpointer saved the final model itself
        name = f"{self.file_prefix}_final"
        if self.checkpointer.save_dir and not os.path.exists(
                os.path.join(self.checkpointer.save_dir, name + ".pth")):
            logger.warning("Training had already reached MAX_ITER; writing the missing %s.pth "
                           "from the resumed checkpoint.", name)
            it = t.iter
            t.iter = t.max_iter - 1  # what the trainer state records for a finished run
            try:
                self.checkpointer.save(name, iteration=t.max_iter - 1)
            finally:
                t.iter = it


# The launcher (tools/submit_slurm.py, or your own batch script) names the signal the scheduler
# sends before it stops the job, e.g. MASK2FORMER_PREEMPT_SIGNAL=USR2 (Slurm's --signal).
PREEMPT_SIGNAL_ENV = "MASK2FORMER_PREEMPT_SIGNAL"
# Written to OUTPUT_DIR by the main process when training stopped on that signal.
PREEMPTED_MARKER = "preempted.json"


def preempt_signal_from_env(environ=None) -> Optional[signal.Signals]:
    """The signal named by ``$MASK2FORMER_PREEMPT_SIGNAL`` ("USR2", "SIGUSR2" or a number), or None
    when it is unset or empty. An unknown name is an error (a typo would silently disable the
    checkpoint-on-preemption)."""
    value = (os.environ if environ is None else environ).get(PREEMPT_SIGNAL_ENV, "").strip()
    if not value:
        return None
    name = value.upper()
    try:
        if name.isdigit():
            return signal.Signals(int(name))
        return signal.Signals[name if name.startswith("SIG") else "SIG" + name]
    except (KeyError, ValueError):
        raise ValueError(
            f"{PREEMPT_SIGNAL_ENV}={value!r} is not a signal name (e.g. USR2, SIGUSR1, TERM)"
        ) from None


class TrainingPreempted(BaseException):
    """Training stopped on the preemption signal after saving a checkpoint.

    A BaseException (like KeyboardInterrupt): it is not a failure, so Detectron2's "Exception
    during training" handler does not log it as one; the hooks' ``after_train`` still run (the
    metrics of the last iterations are written). `train_or_evaluate` catches it."""

    def __init__(self, iteration: int, checkpoint: str, signal_name: str):
        self.iteration = iteration
        self.checkpoint = checkpoint
        self.signal_name = signal_name
        super().__init__(
            f"{signal_name} received: training stopped after iteration {iteration} and saved "
            f"{checkpoint}; --resume continues at iteration {iteration + 1}.")


class PreemptionCheckpoint(HookBase):
    """Checkpoint at the current iteration and stop when the scheduler announces a preemption.

    A scheduler such as Slurm sends a signal some time before it stops a job (``--signal``; on
    preemption or at the time limit). On ``signum`` this hook only sets a flag; at the end of the
    running step every worker agrees (all-reduce, as workers receive the signal at slightly
    different times), the trainer's checkpointer saves ``model_<iteration>.pth`` (model,
    optimizer, scheduler, iteration; ``last_checkpoint`` names it), the main process writes
    ``OUTPUT_DIR/preempted.json`` ({"iteration", "checkpoint", "signal", "time"}) and training
    ends with :class:`TrainingPreempted`. ``--resume`` then starts at the next iteration: no
    step is repeated or lost.

    The handler is installed in ``before_train`` and the signal unblocked there (a launcher may
    block it so that it waits, pending, until training can handle it); both are restored in
    ``after_train``. The Trainer adds this hook when ``$MASK2FORMER_PREEMPT_SIGNAL`` names a signal.
    """

    def __init__(self, checkpointer, signum, output_dir: str = "", file_prefix: str = "model"):
        self.checkpointer = checkpointer
        self.signum = signal.Signals(signum)
        self.marker = os.path.join(output_dir, PREEMPTED_MARKER) if output_dir else ""
        self.file_prefix = file_prefix
        self._received = False
        self._previous = None
        self._previous_mask = None

    def _on_signal(self, signum, frame):  # runs in the main thread, between bytecodes
        self._received = True

    def before_train(self):
        self._received = False
        try:
            self._previous = signal.signal(self.signum, self._on_signal)
        except ValueError:  # not the main thread: signals cannot be handled here
            logger.warning("Training does not run in the main thread: %s will not checkpoint "
                           "and stop training.", self.signum.name)
            self._previous = None
            return
        self._previous_mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {self.signum})
        logger.info("On %s training saves a checkpoint after the running iteration and stops.",
                    self.signum.name)

    def after_train(self):
        if self._previous is not None:
            signal.signal(self.signum, self._previous)
            self._previous = None
        if self._previous_mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._previous_mask)
            self._previous_mask = None

    def _requested(self) -> bool:
        requested = self._received
        if comm.get_world_size() > 1:
            flag = torch.tensor([float(requested)],
                                device=next(self.trainer.model.parameters()).device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            requested = bool(flag.item() > 0)
        return requested

    def after_step(self):
        if not self._requested():
            return
        it = self.trainer.iter
        name = f"{self.file_prefix}_{it:07d}"
        self.checkpointer.save(name, iteration=it)  # written by the main process only
        if comm.is_main_process() and self.marker:
            record = {"iteration": it, "checkpoint": name + ".pth", "signal": self.signum.name,
                      "time": time.time()}
            tmp = self.marker + ".tmp"
            with open(tmp, "w") as f:
                json.dump(record, f)
            os.replace(tmp, self.marker)
        comm.synchronize()  # every worker stops only once the checkpoint and marker are complete
        raise TrainingPreempted(it, name + ".pth", self.signum.name)
