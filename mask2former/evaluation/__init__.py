"""Evaluation: which evaluators score a dataset, and the evaluators added to Detectron2's
(instance AP over all classes, YouTube-VIS video AP, the skipped-images report)."""

from .boundary_iou import BoundaryCOCOeval, boundary_iou, mask_to_boundary  # noqa: F401
from .build import build_evaluators  # noqa: F401
from .instance_evaluation import InstanceSegEvaluator  # noqa: F401
from .semantic_pq import SemanticPQ  # noqa: F401
from .skipped_images import SkippedImagesReporter  # noqa: F401
from .ytvis_evaluation import YTVISEvaluator  # noqa: F401
