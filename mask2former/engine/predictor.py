"""A DefaultPredictor that loads weights safely."""
from detectron2.data import MetadataCatalog
from detectron2.data import transforms as T
from detectron2.engine import DefaultPredictor
from detectron2.modeling import build_model

from ..checkpoint import Mask2FormerCheckpointer

__all__ = ["SafeDefaultPredictor"]


class SafeDefaultPredictor(DefaultPredictor):
    """Detectron2's ``DefaultPredictor``, loading MODEL.WEIGHTS with the safe checkpointer.

    Accepts ``.safetensors``, ``.pth`` (``torch.load(weights_only=True)``) and model-zoo ``.pkl``
    (numpy-only unpickler). Checkpoint tensors whose shapes do not fit the model (e.g. another
    NUM_CLASSES) raise an error naming the config key to change, and so does a checkpoint with
    missing, extra or renamed tensors, since inference with partly random weights is meaningless.
    """

    def __init__(self, cfg, *, strict_shapes: bool = True):  # replaces DefaultPredictor.__init__
        self.cfg = cfg.clone()
        self.model = build_model(self.cfg)
        self.model.eval()
        if len(cfg.DATASETS.TEST):
            self.metadata = MetadataCatalog.get(cfg.DATASETS.TEST[0])
        Mask2FormerCheckpointer(self.model, strict_shapes=strict_shapes).load(cfg.MODEL.WEIGHTS)
        self.aug = T.ResizeShortestEdge(
            [cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST], cfg.INPUT.MAX_SIZE_TEST)
        self.input_format = cfg.INPUT.FORMAT
        if self.input_format not in ("RGB", "BGR"):
            raise ValueError(f"INPUT.FORMAT must be RGB or BGR, got {self.input_format!r}")
