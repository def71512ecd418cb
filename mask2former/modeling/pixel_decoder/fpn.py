"""The FPN pixel decoders of MaskFormer v1 (``BasePixelDecoder``,
``TransformerEncoderPixelDecoder``) and the FPN pieces shared with the deformable pixel decoder.

Pixel decoders are registered in Detectron2's ``SEM_SEG_HEADS_REGISTRY`` (as in the original
projects) and selected by ``cfg.MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME``. Each one has
``forward_features(features) -> (mask_features, transformer_encoder_features,
multi_scale_features)``.
"""

from typing import Callable, Dict, Optional, Union

import fvcore.nn.weight_init as weight_init
import torch.nn.functional as F
from torch import nn

from detectron2.config import configurable
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY

from ...layers.position_encoding import PositionEmbeddingSine
from ...layers.transformer import DetrEncoder, DetrTransformer

__all__ = [
    "BasePixelDecoder",
    "TransformerEncoderPixelDecoder",
    "build_pixel_decoder",
    "make_fpn_convs",
    "fpn_top_down",
]


def build_pixel_decoder(cfg, input_shape):
    """Build the pixel decoder named by ``cfg.MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME``."""
    name = cfg.MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME
    model = SEM_SEG_HEADS_REGISTRY.get(name)(cfg, input_shape)
    if not callable(getattr(model, "forward_features", None)):
        raise ValueError(
            f"pixel decoder {name!r} has no forward_features(features) method; MaskFormerHead "
            "needs (mask_features, transformer_encoder_features, multi_scale_features) from it"
        )
    return model


def _conv(in_channels, out_channels, kernel_size, norm, activation=None):
    conv = Conv2d(
        in_channels,
        out_channels,
        kernel_size=kernel_size,
        padding=kernel_size // 2,
        bias=(norm == ""),
        norm=get_norm(norm, out_channels),
        activation=activation,
    )
    weight_init.c2_xavier_fill(conv)
    return conv


def make_fpn_convs(in_channels, conv_dim, norm, lateral=True):
    """The convs of one FPN level: (lateral 1x1 conv + norm, or None; output 3x3 conv + norm + ReLU).

    Without ``lateral`` (the coarsest level of ``BasePixelDecoder``) the output conv reads the
    backbone map directly.
    """
    if not lateral:
        return None, _conv(in_channels, conv_dim, 3, norm, F.relu)
    return _conv(in_channels, conv_dim, 1, norm), _conv(conv_dim, conv_dim, 3, norm, F.relu)


def fpn_top_down(x, coarser, lateral_conv, output_conv, mode):
    """One top-down FPN step: ``output_conv(lateral_conv(x) + upsample(coarser))``.

    Args:
        x: [N, C_in, H, W] backbone map; coarser: [N, conv_dim, h, w] previous FPN output.
        mode: "nearest" (MaskFormer v1) or "bilinear" (align_corners=False, Mask2Former).
    """
    cur = lateral_conv(x)
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    return output_conv(cur + F.interpolate(coarser, size=cur.shape[-2:], mode=mode, **kwargs))


@SEM_SEG_HEADS_REGISTRY.register()
class BasePixelDecoder(nn.Module):
    """FPN over all input features (res2..res5) with nearest-neighbour upsampling.

    The coarsest level has only an output conv (``layer_{L}``); finer level i has a lateral
    conv ``adapter_{i}`` and an output conv ``layer_{i}`` (i = 1 for res2). ``mask_features``
    is a 3x3 conv of the finest output.
    """

    @configurable
    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        conv_dim: int,
        mask_dim: int,
        norm: Optional[Union[str, Callable]] = None,
    ):
        """
        Args:
            input_shape: shapes of the input features (e.g. res2..res5).
            conv_dim: FPN width; mask_dim: channels of the mask features; norm: e.g. "GN".
        """
        super().__init__()
        norm = norm or ""
        shapes = sorted(input_shape.items(), key=lambda kv: kv[1].stride)
        self.in_features = [k for k, _ in shapes]  # fine to coarse
        lateral_convs, output_convs = [], []
        for idx, (_, shape) in enumerate(shapes):
            is_coarsest = idx == len(shapes) - 1
            lateral, output = make_fpn_convs(
                shape.channels, conv_dim, norm, lateral=not is_coarsest
            )
            if lateral is not None:
                self.add_module(f"adapter_{idx + 1}", lateral)
            self.add_module(f"layer_{idx + 1}", output)
            lateral_convs.append(lateral)
            output_convs.append(output)
        # coarse to fine, the order of the top-down pass
        self.lateral_convs = lateral_convs[::-1]
        self.output_convs = output_convs[::-1]
        self.mask_dim = mask_dim
        self.mask_features = Conv2d(conv_dim, mask_dim, kernel_size=3, stride=1, padding=1)
        weight_init.c2_xavier_fill(self.mask_features)
        self.maskformer_num_feature_levels = 3

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        head = cfg.MODEL.SEM_SEG_HEAD
        return {
            "input_shape": {k: v for k, v in input_shape.items() if k in head.IN_FEATURES},
            "conv_dim": head.CONVS_DIM,
            "mask_dim": head.MASK_DIM,
            "norm": head.NORM,
        }

    def coarsest_level(self, x):
        """FPN output of the coarsest map ``x`` [N, C, h, w] → ([N, conv_dim, h, w], the
        transformer-encoder features or None). Subclasses change this level only."""
        return self.output_convs[0](x), None

    def forward_features(self, features):
        """
        Args:
            features: dict of backbone maps [N, C_f, H_f, W_f].
        Returns:
            mask_features [N, mask_dim, H/4, W/4], the transformer-encoder features (None
            here), and the first 3 FPN outputs, coarsest first ([N, conv_dim, H/32, W/32],
            ... 1/16, 1/8).
        """
        multi_scale_features = []
        y = encoder_features = None
        for idx, name in enumerate(self.in_features[::-1]):
            x = features[name]
            if self.lateral_convs[idx] is None:
                y, encoder_features = self.coarsest_level(x)
            else:
                y = fpn_top_down(x, y, self.lateral_convs[idx], self.output_convs[idx], "nearest")
            if len(multi_scale_features) < self.maskformer_num_feature_levels:
                multi_scale_features.append(y)
        return self.mask_features(y), encoder_features, multi_scale_features

    def forward(self, features, targets=None):
        raise NotImplementedError(
            f"{type(self).__name__} is used through forward_features() by the MaskFormer and "
            "per-pixel baseline heads; it has no forward()"
        )


@SEM_SEG_HEADS_REGISTRY.register()
class TransformerEncoderPixelDecoder(BasePixelDecoder):
    """``BasePixelDecoder`` whose coarsest level first runs a DETR transformer encoder
    (MaskFormer v1's COCO panoptic models).

    The coarsest map goes through ``input_proj`` (1x1 conv with bias to ``conv_dim``), a
    ``transformer.encoder`` of ``TRANSFORMER_ENC_LAYERS`` layers (sine position encoding, width
    ``conv_dim``, heads / FFN width / dropout / pre-norm from ``MODEL.MASK_FORMER``), then the
    output conv ``layer_{L}`` (``conv_dim`` → ``conv_dim`` here). The encoder output is the
    "transformer_encoder" feature of the v1 predictor.
    """

    @configurable
    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        transformer_dropout: float,
        transformer_nheads: int,
        transformer_dim_feedforward: int,
        transformer_enc_layers: int,
        transformer_pre_norm: bool,
        conv_dim: int,
        mask_dim: int,
        norm: Optional[Union[str, Callable]] = None,
    ):
        """
        Args:
            input_shape, conv_dim, mask_dim, norm: as for `BasePixelDecoder`.
            transformer_*: settings of the encoder on the coarsest map.
        """
        super().__init__(input_shape, conv_dim=conv_dim, mask_dim=mask_dim, norm=norm)
        coarsest = max(input_shape.values(), key=lambda s: s.stride)
        self.input_proj = Conv2d(coarsest.channels, conv_dim, kernel_size=1)
        weight_init.c2_xavier_fill(self.input_proj)
        self.transformer = DetrTransformer(
            DetrEncoder(
                transformer_enc_layers, conv_dim, transformer_nheads,
                transformer_dim_feedforward, transformer_dropout, transformer_pre_norm,
            )
        )
        self.pe_layer = PositionEmbeddingSine(conv_dim // 2, normalize=True)
        # the coarsest output conv now reads the encoder output; re-registered last, which is
        # its place in the released checkpoints' state_dict order
        name = f"layer_{len(self.in_features)}"
        output_conv = make_fpn_convs(conv_dim, conv_dim, norm or "", lateral=False)[1]
        delattr(self, name)
        self.add_module(name, output_conv)
        self.output_convs[0] = output_conv

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        ret = super().from_config(cfg, input_shape)
        mf = cfg.MODEL.MASK_FORMER
        ret.update(
            transformer_dropout=mf.DROPOUT,
            transformer_nheads=mf.NHEADS,
            transformer_dim_feedforward=mf.DIM_FEEDFORWARD,
            transformer_enc_layers=cfg.MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS,
            transformer_pre_norm=mf.PRE_NORM,
        )
        return ret

    def coarsest_level(self, x):
        """[N, C, h, w] → (FPN output [N, conv_dim, h, w], encoder output [N, conv_dim, h, w])."""
        n, _, h, w = x.shape
        src = DetrTransformer.flatten(self.input_proj(x))
        pos = DetrTransformer.flatten(self.pe_layer(x))
        memory = self.transformer.encoder(src, pos=pos)  # [hw, N, C]
        encoded = memory.permute(1, 2, 0).reshape(n, -1, h, w)
        return self.output_convs[0](encoded), encoded
