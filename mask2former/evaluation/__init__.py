"""Evaluation: which evaluators score a dataset, and the evaluators added to Detectron2's."""

from .build import build_evaluators  # noqa: F401
from .instance_evaluation import InstanceSegEvaluator  # noqa: F401
from .skipped_images import SkippedImagesReporter  # noqa: F401
