"""Multi-scale + flip test-time augmentation for semantic segmentation (cfg.TEST.AUG)."""

import copy
from typing import Dict, List

import torch
from torch import nn

from detectron2.data.transforms import HFlipTransform
from detectron2.modeling import DatasetMapperTTA

__all__ = ["SemanticSegmentorWithTTA"]


class SemanticSegmentorWithTTA(nn.Module):
    """Average the ``sem_seg`` scores of a model over the augmentations of cfg.TEST.AUG.

    Each image is resized to every TEST.AUG.MIN_SIZES (max TEST.AUG.MAX_SIZE), optionally also
    flipped horizontally (TEST.AUG.FLIP); the model returns scores at the original
    (height, width) for each version, flipped ones are flipped back, and the mean is returned.

    Args:
        cfg: config with TEST.AUG and INPUT.FORMAT.
        model: a model in eval mode returning [{"sem_seg": [K, H, W]}] per input.
        tta_mapper: callable dataset_dict -> list of augmented dicts each with "transforms"
            (default: Detectron2's DatasetMapperTTA(cfg)).
        batch_size: number of augmented versions run together.
    """

    def __init__(self, cfg, model: nn.Module, tta_mapper=None, batch_size: int = 1):
        super().__init__()
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        self.cfg = cfg.clone()
        self.model = model
        self.tta_mapper = tta_mapper if tta_mapper is not None else DatasetMapperTTA(cfg)
        self.batch_size = batch_size

    def __call__(self, batched_inputs: List[Dict]) -> List[Dict[str, torch.Tensor]]:
        return [self._inference_one_image(self._with_size(x)) for x in batched_inputs]

    @staticmethod
    def _with_size(inputs: Dict) -> Dict:
        out = copy.copy(inputs)
        if "height" not in out or "width" not in out:
            if "image" not in out:
                raise ValueError("TTA input needs 'height'/'width' or an 'image' tensor")
            out["height"], out["width"] = out["image"].shape[-2:]
        return out

    def _inference_one_image(self, inputs: Dict) -> Dict[str, torch.Tensor]:
        orig_shape = (inputs["height"], inputs["width"])
        augmented = self.tta_mapper(inputs)
        total, count = None, 0
        for start in range(0, len(augmented), self.batch_size):
            chunk = augmented[start : start + self.batch_size]
            for x in chunk:
                x["height"], x["width"] = orig_shape
            with torch.no_grad():
                outputs = self.model(
                    [{k: v for k, v in x.items() if k != "transforms"} for x in chunk]
                )
            for x, out in zip(chunk, outputs):
                scores = out["sem_seg"]
                if any(isinstance(t, HFlipTransform) for t in x["transforms"].transforms):
                    scores = scores.flip(dims=[2])
                total = scores if total is None else total + scores
                count += 1
        return {"sem_seg": total / count}
