"""Config keys of the reliability features (added by :func:`add_reliability_config`)."""
from detectron2.config import CfgNode as CN

__all__ = ["add_reliability_config"]


def add_reliability_config(cfg):
    """Add the keys below to ``cfg`` in place (idempotent).

    SOLVER.NONFINITE_LOSS.ACTION ["stop"]: what to do when a loss term (or a gradient) is NaN/Inf.
        "stop" ends training with an error naming the iteration and the terms, before the
        optimizer step, and blocks further checkpoint saves so the last good one is kept.
        "skip" drops that step (no parameter update), counts it (event storage scalar
        ``nonfinite_skipped_steps``) and continues.
    SOLVER.NONFINITE_LOSS.MAX_CONSECUTIVE_SKIPS [20]: with "skip", stop anyway after this many
        non-finite steps in a row (a diverged run cannot recover by skipping).
    SOLVER.NONFINITE_LOSS.CHECK_GRADIENTS [True]: also treat a non-finite gradient norm as a
        non-finite step (one fused norm over all gradients per iteration).
    DATALOADER.SKIP_BAD_SAMPLES [True]: a sample whose files are unreadable or inconsistent is
        skipped with a warning naming the file (and summarised every
        DATALOADER.SKIPPED_SUMMARY_PERIOD skips and at the end) instead of crashing the run.
    """
    if "NONFINITE_LOSS" not in cfg.SOLVER:
        cfg.SOLVER.NONFINITE_LOSS = CN()
    node = cfg.SOLVER.NONFINITE_LOSS
    node.ACTION = node.get("ACTION", "stop")
    node.MAX_CONSECUTIVE_SKIPS = node.get("MAX_CONSECUTIVE_SKIPS", 20)
    node.CHECK_GRADIENTS = node.get("CHECK_GRADIENTS", True)
    cfg.DATALOADER.SKIP_BAD_SAMPLES = cfg.DATALOADER.get("SKIP_BAD_SAMPLES", True)
    cfg.DATALOADER.SKIPPED_SUMMARY_PERIOD = cfg.DATALOADER.get("SKIPPED_SUMMARY_PERIOD", 100)
    return cfg
