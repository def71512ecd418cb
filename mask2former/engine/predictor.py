"""Predictors that load weights safely: images (`SafeDefaultPredictor`) and clips of a video
model (`VideoPredictor`)."""
import numpy as np
import torch
from detectron2.data import MetadataCatalog
from detectron2.data import transforms as T
from detectron2.engine import DefaultPredictor
from detectron2.modeling import build_model

from ..checkpoint import Mask2FormerCheckpointer

__all__ = ["SafeDefaultPredictor", "VideoPredictor"]


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


class VideoPredictor(SafeDefaultPredictor):
    """The predictor of a video model (``VideoMaskFormer``): one clip of BGR frames per call.

    Every frame gets the same test-time resize (INPUT.MIN_SIZE_TEST of the first frame's size)
    and the model returns the original's clip dict: ``{"image_size": (H, W), "pred_scores":
    [N], "pred_labels": [N], "pred_masks": [N x (T, H, W) bool]}`` at the frames' size.
    """

    def __call__(self, frames):
        """
        Args:
            frames: list of T uint8 arrays [H, W, 3] in BGR order, all of the same size.
        """
        if not frames:
            raise ValueError("VideoPredictor: the clip has no frames")
        height, width = frames[0].shape[:2]
        for i, f in enumerate(frames):
            if f.shape[:2] != (height, width):
                raise ValueError(f"VideoPredictor: frame {i} is {f.shape[1]}x{f.shape[0]} but "
                                 f"frame 0 is {width}x{height}; all frames of a clip need one size")
        transform = self.aug.get_transform(frames[0])
        tensors = []
        for f in frames:
            if self.input_format == "RGB":
                f = f[:, :, ::-1]
            f = transform.apply_image(np.ascontiguousarray(f))
            tensors.append(torch.as_tensor(f.astype("float32").transpose(2, 0, 1)))
        with torch.no_grad():
            out = self.model([{"image": tensors, "height": height, "width": width}])
        return out[0] if isinstance(out, list) else out
