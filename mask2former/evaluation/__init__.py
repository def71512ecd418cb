"""Evaluators (thin additions to Detectron2's)."""

from .instance_evaluation import InstanceSegEvaluator  # noqa: F401
