"""The multi-scale deformable-attention pixel decoder of Mask2Former (SPEC §4).

A 6-layer deformable transformer encoder over res3..res5 (coarsest first), then one FPN level
for res2 and a 1x1 conv giving the per-pixel mask features.
"""

import logging
import math
from typing import Dict, List

import fvcore.nn.weight_init as weight_init
import torch
from torch import nn

from detectron2.config import configurable
from detectron2.layers import Conv2d, ShapeSpec
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY

from ...layers import MSDeformAttn
from ...layers.transformer import feed_forward_residual, get_activation_fn, with_pos_embed
from ...layers.position_encoding import PositionEmbeddingSine
from .fpn import fpn_top_down, make_fpn_convs

__all__ = [
    "MSDeformAttnPixelDecoder",
    "MSDeformAttnTransformerEncoderOnly",
    "MSDeformAttnTransformerEncoderLayer",
    "MSDeformAttnTransformerEncoder",
]

# The encoder's feed-forward width is fixed in the released models (no config key).
ENCODER_DIM_FEEDFORWARD = 1024


def _level_sizes(maps):
    """(H, W) of each map [N, C, H, W] as Python ints, read from the shapes (not from a tensor).

    Under torch.compile they are ints or SymInts (no graph break); under torch.jit tracing
    (ONNX export) the traced sizes become constants, i.e. the trace has a fixed input size.
    """
    if torch.jit.is_tracing():
        return [(int(m.shape[-2]), int(m.shape[-1])) for m in maps]
    return [(m.shape[-2], m.shape[-1]) for m in maps]


class MSDeformAttnTransformerEncoderLayer(nn.Module):
    """Post-norm encoder layer: ``x = norm1(x + attn(x + pos))``; ``x = norm2(x + ffn(x))``."""

    def __init__(
        self,
        d_model=256,
        d_ffn=1024,
        dropout=0.0,
        activation="relu",
        n_levels=3,
        n_heads=8,
        n_points=4,
    ):
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.activation = get_activation_fn(activation)
        self.dropout2 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(
        self, src, pos, reference_points, spatial_shapes, level_start_index, padding_mask=None
    ):
        """
        Args:
            src, pos: [N, S, C] flattened levels and their position (+ level) embeddings.
            reference_points: [N, S, L, 2] normalised (x, y).
            spatial_shapes: list of L (H, W) Python ints (or an [L, 2] int64 tensor, see
                `MSDeformAttn`); level_start_index: [L]; padding_mask: [N, S] or None.
        Returns:
            [N, S, C]
        """
        attn = self.self_attn(
            with_pos_embed(src, pos),
            reference_points,
            src,
            spatial_shapes,
            level_start_index,
            padding_mask,
        )
        src = self.norm1(src + self.dropout1(attn))
        return feed_forward_residual(
            src, self.linear1, self.linear2, self.norm2, self.dropout2, self.activation
        )


class MSDeformAttnTransformerEncoder(nn.Module):
    """A stack of deformable encoder layers sharing one set of reference points."""

    def __init__(self, layers: List[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    @staticmethod
    def get_reference_points(spatial_shapes, num_levels, batch, device):
        """Pixel centres of every level, normalised to [0, 1] as (x, y).

        With no padding (valid ratios 1) the point is the same for every level.

        Args:
            spatial_shapes: list of (H, W) Python ints per level (an [L, 2] tensor also works,
                but is read back to the host: a graph break under torch.compile).
        Returns:
            [batch, S, num_levels, 2]
        """
        if isinstance(spatial_shapes, torch.Tensor):
            spatial_shapes = spatial_shapes.tolist()
        refs = []
        for h, w in spatial_shapes:
            ys = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h
            xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w
            ref_y, ref_x = torch.meshgrid(ys, xs, indexing="ij")
            refs.append(torch.stack((ref_x.reshape(-1), ref_y.reshape(-1)), -1))
        ref = torch.cat(refs, 0)  # [S, 2]
        return ref[None, :, None, :].expand(batch, -1, num_levels, -1)

    def forward(self, src, spatial_shapes, level_start_index, pos=None, padding_mask=None):
        """
        Args:
            src, pos: [N, S, C]; spatial_shapes: list of L (H, W) Python ints (or [L, 2]
            int64); level_start_index: [L] int64; padding_mask: [N, S] bool or None.
        Returns:
            [N, S, C]
        """
        reference_points = self.get_reference_points(
            spatial_shapes, len(spatial_shapes), src.shape[0], src.device
        )
        out = src
        for layer in self.layers:
            out = layer(out, pos, reference_points, spatial_shapes, level_start_index, padding_mask)
        return out


class MSDeformAttnTransformerEncoderOnly(nn.Module):
    """Flattens the levels, adds ``level_embed`` to their position encodings, runs the encoder."""

    def __init__(
        self,
        d_model=256,
        nhead=8,
        num_encoder_layers=6,
        dim_feedforward=1024,
        dropout=0.0,
        activation="relu",
        num_feature_levels=3,
        enc_n_points=4,
    ):
        super().__init__()
        self.d_model = d_model
        self.nhead = nhead
        self.level_embed = nn.Parameter(torch.empty(num_feature_levels, d_model))
        self.encoder = MSDeformAttnTransformerEncoder(
            [
                MSDeformAttnTransformerEncoderLayer(
                    d_model,
                    dim_feedforward,
                    dropout,
                    activation,
                    num_feature_levels,
                    nhead,
                    enc_n_points,
                )
                for _ in range(num_encoder_layers)
            ]
        )
        self._reset_parameters()

    def _reset_parameters(self):
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m._reset_parameters()
        nn.init.normal_(self.level_embed)

    def forward(self, srcs, pos_embeds):
        """
        Args:
            srcs, pos_embeds: per level [N, C, H_l, W_l].
        Returns:
            memory [N, S, C], spatial_shapes [L, 2] int64, level_start_index [L] int64.
        The encoder itself gets the (H, W) of each level as Python ints (from the feature
        shapes), so no tensor is read back to the host (one graph under torch.compile).
        """
        shapes = _level_sizes(srcs)
        src_flatten = torch.cat([s.flatten(2).transpose(1, 2) for s in srcs], 1)
        pos_flatten = torch.cat(
            [
                p.flatten(2).transpose(1, 2) + self.level_embed[lvl].view(1, 1, -1)
                for lvl, p in enumerate(pos_embeds)
            ],
            1,
        )
        spatial_shapes = torch.tensor(shapes, dtype=torch.long, device=src_flatten.device)
        level_start_index = torch.cat(
            (spatial_shapes.new_zeros((1,)), spatial_shapes.prod(1).cumsum(0)[:-1])
        )
        memory = self.encoder(src_flatten, shapes, level_start_index, pos_flatten)
        return memory, spatial_shapes, level_start_index


@SEM_SEG_HEADS_REGISTRY.register()
class MSDeformAttnPixelDecoder(nn.Module):
    """Deformable-attention encoder over res3..res5 plus FPN levels down to ``common_stride``."""

    @configurable
    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        transformer_dropout: float,
        transformer_nheads: int,
        transformer_dim_feedforward: int,
        transformer_enc_layers: int,
        conv_dim: int,
        mask_dim: int,
        norm: str,
        transformer_in_features: List[str],
        common_stride: int,
        transformer_n_points: int = 4,
    ):
        """
        Args:
            input_shape: shapes of all input features (res2..res5).
            transformer_*: encoder settings (dim_feedforward is 1024 in every released model).
            conv_dim: width; mask_dim: mask-feature channels; norm: norm of the FPN convs.
            transformer_in_features: the encoder's inputs (res3..res5).
            common_stride: stride of the mask features (4).
            transformer_n_points: sampling points per head and level (4).
        """
        super().__init__()
        shapes = sorted(input_shape.items(), key=lambda kv: kv[1].stride)
        self.in_features = [k for k, _ in shapes]  # res2 .. res5
        self.feature_strides = [v.stride for _, v in shapes]
        self.feature_channels = [v.channels for _, v in shapes]
        t_shapes = sorted(
            ((k, v) for k, v in input_shape.items() if k in transformer_in_features),
            key=lambda kv: kv[1].stride,
        )
        if not t_shapes:
            raise ValueError(
                f"none of the transformer input features {transformer_in_features} "
                f"is among the pixel decoder's inputs {sorted(input_shape)}"
            )
        self.transformer_in_features = [k for k, _ in t_shapes]  # res3 .. res5
        self.transformer_feature_strides = [v.stride for _, v in t_shapes]
        self.transformer_num_feature_levels = len(t_shapes)
        # one projection per encoder level, coarsest first
        self.input_proj = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(v.channels, conv_dim, kernel_size=1), nn.GroupNorm(32, conv_dim)
            )
            for _, v in t_shapes[::-1]
        )
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight, gain=1)
            nn.init.constant_(proj[0].bias, 0)

        self.transformer = MSDeformAttnTransformerEncoderOnly(
            d_model=conv_dim,
            nhead=transformer_nheads,
            num_encoder_layers=transformer_enc_layers,
            dim_feedforward=transformer_dim_feedforward,
            dropout=transformer_dropout,
            num_feature_levels=self.transformer_num_feature_levels,
            enc_n_points=transformer_n_points,
        )
        self.pe_layer = PositionEmbeddingSine(conv_dim // 2, normalize=True)

        self.mask_dim = mask_dim
        self.mask_features = Conv2d(conv_dim, mask_dim, kernel_size=1, stride=1, padding=0)
        weight_init.c2_xavier_fill(self.mask_features)
        self.maskformer_num_feature_levels = 3  # the transformer decoder always uses 3 scales
        self.common_stride = common_stride

        # extra FPN levels from the finest encoder level down to common_stride (res2 only)
        stride = min(self.transformer_feature_strides)
        self.num_fpn_levels = int(round(math.log2(stride) - math.log2(common_stride)))
        lateral_convs, output_convs = [], []
        for idx, in_channels in enumerate(self.feature_channels[: self.num_fpn_levels]):
            lateral, output = make_fpn_convs(in_channels, conv_dim, norm or "")
            self.add_module(f"adapter_{idx + 1}", lateral)
            self.add_module(f"layer_{idx + 1}", output)
            lateral_convs.append(lateral)
            output_convs.append(output)
        self.lateral_convs = lateral_convs[::-1]
        self.output_convs = output_convs[::-1]

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        head = cfg.MODEL.SEM_SEG_HEAD
        if head.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS != cfg.MODEL.MASK_FORMER.NHEADS:
            logging.getLogger(__name__).warning(
                "MSDeformAttnPixelDecoder uses DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS=%d encoder "
                "heads; the original implementation ignored that key and used "
                "MODEL.MASK_FORMER.NHEADS=%d",
                head.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS,
                cfg.MODEL.MASK_FORMER.NHEADS,
            )
        return {
            "input_shape": {k: v for k, v in input_shape.items() if k in head.IN_FEATURES},
            "conv_dim": head.CONVS_DIM,
            "mask_dim": head.MASK_DIM,
            "norm": head.NORM,
            "transformer_dropout": cfg.MODEL.MASK_FORMER.DROPOUT,
            # The original took the heads from MASK_FORMER.NHEADS and ignored this key; every
            # released model has 8 for both, which is this key's default.
            "transformer_nheads": head.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS,
            "transformer_n_points": head.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS,
            "transformer_dim_feedforward": ENCODER_DIM_FEEDFORWARD,
            "transformer_enc_layers": head.TRANSFORMER_ENC_LAYERS,
            "transformer_in_features": head.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES,
            "common_stride": head.COMMON_STRIDE,
        }

    def forward_features(self, features):
        """
        Args:
            features: dict of backbone maps [N, C_f, H_f, W_f] (res2..res5).
        Returns:
            mask_features [N, mask_dim, H/4, W/4]; the encoder output of the coarsest level
            [N, conv_dim, H/32, W/32]; multi-scale features [res5, res4, res3 levels], each
            [N, conv_dim, H_l, W_l]. Under autocast the convs and linears run in the autocast
            dtype; `MSDeformAttn` then runs the op's native 16-bit kernel (value in the autocast
            dtype, sampling locations fp32, fp32 accumulation), so nothing here forces the
            decoder to fp32.
        """
        srcs, pos = [], []
        for idx, name in enumerate(self.transformer_in_features[::-1]):
            x = features[name].float()
            srcs.append(self.input_proj[idx](x))
            pos.append(self.pe_layer(x))
        memory, _, _ = self.transformer(srcs, pos)
        n = memory.shape[0]
        shapes = _level_sizes(srcs)  # Python ints: no read-back from a tensor
        out = [
            z.transpose(1, 2).reshape(n, -1, h, w)
            for z, (h, w) in zip(memory.split([h * w for h, w in shapes], dim=1), shapes)
        ]
        # extra FPN levels, coarse to fine
        for idx, name in enumerate(self.in_features[: self.num_fpn_levels][::-1]):
            out.append(
                fpn_top_down(
                    features[name].float(),
                    out[-1],
                    self.lateral_convs[idx],
                    self.output_convs[idx],
                    "bilinear",
                )
            )
        multi_scale_features = out[: self.maskformer_num_feature_levels]
        return self.mask_features(out[-1]), out[0], multi_scale_features

    def forward(self, features, targets=None):
        raise NotImplementedError(
            "MSDeformAttnPixelDecoder is used through forward_features() by MaskFormerHead; "
            "it has no forward()"
        )
