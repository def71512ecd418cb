"""Evaluators (thin additions to Detectron2's)."""

from .boundary_iou import BoundaryCOCOeval, boundary_iou, mask_to_boundary  # noqa: F401
from .instance_evaluation import InstanceSegEvaluator  # noqa: F401
from .semantic_pq import SemanticPQ  # noqa: F401
