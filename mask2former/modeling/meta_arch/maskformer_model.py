"""The ``MaskFormer`` meta-architecture (META_ARCH_REGISTRY) of Mask2Former and MaskFormer v1.

Both variants share it; MaskFormer v1 differs only through its config: its predictor and
pixel decoder, the dense focal loss (MASK_LOSS_TYPE "focal", TRAIN_NUM_POINTS 0), no instance
output, and its panoptic rule (TEST.PANOPTIC_SEGMENT_WITHIN_MASK False).
"""

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from detectron2.config import configurable
from detectron2.data import MetadataCatalog
from detectron2.modeling import META_ARCH_REGISTRY, build_backbone, build_sem_seg_head
from detectron2.modeling.backbone import Backbone
from detectron2.structures import BitMasks, ImageList
from detectron2.utils.memory import retry_if_cuda_oom

from ..criterion import SetCriterion
from ..matcher import HungarianMatcher
from ...utils.precision import inference_dtype as precision_dtype
from ..postprocessing import (
    crop_and_resize,
    instance_inference,
    panoptic_inference,
    semantic_inference,
)

__all__ = ["MaskFormer", "build_criterion"]


def build_criterion(
    cfg, num_classes: int, matcher_class=HungarianMatcher, criterion_class=SetCriterion
) -> SetCriterion:
    """The training criterion of ``cfg`` (Hungarian matcher + weighted CE / mask / dice losses).

    The mask loss is BCE on sampled points (Mask2Former) or, with MASK_LOSS_TYPE "focal" and
    TRAIN_NUM_POINTS 0, MaskFormer v1's dense focal loss. With DEEP_SUPERVISION the weights are
    repeated for the ``DEC_LAYERS - 1`` auxiliary outputs (``loss_ce_0`` ...
    ``loss_dice_{DEC_LAYERS-2}``). ``matcher_class`` / ``criterion_class``: the image ones, or
    their video subclasses.
    """
    mf = cfg.MODEL.MASK_FORMER
    matcher = matcher_class(
        cost_class=mf.CLASS_WEIGHT,
        cost_mask=mf.MASK_WEIGHT,
        cost_dice=mf.DICE_WEIGHT,
        num_points=mf.TRAIN_NUM_POINTS,
        mask_cost=mf.MASK_LOSS_TYPE,
    )
    weight_dict = {
        "loss_ce": mf.CLASS_WEIGHT,
        "loss_mask": mf.MASK_WEIGHT,
        "loss_dice": mf.DICE_WEIGHT,
    }
    if mf.DEEP_SUPERVISION:
        aux = {}
        for i in range(mf.DEC_LAYERS - 1):
            aux.update({f"{k}_{i}": v for k, v in weight_dict.items()})
        weight_dict.update(aux)
    return criterion_class(
        num_classes,
        matcher=matcher,
        weight_dict=weight_dict,
        eos_coef=mf.NO_OBJECT_WEIGHT,
        losses=["labels", "masks"],
        num_points=mf.TRAIN_NUM_POINTS,
        oversample_ratio=mf.OVERSAMPLE_RATIO,
        importance_sample_ratio=mf.IMPORTANCE_SAMPLE_RATIO,
        mask_loss=mf.MASK_LOSS_TYPE,
    )


def _to_float(outputs):
    """The head's outputs (nested dicts / lists of tensors) with floating tensors as fp32."""
    if isinstance(outputs, dict):
        return {k: _to_float(v) for k, v in outputs.items()}
    if isinstance(outputs, (list, tuple)):
        return type(outputs)(_to_float(v) for v in outputs)
    if torch.is_tensor(outputs) and outputs.is_floating_point():
        return outputs.float()
    return outputs


def gt_mask_tensor(instances) -> torch.Tensor:
    """The ``gt_masks`` of ground-truth Instances as a [G, H, W] tensor (BitMasks unwrapped)."""
    gt_masks = instances.gt_masks
    if isinstance(gt_masks, BitMasks):
        gt_masks = gt_masks.tensor
    if not isinstance(gt_masks, torch.Tensor):
        raise TypeError(
            "gt_masks must be BitMasks or a [G, H, W] tensor, got "
            f"{type(gt_masks).__name__} (polygons: use mask_format 'bitmask')"
        )
    return gt_masks


@META_ARCH_REGISTRY.register()
class MaskFormer(nn.Module):
    """Backbone + MaskFormerHead; losses in training, Detectron2 result dicts at inference.

    Inference (SPEC §4): the final mask logits are upsampled bilinearly to the padded batch
    size; for panoptic/instance output (or SEM_SEG_POSTPROCESSING_BEFORE_INFERENCE) they are
    then cropped to the image and resized to the requested (height, width) *before*
    post-processing; otherwise the semantic result is cropped and resized afterwards.

    Subclasses (the video `VideoMaskFormer`) reuse `normalize_and_pad`, `predict`,
    `weighted_losses` and choose their criterion with ``matcher_class`` / ``criterion_class``.
    """

    matcher_class = HungarianMatcher
    criterion_class = SetCriterion

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        sem_seg_head: nn.Module,
        criterion: nn.Module,
        num_queries: int,
        object_mask_threshold: float,
        overlap_threshold: float,
        metadata,
        size_divisibility: int,
        sem_seg_postprocess_before_inference: bool,
        pixel_mean: Tuple[float],
        pixel_std: Tuple[float],
        semantic_on: bool = True,
        panoptic_on: bool = False,
        instance_on: bool = False,
        test_topk_per_image: int = 100,
        panoptic_segment_within_mask: bool = True,
        inference_dtype: Optional[torch.dtype] = None,
    ):
        """
        Args:
            backbone, sem_seg_head, criterion: the parts (criterion: a SetCriterion).
            num_queries: Q. object_mask_threshold, overlap_threshold: panoptic thresholds.
            metadata: dataset metadata (``thing_dataset_id_to_contiguous_id`` for thing classes).
            size_divisibility: batch padding (< 0: the backbone's).
            sem_seg_postprocess_before_inference: resize mask logits before post-processing.
            pixel_mean, pixel_std: per-channel normalisation in the input format.
            semantic_on, panoptic_on, instance_on: which outputs to produce.
            test_topk_per_image: instances per image.
            panoptic_segment_within_mask: a panoptic segment is the pixels its query wins
                where its own sigmoid >= 0.5 (Mask2Former), or all of them (False, MaskFormer
                v1); see `panoptic_inference`.
            inference_dtype: None (fp32) or the autocast dtype of the backbone and head at
                inference (TEST.PRECISION: torch.bfloat16 on CPU/CUDA, torch.float16 on CUDA);
                post-processing always runs on fp32 logits.
        """
        super().__init__()
        self.backbone = backbone
        self.sem_seg_head = sem_seg_head
        self.criterion = criterion
        self.num_queries = num_queries
        self.overlap_threshold = overlap_threshold
        self.object_mask_threshold = object_mask_threshold
        self.metadata = metadata
        if size_divisibility < 0:
            size_divisibility = self.backbone.size_divisibility
        self.size_divisibility = size_divisibility
        self.sem_seg_postprocess_before_inference = sem_seg_postprocess_before_inference
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        self.semantic_on = semantic_on
        self.instance_on = instance_on
        self.panoptic_on = panoptic_on
        self.test_topk_per_image = test_topk_per_image
        self.panoptic_segment_within_mask = panoptic_segment_within_mask
        self.inference_dtype = inference_dtype

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        sem_seg_head = build_sem_seg_head(cfg, backbone.output_shape())
        mf = cfg.MODEL.MASK_FORMER
        test = mf.TEST
        cls.check_test_outputs(cfg)
        return {
            "backbone": backbone,
            "sem_seg_head": sem_seg_head,
            "criterion": build_criterion(
                cfg, sem_seg_head.num_classes, cls.matcher_class, cls.criterion_class
            ),
            "num_queries": mf.NUM_OBJECT_QUERIES,
            "object_mask_threshold": test.OBJECT_MASK_THRESHOLD,
            "overlap_threshold": test.OVERLAP_THRESHOLD,
            "metadata": MetadataCatalog.get(cfg.DATASETS.TRAIN[0]) if cfg.DATASETS.TRAIN else None,
            "size_divisibility": mf.SIZE_DIVISIBILITY,
            "sem_seg_postprocess_before_inference": (
                test.SEM_SEG_POSTPROCESSING_BEFORE_INFERENCE or test.PANOPTIC_ON or test.INSTANCE_ON
            ),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "semantic_on": test.SEMANTIC_ON,
            "instance_on": test.INSTANCE_ON,
            "panoptic_on": test.PANOPTIC_ON,
            "test_topk_per_image": cfg.TEST.DETECTIONS_PER_IMAGE,
            "panoptic_segment_within_mask": test.PANOPTIC_SEGMENT_WITHIN_MASK,
            "inference_dtype": precision_dtype(cfg.TEST.PRECISION, cfg.MODEL.DEVICE),
        }

    @classmethod
    def check_test_outputs(cls, cfg):
        """Raise if ``cfg`` enables none of the outputs this meta-architecture produces."""
        test = cfg.MODEL.MASK_FORMER.TEST
        if not (test.SEMANTIC_ON or test.PANOPTIC_ON or test.INSTANCE_ON):
            raise ValueError(
                "MODEL.MASK_FORMER.TEST: enable at least one of SEMANTIC_ON, "
                "PANOPTIC_ON, INSTANCE_ON"
            )

    @property
    def device(self):
        return self.pixel_mean.device

    @property
    def thing_ids(self) -> List[int]:
        """Contiguous ids of the thing classes (empty when the metadata has none)."""
        mapping = getattr(self.metadata, "thing_dataset_id_to_contiguous_id", None) or {}
        return sorted(set(mapping.values()))

    def padding_groups(self, batched_inputs) -> List[List[int]]:
        """Indices of the inputs grouped by the size each would be padded to on its own.

        Padding changes the features of the whole image, not only of the padded area
        (convolutions near the border, GroupNorm statistics, the position encodings and the
        attention of both decoders all see it), so inference runs each group as one batch:
        within a group the padded size is the one each image gets alone.
        """
        d = self.size_divisibility
        groups: Dict[Tuple[int, int], List[int]] = {}
        for i, x in enumerate(batched_inputs):
            h, w = (int(v) for v in x["image"].shape[-2:])
            if d > 1:
                h, w = (h + d - 1) // d * d, (w + d - 1) // d * d
            groups.setdefault((h, w), []).append(i)
        return list(groups.values())

    @staticmethod
    def check_image_inputs(batched_inputs):
        """Raise a clear error for inputs that are not single images (e.g. video clips)."""
        for i, x in enumerate(batched_inputs):
            image = x.get("image") if isinstance(x, dict) else None
            if isinstance(image, (list, tuple)):
                raise ValueError(
                    f"MaskFormer input {i}: 'image' is a list of {len(image)} frames (a video "
                    "clip); the image meta-architecture takes one [C, H, W] tensor per input. "
                    "For clips use MODEL.META_ARCHITECTURE 'VideoMaskFormer' (configs/youtubevis_*)"
                )
            if not isinstance(image, torch.Tensor):
                raise ValueError(
                    f"MaskFormer input {i}: expected a dict with 'image' a [C, H, W] tensor, got "
                    f"{type(image).__name__ if isinstance(x, dict) else type(x).__name__}"
                )

    def normalize_and_pad(self, images) -> ImageList:
        """[C, H, W] images (input format) → normalised batch padded to ``size_divisibility``."""
        images = [(x.to(self.device) - self.pixel_mean) / self.pixel_std for x in images]
        return ImageList.from_tensors(images, self.size_divisibility)

    def preprocess_image(self, batched_inputs) -> ImageList:
        return self.normalize_and_pad([x["image"] for x in batched_inputs])

    def predict(self, images: ImageList, *, return_aux: bool):
        """Backbone and head on a padded batch: the head's output dict. At inference with
        TEST.PRECISION bf16/fp16 both run under autocast and the outputs come back as fp32 (the
        thresholds and argmaxes of post-processing see fp32 logits)."""
        x = images.tensor
        if not self.training and x.device.type == "cpu":
            # oneDNN's convolutions run NHWC faster on CPU (ResNet-50 at 512x512: ~1.3x);
            # the convolution outputs keep that layout, values agree to float rounding
            x = x.contiguous(memory_format=torch.channels_last)
        if self.training or self.inference_dtype is None:  # a caller's own autocast still applies
            return self.sem_seg_head(self.backbone(x), return_aux=return_aux)
        with torch.autocast(x.device.type, dtype=self.inference_dtype):
            outputs = self.sem_seg_head(self.backbone(x), return_aux=return_aux)
        return _to_float(outputs)

    def weighted_losses(self, losses):
        """The criterion's losses times their weights (losses without a weight are dropped)."""
        weights = self.criterion.weight_dict
        return {k: v * weights[k] for k, v in losses.items() if k in weights}

    def forward(self, batched_inputs: List[Dict]):
        """
        Args:
            batched_inputs: Detectron2 dicts with "image" (CHW, cfg.INPUT.FORMAT) and, in
                training, "instances" (gt_classes [G], gt_masks BitMasks or [G, H, W] tensor);
                at inference optional "height", "width" of the wanted output.
        Returns:
            training: dict of weighted losses. Inference: per image a dict with "sem_seg"
            ([K, H, W]), "panoptic_seg" ((int32 [H, W], segments_info)) and/or "instances".

        At inference, images of different padded sizes are run as separate batches (see
        `padding_groups`), so that a batch gives the same results as one image at a time.
        """
        self.check_image_inputs(batched_inputs)
        if not self.training:
            groups = self.padding_groups(batched_inputs)
            if len(groups) > 1:
                results = [None] * len(batched_inputs)
                for idx in groups:
                    for i, r in zip(idx, self.forward([batched_inputs[i] for i in idx])):
                        results[i] = r
                return results
        images = self.preprocess_image(batched_inputs)
        # intermediate predictions only feed the auxiliary losses
        outputs = self.predict(images, return_aux=self.training)

        if self.training:
            if "instances" not in batched_inputs[0]:
                raise ValueError(
                    "MaskFormer training needs 'instances' in every input dict "
                    "(use one of the mask_former_* / *_lsj dataset mappers)"
                )
            gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
            targets = self.prepare_targets(gt_instances, images)
            return self.weighted_losses(self.criterion(outputs, targets))

        mask_cls_results = outputs["pred_logits"]
        # upsampled in pixel-major (channels-last) layout: several times faster on CPU, and
        # post-processing works on that layout (see mask2former.modeling.postprocessing)
        mask_pred_results = F.interpolate(
            outputs["pred_masks"].contiguous(memory_format=torch.channels_last),
            size=images.tensor.shape[-2:],
            mode="bilinear",
            align_corners=False,
        )
        del outputs
        return [
            self.inference_single(mask_cls, mask_pred, inputs, image_size)
            for mask_cls, mask_pred, inputs, image_size in zip(
                mask_cls_results, mask_pred_results, batched_inputs, images.image_sizes
            )
        ]

    def inference_single(self, mask_cls, mask_pred, inputs, image_size):
        """Post-process one image: mask_cls [Q, K+1], mask_pred [Q, H_pad, W_pad] logits."""
        height = inputs.get("height", image_size[0])
        width = inputs.get("width", image_size[1])
        result = {}
        if self.sem_seg_postprocess_before_inference:
            mask_pred = retry_if_cuda_oom(crop_and_resize)(mask_pred, image_size, height, width)
            mask_cls = mask_cls.to(mask_pred)
        mask_prob = mask_pred.sigmoid()
        num_classes = self.sem_seg_head.num_classes
        if self.semantic_on:
            r = retry_if_cuda_oom(semantic_inference)(mask_cls, mask_pred, mask_prob=mask_prob)
            if not self.sem_seg_postprocess_before_inference:
                r = retry_if_cuda_oom(crop_and_resize)(r, image_size, height, width)
            result["sem_seg"] = r
        if self.panoptic_on:
            result["panoptic_seg"] = retry_if_cuda_oom(panoptic_inference)(
                mask_cls,
                mask_pred,
                num_classes=num_classes,
                object_mask_threshold=self.object_mask_threshold,
                overlap_threshold=self.overlap_threshold,
                thing_ids=self.thing_ids,
                mask_prob=mask_prob,
                segment_within_mask=self.panoptic_segment_within_mask,
            )
        if self.instance_on:
            result["instances"] = retry_if_cuda_oom(instance_inference)(
                mask_cls,
                mask_pred,
                num_classes=num_classes,
                test_topk_per_image=self.test_topk_per_image,
                panoptic_on=self.panoptic_on,
                thing_ids=self.thing_ids,
                mask_prob=mask_prob,
            )
        return result

    def prepare_targets(self, targets, images: ImageList):
        """Ground truth per image as {"labels" [G] int64, "masks" [G, H_pad, W_pad]} (zero-padded)."""
        h_pad, w_pad = images.tensor.shape[-2:]
        new_targets = []
        for per_image in targets:
            gt_masks = gt_mask_tensor(per_image)
            padded = gt_masks.new_zeros((gt_masks.shape[0], h_pad, w_pad))
            padded[:, : gt_masks.shape[1], : gt_masks.shape[2]] = gt_masks
            new_targets.append({"labels": per_image.gt_classes, "masks": padded})
        return new_targets
