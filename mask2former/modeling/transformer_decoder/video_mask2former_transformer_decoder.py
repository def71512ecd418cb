"""The masked-attention transformer decoder of Mask2Former-VIS (SPEC §9).

The image decoder (`MultiScaleMaskedTransformerDecoder`) with a frame axis: the B*T frames of B
clips come through the backbone and pixel decoder as B*T images; here every clip's T frames
form one memory of T*H*W tokens per level (frame-major), with the 3-D sine position encoding;
masks are ``einsum("bqc,btchw->bqthw")`` and the attention masks cover (t, h, w). The queries,
layers and parameters (names and shapes) are the image decoder's.
"""

import torch

from detectron2.config import configurable

from ...layers.position_encoding import PositionEmbeddingSine3D
from .build import TRANSFORMER_DECODER_REGISTRY
from .mask2former_transformer_decoder import MultiScaleMaskedTransformerDecoder

__all__ = ["VideoMultiScaleMaskedTransformerDecoder", "video_mask_logits_from_embeddings"]


def video_mask_logits_from_embeddings(embeddings, mask_features):
    """Mask logits of clips: embeddings [B, Q, D], features [B, T, D, H, W] → [B, Q, T, H, W]."""
    return torch.einsum("bqc,btchw->bqthw", embeddings, mask_features)


@TRANSFORMER_DECODER_REGISTRY.register()
class VideoMultiScaleMaskedTransformerDecoder(MultiScaleMaskedTransformerDecoder):
    """Masked-attention decoder over clips (SPEC §9).

    Input: ``num_feature_levels`` maps [B*T, C, H_l, W_l] and mask features [B*T, D, H, W] of B
    clips of T frames (frame-major within a clip). In training a clip has ``num_frames``
    frames (``INPUT.SAMPLING_FRAME_NUM``); in eval mode the batch is one clip of any length.

    Output: "pred_logits" [B, Q, K+1], "pred_masks" [B, Q, T, H, W], "pred_embds" [B, Q, C]
    (the normalised decoder output of the last layer: the query embeddings that windowed
    inference associates across windows) and, with ``return_aux``, "aux_outputs".
    """

    @configurable
    def __init__(self, in_channels, mask_classification=True, *, num_frames: int, **kwargs):
        """
        Args:
            num_frames: frames per clip in training (eval mode: the whole batch is one clip).
            in_channels, mask_classification, **kwargs: see `MultiScaleMaskedTransformerDecoder`.
        """
        super().__init__(in_channels, mask_classification, **kwargs)
        if num_frames < 1:
            raise ValueError(f"INPUT.SAMPLING_FRAME_NUM must be >= 1, got {num_frames}")
        self.num_frames = num_frames
        self.pe_layer = PositionEmbeddingSine3D(self.pe_layer.num_pos_feats, normalize=True)

    @classmethod
    def from_config(cls, cfg, in_channels, mask_classification):
        args = super().from_config(cfg, in_channels, mask_classification)
        if "SAMPLING_FRAME_NUM" not in cfg.INPUT:
            raise ValueError(
                "VideoMultiScaleMaskedTransformerDecoder needs the video config keys: call "
                "mask2former.add_maskformer2_video_config(cfg) before merging the config file"
            )
        args["num_frames"] = cfg.INPUT.SAMPLING_FRAME_NUM
        return args

    def clip_shape(self, num_images: int):
        if not self.training:
            return 1, num_images
        if num_images % self.num_frames:
            raise ValueError(
                f"{num_images} frames in the batch is not a whole number of clips of "
                f"INPUT.SAMPLING_FRAME_NUM={self.num_frames} frames"
            )
        return num_images // self.num_frames, self.num_frames

    def position_encoding(self, feat, num_clips):
        clip = feat.view(num_clips, -1, *feat.shape[1:])  # [B, T, C, H, W]
        return self.pe_layer(clip).flatten(0, 1)

    def group_frames(self, maps, num_clips):
        return maps.view(num_clips, -1, *maps.shape[1:])  # [B, T, D, H, W]

    def mask_logits(self, embeddings, features):
        return video_mask_logits_from_embeddings(embeddings, features)

    def finalize_outputs(self, out, queries):
        out["pred_embds"] = self.decoder_norm(queries).transpose(0, 1)
        return out
