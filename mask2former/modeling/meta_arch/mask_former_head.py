"""``MaskFormerHead``: pixel decoder + transformer decoder, the ``sem_seg_head`` of MaskFormer."""

import logging
from typing import Dict

from torch import nn

from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY

from ..pixel_decoder.fpn import build_pixel_decoder
from ..transformer_decoder.build import build_transformer_decoder

__all__ = [
    "MaskFormerHead",
    "move_version1_head_keys",
    "predictor_in_channels",
    "predictor_input",
]


def predictor_in_channels(cfg, input_shape: Dict[str, ShapeSpec]) -> int:
    """Channels of the transformer predictor's input named by TRANSFORMER_IN_FEATURE."""
    head = cfg.MODEL.SEM_SEG_HEAD
    in_feature = cfg.MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE
    if in_feature in ("transformer_encoder", "multi_scale_pixel_decoder"):
        return head.CONVS_DIM
    if in_feature == "pixel_embedding":
        return head.MASK_DIM
    if in_feature in input_shape:
        return input_shape[in_feature].channels
    raise ValueError(
        f"MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE={in_feature!r} is neither "
        "'multi_scale_pixel_decoder', 'transformer_encoder', 'pixel_embedding' nor a "
        f"backbone feature ({sorted(input_shape)})"
    )


def predictor_input(in_feature: str, features, pixel_decoder_outputs):
    """The transformer predictor's input named by ``in_feature``.

    Args:
        in_feature: TRANSFORMER_IN_FEATURE: "multi_scale_pixel_decoder" (Mask2Former: the list
            of multi-scale maps), "transformer_encoder" (the pixel decoder's encoder output,
            MaskFormer v1), "pixel_embedding" (the mask features) or a backbone feature name.
        features: dict of backbone maps.
        pixel_decoder_outputs: (mask_features, encoder_features, multi_scale_features) from
            the pixel decoder's ``forward_features``.
    """
    mask_features, encoder_features, multi_scale_features = pixel_decoder_outputs
    if in_feature == "multi_scale_pixel_decoder":
        return multi_scale_features
    if in_feature == "transformer_encoder":
        if encoder_features is None:
            raise ValueError(
                "TRANSFORMER_IN_FEATURE 'transformer_encoder' needs a pixel decoder with a "
                "transformer encoder (e.g. TransformerEncoderPixelDecoder)"
            )
        return encoder_features
    if in_feature == "pixel_embedding":
        return mask_features
    return features[in_feature]


def move_version1_head_keys(head: nn.Module, state_dict, prefix, local_metadata) -> None:
    """Checkpoints of head version 1 kept the pixel decoder's parameters directly on the head:
    move every ``{prefix}*`` key that is not under ``predictor`` / ``pixel_decoder`` to
    ``{prefix}pixel_decoder.*`` (in place). A no-op for version >= 2."""
    version = local_metadata.get("version", None)
    if version is not None and version >= 2:
        return
    renamed = False
    for k in list(state_dict.keys()):
        if (
            k.startswith(prefix)
            and not k.startswith(prefix + "predictor")
            and not k.startswith(prefix + "pixel_decoder")
        ):
            state_dict[prefix + "pixel_decoder." + k[len(prefix) :]] = state_dict.pop(k)
            renamed = True
    if renamed:
        logging.getLogger(__name__).warning(
            "%s: renamed the keys of a version-1 checkpoint to pixel_decoder.*",
            type(head).__name__,
        )


@SEM_SEG_HEADS_REGISTRY.register()
class MaskFormerHead(nn.Module):
    """Runs the pixel decoder, then the transformer decoder on the feature it is configured to read.

    ``transformer_in_feature`` selects the transformer decoder's input:
    "multi_scale_pixel_decoder" (Mask2Former: the pixel decoder's 3 multi-scale maps),
    "transformer_encoder" (the pixel decoder's encoder output), "pixel_embedding" (the mask
    features) or a backbone feature name such as "res5" (MaskFormer v1).
    """

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
        transformer_predictor: nn.Module,
        transformer_in_feature: str,
    ):
        """
        Args:
            input_shape: shapes of the backbone features the head reads.
            num_classes: K; pixel_decoder: module with ``forward_features``;
            loss_weight, ignore_value: kept for Detectron2's semantic-head interface;
            transformer_predictor: the transformer decoder; transformer_in_feature: see above.
        """
        super().__init__()
        shapes = sorted(input_shape.items(), key=lambda kv: kv[1].stride)
        self.in_features = [k for k, _ in shapes]
        self.ignore_value = ignore_value
        self.common_stride = 4
        self.loss_weight = loss_weight
        self.pixel_decoder = pixel_decoder
        self.predictor = transformer_predictor
        self.transformer_in_feature = transformer_in_feature
        self.num_classes = num_classes

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
        in_channels = predictor_in_channels(cfg, input_shape)
        return {
            "input_shape": {k: v for k, v in input_shape.items() if k in head.IN_FEATURES},
            "ignore_value": head.IGNORE_VALUE,
            "num_classes": head.NUM_CLASSES,
            "pixel_decoder": build_pixel_decoder(cfg, input_shape),
            "loss_weight": head.LOSS_WEIGHT,
            "transformer_in_feature": cfg.MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE,
            "transformer_predictor": build_transformer_decoder(
                cfg, in_channels, mask_classification=True
            ),
        }

    def forward(self, features, mask=None, *, return_aux: bool = True):
        """
        Args:
            features: dict of backbone maps.
            mask: optional padding mask passed to the transformer decoder.
            return_aux: also return the intermediate predictions ("aux_outputs", for the
                auxiliary losses). Inference passes False: the decoder then skips their
                full-resolution masks.
        Returns:
            the transformer decoder's dict: "pred_logits" [N, Q, K+1], "pred_masks"
            [N, Q, H/4, W/4] and, with ``return_aux``, "aux_outputs".
        """
        return self.layers(features, mask, return_aux=return_aux)

    def layers(self, features, mask=None, *, return_aux: bool = True):
        decoded = self.pixel_decoder.forward_features(features)
        x = predictor_input(self.transformer_in_feature, features, decoded)
        return self.predictor(x, decoded[0], mask, return_aux=return_aux)
