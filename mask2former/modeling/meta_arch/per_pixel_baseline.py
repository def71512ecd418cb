"""MaskFormer v1's per-pixel classification baselines (SEM_SEG_HEADS_REGISTRY, SPEC §10).

Both are ``sem_seg_head`` s of Detectron2's ``SemanticSegmentor`` meta-architecture: they return
per-class logits ``[N, K, H, W]`` at the padded input size at inference, and a pixel-wise
cross-entropy (``loss_sem_seg``, void = IGNORE_VALUE) in training.

- ``PerPixelBaselineHead``: a pixel decoder (PIXEL_DECODER_NAME) and a 1x1 conv ``predictor``
  from the mask features to K logits.
- ``PerPixelBaselinePlusHead``: the same pixel decoder and MaskFormer v1's transformer
  predictor without classification, with NUM_OBJECT_QUERIES = K queries: query k's mask logits
  are the logits of class k. With DEEP_SUPERVISION each auxiliary output adds its own
  ``loss_sem_seg_{i}``.
"""

from typing import Dict, Optional

import fvcore.nn.weight_init as weight_init
import torch.nn.functional as F
from torch import nn

from detectron2.config import configurable
from detectron2.layers import Conv2d, ShapeSpec
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY

from ..pixel_decoder.fpn import build_pixel_decoder
from ..transformer_decoder.build import build_transformer_decoder
from .mask_former_head import move_version1_head_keys, predictor_in_channels, predictor_input

__all__ = ["PerPixelBaselineHead", "PerPixelBaselinePlusHead"]


@SEM_SEG_HEADS_REGISTRY.register()
class PerPixelBaselineHead(nn.Module):
    """Pixel decoder + 1x1 conv classifier (see module docstring)."""

    _version = 2

    @configurable
    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        num_classes: int,
        pixel_decoder: nn.Module,
        loss_weight: float = 1.0,
        ignore_value: int = -1,
        predictor: Optional[nn.Module] = None,
    ):
        """
        Args:
            input_shape: shapes of the backbone features the head reads.
            num_classes: K; pixel_decoder: a module with ``forward_features`` and ``mask_dim``;
            loss_weight: weight of the cross-entropy; ignore_value: void label of the targets.
            predictor: the classifier on the mask features (default: a 1x1 conv to K).
        """
        super().__init__()
        shapes = sorted(input_shape.items(), key=lambda kv: kv[1].stride)
        self.in_features = [k for k, _ in shapes]
        self.ignore_value = ignore_value
        self.common_stride = 4
        self.loss_weight = loss_weight
        self.num_classes = num_classes
        self.pixel_decoder = pixel_decoder
        if predictor is None:
            predictor = Conv2d(pixel_decoder.mask_dim, num_classes, kernel_size=1)
            weight_init.c2_msra_fill(predictor)
        self.predictor = predictor

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        move_version1_head_keys(self, state_dict, prefix, local_metadata)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        head = cfg.MODEL.SEM_SEG_HEAD
        return {
            "input_shape": {k: v for k, v in input_shape.items() if k in head.IN_FEATURES},
            "ignore_value": head.IGNORE_VALUE,
            "num_classes": head.NUM_CLASSES,
            "pixel_decoder": build_pixel_decoder(cfg, input_shape),
            "loss_weight": head.LOSS_WEIGHT,
        }

    def forward(self, features, targets=None):
        """
        Args:
            features: dict of backbone maps; targets: [N, H, W] int64 labels (training).
        Returns:
            (logits [N, K, H, W] upsampled x4, {}) at inference; (None, losses) in training.
        """
        x, aux = self.layers(features)
        if self.training:
            losses = self.losses(x, targets)
            for i, a in enumerate(aux or []):
                losses[f"loss_sem_seg_{i}"] = self.losses(a, targets)["loss_sem_seg"]
            return None, losses
        return self._upsample(x), {}

    def layers(self, features):
        """Per-class logits [N, K, H/4, W/4] and the auxiliary logits (None here)."""
        mask_features = self.pixel_decoder.forward_features(features)[0]
        return self.predictor(mask_features), None

    def _upsample(self, x):
        return F.interpolate(
            x, scale_factor=self.common_stride, mode="bilinear", align_corners=False
        )

    def losses(self, predictions, targets):
        """Cross-entropy of the x4-upsampled logits with the labels (void ignored), weighted."""
        predictions = self._upsample(predictions.float())
        loss = F.cross_entropy(
            predictions, targets, reduction="mean", ignore_index=self.ignore_value
        )
        return {"loss_sem_seg": loss * self.loss_weight}


@SEM_SEG_HEADS_REGISTRY.register()
class PerPixelBaselinePlusHead(PerPixelBaselineHead):
    """Pixel decoder + MaskFormer v1's transformer predictor, one query per class."""

    @configurable
    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        transformer_in_feature: str,
        transformer_predictor: nn.Module,
        deep_supervision: bool,
        num_classes: int,
        pixel_decoder: nn.Module,
        loss_weight: float = 1.0,
        ignore_value: int = -1,
    ):
        """
        Args:
            transformer_in_feature: TRANSFORMER_IN_FEATURE of the predictor's input;
            transformer_predictor: a predictor without classification whose K queries give the
                per-class logits; deep_supervision: add a loss per auxiliary output.
            others: as for `PerPixelBaselineHead`.
        """
        super().__init__(
            input_shape,
            num_classes=num_classes,
            pixel_decoder=pixel_decoder,
            loss_weight=loss_weight,
            ignore_value=ignore_value,
            predictor=transformer_predictor,
        )
        self.transformer_in_feature = transformer_in_feature
        self.deep_supervision = deep_supervision

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        ret = super().from_config(cfg, input_shape)
        mf = cfg.MODEL.MASK_FORMER
        if mf.NUM_OBJECT_QUERIES != cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES:
            raise ValueError(
                "PerPixelBaselinePlusHead predicts one mask per class: set "
                f"MODEL.MASK_FORMER.NUM_OBJECT_QUERIES ({mf.NUM_OBJECT_QUERIES}) to "
                f"MODEL.SEM_SEG_HEAD.NUM_CLASSES ({cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES})"
            )
        ret["transformer_in_feature"] = mf.TRANSFORMER_IN_FEATURE
        ret["transformer_predictor"] = build_transformer_decoder(
            cfg, predictor_in_channels(cfg, input_shape), mask_classification=False
        )
        ret["deep_supervision"] = mf.DEEP_SUPERVISION
        return ret

    def layers(self, features):
        """Per-class logits [N, K, H/4, W/4] and, with deep supervision in training, the
        auxiliary outputs' logits."""
        decoded = self.pixel_decoder.forward_features(features)
        x = predictor_input(self.transformer_in_feature, features, decoded)
        aux = self.deep_supervision and self.training
        out = self.predictor(x, decoded[0], return_aux=aux)
        return out["pred_masks"], [a["pred_masks"] for a in out.get("aux_outputs", [])] or None
