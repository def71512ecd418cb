"""The ``VideoMaskFormer`` meta-architecture (Mask2Former-VIS, SPEC §9; META_ARCH_REGISTRY).

Input: one dict per clip, as the YouTube-VIS clip mapper gives it::

    {"image": [T frame tensors (C, H, W), cfg.INPUT.FORMAT], "height": H0, "width": W0,
     "instances": [T Instances(gt_classes, gt_ids, gt_masks)]  (training only), ...}

The frames of all clips go through the backbone and the pixel decoder as B*T images (the image
model's `normalize_and_pad` / `predict`); the video transformer decoder
(`VideoMultiScaleMaskedTransformerDecoder`) decodes each clip as a whole.

Training returns the weighted losses of `VideoSetCriterion` (every clip must have
``INPUT.SAMPLING_FRAME_NUM`` frames). Inference takes one clip per call and returns the
original's dict (not a list)::

    {"image_size": (height, width), "pred_scores": [10 floats], "pred_labels": [10 ints],
     "pred_masks": [10 bool tensors (T, height, width)]}

Windowed inference (``MODEL.MASK_FORMER.TEST.WINDOW_SIZE`` W > 0, not in the original): a clip
longer than W frames is run as consecutive windows of W frames (the last may be shorter), so the
backbone, pixel decoder and decoder only ever hold W frames of activations. The queries of each
window are matched to those of the previous window by the Hungarian algorithm on the cosine
similarity of their embeddings (`associate_queries`), so query i means the same track in every
window. A query's class probabilities are the frame-weighted mean of its windows'
probabilities; its masks are its per-window masks concatenated. What remains in memory for the
whole clip is the low-resolution mask logits [Q, T, H/4, W/4] and the output masks.
"""

from typing import Dict, List

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.structures import ImageList

from ..criterion import VideoSetCriterion
from ..matcher import VideoHungarianMatcher
from ..postprocessing import video_instance_inference
from ..transformer_decoder.video_mask2former_transformer_decoder import (
    VideoMultiScaleMaskedTransformerDecoder,
)
from .maskformer_model import MaskFormer, gt_mask_tensor

__all__ = ["VideoMaskFormer", "associate_queries"]


def associate_queries(reference: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """One-to-one association of two windows' queries by embedding similarity.

    Args:
        reference: [Q, C] query embeddings of the previous window (in track order).
        current: [Q, C] query embeddings of the next window.
    Returns:
        int64 [Q] ``order`` such that ``current[order[i]]`` continues ``reference[i]``: the
        assignment maximising the summed cosine similarity (Hungarian algorithm).
    """
    if reference.shape != current.shape or reference.dim() != 2:
        raise ValueError(
            "associate_queries expects two [Q, C] embeddings of the same shape, got "
            f"{tuple(reference.shape)} and {tuple(current.shape)}"
        )
    sim = F.normalize(reference.float(), dim=-1) @ F.normalize(current.float(), dim=-1).t()
    sim = torch.nan_to_num(sim, nan=-1.0).cpu().numpy().astype(np.float64)
    rows, cols = linear_sum_assignment(sim, maximize=True)
    order = torch.empty(len(rows), dtype=torch.int64)
    order[torch.as_tensor(rows, dtype=torch.int64)] = torch.as_tensor(cols, dtype=torch.int64)
    return order.to(current.device)


@META_ARCH_REGISTRY.register()
class VideoMaskFormer(MaskFormer):
    """Mask2Former for video instance segmentation: MaskFormer over clips (see module docstring)."""

    matcher_class = VideoHungarianMatcher
    criterion_class = VideoSetCriterion

    @configurable
    def __init__(
        self, *, num_frames: int, window_size: int = 0, test_topk_per_video: int = 10, **kwargs
    ):
        """
        Args:
            num_frames: frames per training clip (INPUT.SAMPLING_FRAME_NUM).
            window_size: 0 runs a clip at once (the original); W > 0 runs clips longer than W
                frames in windows of W frames (MODEL.MASK_FORMER.TEST.WINDOW_SIZE).
            test_topk_per_video: (query, class) pairs kept per clip (the original: 10).
            **kwargs: see `MaskFormer` (the panoptic/semantic/instance options are unused).
        """
        super().__init__(**kwargs)
        predictor = getattr(self.sem_seg_head, "predictor", None)
        if not isinstance(predictor, VideoMultiScaleMaskedTransformerDecoder):
            raise ValueError(
                "VideoMaskFormer needs MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME "
                f"'VideoMultiScaleMaskedTransformerDecoder', got {type(predictor).__name__}"
            )
        if num_frames < 1:
            raise ValueError(f"INPUT.SAMPLING_FRAME_NUM must be >= 1, got {num_frames}")
        if window_size < 0:
            raise ValueError(
                f"MODEL.MASK_FORMER.TEST.WINDOW_SIZE must be >= 0 (0 = off), got {window_size}"
            )
        self.num_frames = num_frames
        self.window_size = window_size
        self.test_topk_per_video = test_topk_per_video

    @classmethod
    def from_config(cls, cfg):
        if "SAMPLING_FRAME_NUM" not in cfg.INPUT or "WINDOW_SIZE" not in cfg.MODEL.MASK_FORMER.TEST:
            raise ValueError(
                "VideoMaskFormer needs the video config keys: call "
                "mask2former.add_maskformer2_video_config(cfg) before merging the config file"
            )
        args = super().from_config(cfg)
        args["num_frames"] = cfg.INPUT.SAMPLING_FRAME_NUM
        args["window_size"] = cfg.MODEL.MASK_FORMER.TEST.WINDOW_SIZE
        return args

    @classmethod
    def check_test_outputs(cls, cfg):
        """Clip inference has one output (scores, labels, masks); TEST.*_ON are not used."""

    # --- inputs -------------------------------------------------------------------------------
    def clip_frames(self, inputs: Dict, index: int) -> List[torch.Tensor]:
        """The frames [C, H, W] of input ``index``, checked: a non-empty list of frames of one size
        (in training, exactly ``num_frames`` of them)."""
        frames = inputs.get("image") if isinstance(inputs, dict) else None
        if isinstance(frames, torch.Tensor) and frames.dim() == 4:
            frames = list(frames.unbind(0))  # a [T, C, H, W] tensor is a clip too
        if isinstance(frames, torch.Tensor):
            raise ValueError(
                f"VideoMaskFormer input {index}: 'image' is one tensor of shape "
                f"{tuple(frames.shape)}, but a clip is a list of T frame tensors [C, H, W]. "
                "A video config needs the clip dataset mapper (YouTube-VIS), not an image dataset mapper; "
                "for single images use an image config (MODEL.META_ARCHITECTURE 'MaskFormer')"
            )
        if not isinstance(frames, (list, tuple)):
            raise ValueError(
                f"VideoMaskFormer input {index}: expected a dict whose 'image' is a list of T "
                f"frame tensors [C, H, W], got {type(frames).__name__}"
            )
        if len(frames) == 0:
            raise ValueError(f"VideoMaskFormer input {index}: the clip is empty (no frames)")
        bad = [t for t, f in enumerate(frames) if not isinstance(f, torch.Tensor) or f.dim() != 3]
        if bad:
            raise ValueError(
                f"VideoMaskFormer input {index}: frames {bad[:5]} are not [C, H, W] tensors"
            )
        sizes = [tuple(f.shape) for f in frames]
        if len(set(sizes)) > 1:
            detail = ", ".join(f"frame {t}: {s}" for t, s in enumerate(sizes) if s != sizes[0])
            raise ValueError(
                f"VideoMaskFormer input {index}: the frames of a clip must all have one size; "
                f"frame 0 is {sizes[0]}, but {detail}. Resize the clip as a whole (the clip "
                "mapper applies one transform to every frame)"
            )
        if self.training and len(frames) != self.num_frames:
            raise ValueError(
                f"VideoMaskFormer input {index}: a training clip has {len(frames)} frames, "
                f"INPUT.SAMPLING_FRAME_NUM is {self.num_frames}"
            )
        return list(frames)

    def forward(self, batched_inputs: List[Dict]):
        """
        Args:
            batched_inputs: clip dicts (see the module docstring); at inference exactly one.
        Returns:
            training: dict of weighted losses. Inference: the clip's output dict.
        """
        clips = [self.clip_frames(x, i) for i, x in enumerate(batched_inputs)]
        if not clips:
            raise ValueError("VideoMaskFormer: no input clips")
        if self.training:
            if any("instances" not in x for x in batched_inputs):
                raise ValueError(
                    "VideoMaskFormer training needs 'instances' (one Instances per frame) in "
                    "every clip dict (use the YouTube-VIS clip dataset mapper)"
                )
            images = self.normalize_and_pad([f for clip in clips for f in clip])
            outputs = self.predict(images, return_aux=True)
            targets = self.prepare_targets([x["instances"] for x in batched_inputs], images)
            return self.weighted_losses(self.criterion(outputs, targets))
        if len(clips) != 1:
            raise ValueError(
                f"VideoMaskFormer inference takes one clip per call, got {len(clips)}; call the "
                "model once per clip"
            )
        return self.inference_clip(clips[0], batched_inputs[0])

    def prepare_targets(self, targets, images: ImageList):
        """Per clip {"labels" [G], "ids" [G, T], "masks" [G, T, H_pad, W_pad] float}.

        Args:
            targets: per clip, the list of its T frames' Instances (gt_classes, gt_ids with -1
                where the instance is absent, gt_masks BitMasks or [G, H, W]); every frame lists
                the clip's G instances in the same order.
            images: the padded batch of all frames.
        An instance is kept if it is present (id != -1) in at least one frame; its mask is empty
        in the frames where it is absent.
        """
        h_pad, w_pad = images.tensor.shape[-2:]
        out = []
        for c, frames in enumerate(targets):
            if len(frames) != self.num_frames:
                raise ValueError(
                    f"VideoMaskFormer: clip {c} has {len(frames)} Instances, expected one per "
                    f"frame ({self.num_frames})"
                )
            num = len(frames[0])
            masks = torch.zeros(
                (num, len(frames), h_pad, w_pad), dtype=torch.bool, device=self.device
            )
            ids = []
            for t, inst in enumerate(frames):
                if len(inst) != num or not inst.has("gt_ids"):
                    raise ValueError(
                        f"VideoMaskFormer: clip {c} frame {t} has {len(inst)} instances"
                        f"{'' if inst.has('gt_ids') else ' and no gt_ids'}; every frame must list "
                        f"the clip's {num} instances with gt_ids (-1 where absent), as the clip "
                        "mapper does"
                    )
                gt_masks = gt_mask_tensor(inst)
                h, w = gt_masks.shape[-2:]
                masks[:, t, :h, :w] = gt_masks.to(device=self.device, dtype=torch.bool)
                ids.append(inst.gt_ids.to(self.device))
            ids = torch.stack(ids, dim=1)  # [G, T]
            present = ids != -1  # [G, T]
            masks &= present[:, :, None, None]
            valid = present.any(dim=1)
            labels = frames[-1].gt_classes.to(device=self.device, dtype=torch.int64)
            out.append({"labels": labels[valid], "ids": ids[valid], "masks": masks[valid].float()})
        return out

    # --- inference ----------------------------------------------------------------------------
    def clip_predictions(self, frames: List[torch.Tensor]):
        """All frames at once: (scores [Q, K], mask logits [Q, T, h, w], padded size, image
        size)."""
        images = self.normalize_and_pad(frames)
        outputs = self.predict(images, return_aux=False)
        scores = F.softmax(outputs["pred_logits"][0], dim=-1)[:, :-1]
        return scores, outputs["pred_masks"][0], images.tensor.shape[-2:], images.image_sizes[0]

    def windowed_predictions(self, frames: List[torch.Tensor]):
        """`clip_predictions` in windows of ``window_size`` frames with the queries associated
        across windows (module docstring): the same four values."""
        prob_sum, masks, reference = None, [], None
        for start in range(0, len(frames), self.window_size):
            images = self.normalize_and_pad(frames[start : start + self.window_size])
            outputs = self.predict(images, return_aux=False)
            probs = F.softmax(outputs["pred_logits"][0], dim=-1)[:, :-1]
            window_masks, embeddings = outputs["pred_masks"][0], outputs["pred_embds"][0]
            del outputs
            if reference is not None:
                order = associate_queries(reference, embeddings)
                probs, window_masks = probs[order], window_masks[order]
                embeddings = embeddings[order]
            n = window_masks.shape[1]
            prob_sum = probs * n if prob_sum is None else prob_sum + probs * n
            masks.append(window_masks)
            reference = embeddings
        scores = prob_sum / len(frames)
        return scores, torch.cat(masks, dim=1), images.tensor.shape[-2:], images.image_sizes[0]

    def inference_clip(self, frames: List[torch.Tensor], inputs: Dict) -> Dict:
        """One clip's output dict (module docstring)."""
        if 0 < self.window_size < len(frames):
            scores, mask_logits, padded, image_size = self.windowed_predictions(frames)
        else:
            scores, mask_logits, padded, image_size = self.clip_predictions(frames)
        return video_instance_inference(
            scores,
            mask_logits,
            padded,
            image_size,
            inputs.get("height", image_size[0]),
            inputs.get("width", image_size[1]),
            topk=self.test_topk_per_video,
        )
