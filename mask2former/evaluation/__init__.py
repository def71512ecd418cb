"""Evaluators (thin additions to Detectron2's)."""

from .instance_evaluation import InstanceSegEvaluator  # noqa: F401
from .ytvis_evaluation import YTVISEvaluator  # noqa: F401
