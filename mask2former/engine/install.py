"""Wire the reliability features into an existing Detectron2 trainer."""
import logging
import os

from detectron2.engine import TrainerBase
from detectron2.engine import hooks as d2_hooks

from ..utils.sample_loading import set_skip_log
from .checkpoint import Mask2FormerCheckpointer
from .config import add_reliability_config
from .config_checks import check_num_classes
from .hooks import (
    AfterBackwardRelay,
    EnsureFinalCheckpoint,
    NonFiniteLossGuard,
    SkippedSamplesSummary,
)

__all__ = ["install_reliability"]

logger = logging.getLogger(__name__)


def install_reliability(trainer, cfg, *, check_classes: bool = True):
    """Give a constructed ``DefaultTrainer`` crash-safe checkpoints and a non-finite loss guard.

    * replaces ``trainer.checkpointer`` by a :class:`Mask2FormerCheckpointer` with the same
      model, directory and checkpointables, and points the PeriodicCheckpointer hook at it;
    * registers a :class:`NonFiniteLossGuard` configured by SOLVER.NONFINITE_LOSS;
    * records skipped samples (all loader workers) in OUTPUT_DIR/skipped_samples.jsonl and logs
      their summary every DATALOADER.SKIPPED_SUMMARY_PERIOD iterations and at the end;
    * checks MODEL.SEM_SEG_HEAD.NUM_CLASSES against the datasets' metadata.

    Call it at the end of the trainer's ``__init__`` (before ``resume_or_load``).
    """
    if "NONFINITE_LOSS" not in cfg.SOLVER:
        was_frozen = cfg.is_frozen()
        cfg.defrost()
        add_reliability_config(cfg)
        if was_frozen:
            cfg.freeze()
    if check_classes:
        check_num_classes(cfg)

    old = trainer.checkpointer
    new = Mask2FormerCheckpointer(old.model, old.save_dir, save_to_disk=old.save_to_disk,
                                  **old.checkpointables)
    trainer.checkpointer = new
    for h in trainer._hooks:
        if isinstance(h, d2_hooks.PeriodicCheckpointer):
            h.checkpointer = new
    guard = NonFiniteLossGuard.from_config(cfg)
    hooks = [guard, EnsureFinalCheckpoint(new)]
    if cfg.OUTPUT_DIR:
        skip_log = os.path.join(cfg.OUTPUT_DIR, "skipped_samples.jsonl")
        set_skip_log(skip_log)  # inherited by the data-loader workers (started later)
        hooks.append(SkippedSamplesSummary(skip_log, cfg.DATALOADER.SKIPPED_SUMMARY_PERIOD))
    trainer.register_hooks(hooks)
    inner = getattr(trainer, "_trainer", None)
    if isinstance(inner, TrainerBase) and inner is not trainer:
        # DefaultTrainer: after_backward is only dispatched to the inner trainer's hooks.
        inner.register_hooks([AfterBackwardRelay(guard)])
    return trainer
