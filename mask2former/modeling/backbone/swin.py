"""Swin Transformer backbone (the dense-prediction variant used by Mask2Former).

Layout of the parameters follows the released checkpoints exactly (see SPEC §4 and
``spec/state_dict/coco_panoptic_swin_{t,l}.json``)::

    patch_embed.{proj,norm}
    absolute_pos_embed                                   (only with APE)
    layers.{i}.blocks.{j}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}
    layers.{i}.blocks.{j}.attn.relative_position_bias_table / relative_position_index
    layers.{i}.downsample.{norm,reduction}               (stages 0..2)
    norm{i}                                              (one LayerNorm per output stage)

Internally the feature maps travel channels-last, ``[B, H, W, C]``; the outputs are NCHW.
Inputs of any size work: the patch embedding pads to a multiple of the patch size, every
block pads to a multiple of the window size (and crops back), patch merging pads odd sizes.
"""

import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as checkpoint
from torch import nn
from torchvision.ops import StochasticDepth

from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from detectron2.modeling.backbone.utils import window_partition, window_unpartition

__all__ = [
    "SwinMlp",
    "WindowAttention",
    "SwinBlock",
    "PatchMerging",
    "PatchEmbed",
    "SwinStage",
    "SwinTransformer",
    "D2SwinTransformer",
    "relative_position_index",
    "shifted_window_mask",
]


def relative_position_index(window_size: int) -> torch.Tensor:
    """
    Index into the relative position bias table for every (query, key) pair of a window.

    Returns:
        int64 tensor [ws*ws, ws*ws] with values in [0, (2*ws-1)**2): the relative offset
        (dy, dx), each shifted to [0, 2*ws-2], encoded as ``dy * (2*ws-1) + dx``.
    """
    ws = window_size
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(
        1
    )
    rel = coords[:, :, None] - coords[:, None, :] + (ws - 1)  # [2, N, N]
    return rel[0] * (2 * ws - 1) + rel[1]


def shifted_window_mask(
    height: int, width: int, window_size: int, shift: int, device=None, dtype=torch.float32
) -> torch.Tensor:
    """
    Additive attention mask of shifted-window attention for a padded map.

    After a cyclic shift by ``shift``, windows on the bottom/right border mix tokens of up to
    3x3 regions that were not adjacent in the image; tokens of different regions must not
    attend to each other. ``height``/``width`` are the padded sizes (multiples of window_size).

    Returns:
        tensor [num_windows, ws*ws, ws*ws]: 0 for allowed pairs, -100 for blocked pairs
        (windows ordered as :func:`window_partition` orders them).
    """
    ws = window_size

    def bands(size):  # 0 | 1 | 2 for [0, size-ws) | [size-ws, size-shift) | [size-shift, size)
        pos = torch.arange(size, device=device)
        return (pos >= size - ws).long() + (pos >= size - shift).long()

    region = (bands(height)[:, None] * 3 + bands(width)[None, :]).view(1, height, width, 1)
    windows, _ = window_partition(region, ws)
    windows = windows.reshape(-1, ws * ws)
    differ = windows[:, None, :] != windows[:, :, None]
    return torch.zeros(differ.shape, device=device, dtype=dtype).masked_fill(differ, -100.0)


class SwinMlp(nn.Module):
    """Two-layer feed-forward block of a Swin block: fc1 -> GELU -> dropout -> fc2 -> dropout."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [..., dim] -> [..., dim]."""
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class WindowAttention(nn.Module):
    """
    Multi-head self-attention inside square windows, with a learned relative position bias.

    Attributes:
        relative_position_bias_table: [(2*ws-1)**2, num_heads] parameter.
        relative_position_index: [ws*ws, ws*ws] int64 persistent buffer (it is in checkpoints).
    """

    def __init__(
        self,
        dim: int,
        window_size: int,
        num_heads: int,
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"Swin: dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        # scaled_dot_product_attention scales by head_dim**-0.5; a custom QK_SCALE rescales q
        # (rather than passing ``scale=``, which the ONNX exporter of torch 2.3 cannot convert)
        self._q_rescale = self.scale * (dim // num_heads) ** 0.5
        self.attn_drop = attn_drop

        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads)
        )
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def relative_position_bias(self) -> torch.Tensor:
        """Returns the bias [num_heads, N, N] added to the attention logits (N = ws*ws)."""
        n = self.window_size**2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, self.num_heads).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Args:
            x: [B*nW, N, C] tokens of each window (N = ws*ws), windows grouped per image.
            mask: None or [nW, N, N] additive mask shared by all images and heads.
        Returns:
            [B*nW, N, C]
        """
        bw, n, c = x.shape
        qkv = (
            self.qkv(x)
            .reshape(bw, n, 3, self.num_heads, c // self.num_heads)
            .permute(2, 0, 3, 1, 4)
        )
        q, k, v = qkv.unbind(0)  # each [B*nW, heads, N, head_dim]
        if self._q_rescale != 1.0:
            q = q * self._q_rescale
        bias = self.relative_position_bias().unsqueeze(0)  # [1, heads, N, N]
        if mask is not None:
            nw = mask.shape[0]
            bias = (bias.unsqueeze(0) + mask[None, :, None]).expand(bw // nw, -1, -1, -1, -1)
            bias = bias.reshape(bw, self.num_heads, n, n)
        x = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=bias.to(q.dtype),
            dropout_p=self.attn_drop if self.training else 0.0,
        )
        x = x.transpose(1, 2).reshape(bw, n, c)
        return self.proj_drop(self.proj(x))


class SwinBlock(nn.Module):
    """
    One Swin Transformer block on a channels-last map:
    ``x = x + drop_path(window_attention(norm1(x)))``, ``x = x + drop_path(mlp(norm2(x)))``.

    The map is padded (right/bottom, with zeros after norm1) to a multiple of the window size
    and cropped back afterwards; with ``shift_size > 0`` it is cyclically shifted before the
    window partition and the caller passes the region mask of :func:`shifted_window_mask`.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int = 7,
        shift_size: int = 0,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
    ):
        super().__init__()
        if not 0 <= shift_size < window_size:
            raise ValueError(
                f"Swin: shift_size {shift_size} must be in [0, window_size={window_size})"
            )
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(
            dim, window_size, num_heads, qkv_bias, qk_scale, attn_drop, drop
        )
        self.drop_path = StochasticDepth(drop_path, "row") if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = SwinMlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Args:
            x: [B, H, W, C]
            attn_mask: [nW, N, N] region mask for the padded map (used only when shifted).
        Returns:
            [B, H, W, C]
        """
        _, h, w, c = x.shape
        ws, shift = self.window_size, self.shift_size
        y = self.norm1(x)
        pad_h, pad_w = (-h) % ws, (-w) % ws
        y = F.pad(y, (0, 0, 0, pad_w, 0, pad_h))
        hp, wp = h + pad_h, w + pad_w
        if shift > 0:
            y = torch.roll(y, shifts=(-shift, -shift), dims=(1, 2))
        windows, _ = window_partition(y, ws)
        windows = self.attn(windows.view(-1, ws * ws, c), attn_mask if shift > 0 else None)
        y = window_unpartition(windows.view(-1, ws, ws, c), ws, (hp, wp), (hp, wp))
        if shift > 0:
            y = torch.roll(y, shifts=(shift, shift), dims=(1, 2))
        y = y[:, :h, :w, :]
        x = x + self.drop_path(y)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """
    Halve the resolution and double the channels: concatenate each 2x2 neighbourhood in
    the order (0,0), (1,0), (0,1), (1,1) (row, col) -> LayerNorm(4C) -> bias-free Linear 4C->2C.
    Odd sizes are zero-padded right/bottom first.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, H, W, C] -> [B, ceil(H/2), ceil(W/2), 2C]."""
        _, h, w, _ = x.shape
        x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat(
            [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1
        )
        return self.reduction(self.norm(x))


class PatchEmbed(nn.Module):
    """Non-overlapping patch embedding: pad to a multiple of patch_size, conv, LayerNorm."""

    def __init__(
        self, patch_size: int = 4, in_chans: int = 3, embed_dim: int = 96, patch_norm: bool = True
    ):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim) if patch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, in_chans, H, W] -> [B, ceil(H/p), ceil(W/p), embed_dim] (channels-last)."""
        p = self.patch_size
        h, w = x.shape[-2:]
        x = F.pad(x, (0, (-w) % p, 0, (-h) % p))
        x = self.proj(x).permute(0, 2, 3, 1)
        return self.norm(x) if self.norm is not None else x


class SwinStage(nn.Module):
    """
    A stage of ``depth`` blocks (every second one shifted by window_size // 2), optionally
    followed by patch merging.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: Sequence[float] = (),
        downsample: bool = False,
        use_checkpoint: bool = False,
    ):
        super().__init__()
        drop_path = list(drop_path) or [0.0] * depth
        if len(drop_path) != depth:
            raise ValueError(f"Swin: got {len(drop_path)} drop-path rates for {depth} blocks")
        self.window_size = window_size
        self.shift_size = window_size // 2
        self.use_checkpoint = use_checkpoint
        self.blocks = nn.ModuleList(
            SwinBlock(
                dim,
                num_heads,
                window_size=window_size,
                shift_size=0 if i % 2 == 0 else self.shift_size,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
                drop=drop,
                attn_drop=attn_drop,
                drop_path=drop_path[i],
            )
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        x: [B, H, W, C] -> (stage output [B, H, W, C], next stage input
        [B, ceil(H/2), ceil(W/2), 2C], or the stage output itself without downsampling).
        """
        ws = self.window_size
        hp, wp = math.ceil(x.shape[1] / ws) * ws, math.ceil(x.shape[2] / ws) * ws
        mask = None
        if self.shift_size > 0 and len(self.blocks) > 1:
            mask = shifted_window_mask(hp, wp, ws, self.shift_size, device=x.device, dtype=x.dtype)
        for blk in self.blocks:
            if self.use_checkpoint and self.training:
                x = checkpoint.checkpoint(blk, x, mask, use_reentrant=False)
            else:
                x = blk(x, mask)
        return x, (self.downsample(x) if self.downsample is not None else x)


class SwinTransformer(nn.Module):
    """
    Hierarchical Swin Transformer returning the normalised output of each stage.

    Stage i has ``embed_dim * 2**i`` channels at stride ``patch_size * 2**i``; its output,
    ``norm{i}`` of the stage's blocks before patch merging, is returned as ``res{i+2}`` (NCHW).
    """

    def __init__(
        self,
        pretrain_img_size: int = 224,
        patch_size: int = 4,
        in_chans: int = 3,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.2,
        ape: bool = False,
        patch_norm: bool = True,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        use_checkpoint: bool = False,
    ):
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(
                f"Swin: DEPTHS {list(depths)} and NUM_HEADS {list(num_heads)} differ in length"
            )
        self.num_layers = len(depths)
        self.out_indices = tuple(out_indices)
        self.num_features = [embed_dim * 2**i for i in range(self.num_layers)]
        self.patch_size = patch_size

        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim, patch_norm)
        if ape:
            grid = pretrain_img_size // patch_size
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, embed_dim, grid, grid))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)
        else:
            self.absolute_pos_embed = None
        self.pos_drop = nn.Dropout(drop_rate)

        # stochastic depth rises linearly from 0 to drop_path_rate over all blocks
        n = sum(depths)
        dpr = [drop_path_rate * i / (n - 1) if n > 1 else 0.0 for i in range(n)]
        starts = [sum(depths[:i]) for i in range(self.num_layers)]
        self.layers = nn.ModuleList(
            SwinStage(
                self.num_features[i],
                depths[i],
                num_heads[i],
                window_size=window_size,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
                drop=drop_rate,
                attn_drop=attn_drop_rate,
                drop_path=dpr[starts[i] : starts[i] + depths[i]],
                downsample=i < self.num_layers - 1,
                use_checkpoint=use_checkpoint,
            )
            for i in range(self.num_layers)
        )
        for i in self.out_indices:
            self.add_module(f"norm{i}", nn.LayerNorm(self.num_features[i]))
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Args:
            x: [B, in_chans, H, W] (any H, W).
        Returns:
            dict "res{i+2}" -> [B, embed_dim * 2**i, ceil(H / (patch_size * 2**i)), ...]
            for i in out_indices (sizes rounded up stage by stage).
        """
        x = self.patch_embed(x)
        if self.absolute_pos_embed is not None:
            pos = F.interpolate(self.absolute_pos_embed, size=x.shape[1:3], mode="bicubic")
            x = x + pos.permute(0, 2, 3, 1)
        x = self.pos_drop(x)
        outs = {}
        for i, stage in enumerate(self.layers):
            out, x = stage(x)
            if i in self.out_indices:
                outs[f"res{i + 2}"] = (
                    getattr(self, f"norm{i}")(out).permute(0, 3, 1, 2).contiguous()
                )
        return outs


@BACKBONE_REGISTRY.register()
class D2SwinTransformer(SwinTransformer, Backbone):
    """Swin Transformer as a Detectron2 backbone, configured by ``cfg.MODEL.SWIN.*``."""

    @configurable
    def __init__(self, *, out_features: List[str], **kwargs):
        super().__init__(**kwargs)
        self._out_features = list(out_features)
        names = [f"res{i + 2}" for i in range(self.num_layers)]
        unknown = [f for f in self._out_features if f not in names]
        if unknown:
            raise ValueError(f"Swin: MODEL.SWIN.OUT_FEATURES has {unknown}; available: {names}")
        self._out_feature_strides = {n: self.patch_size * 2**i for i, n in enumerate(names)}
        self._out_feature_channels = {n: self.num_features[i] for i, n in enumerate(names)}

    @classmethod
    def from_config(cls, cfg, input_shape: ShapeSpec):
        s = cfg.MODEL.SWIN
        return {
            "pretrain_img_size": s.PRETRAIN_IMG_SIZE,
            "patch_size": s.PATCH_SIZE,
            "in_chans": input_shape.channels if input_shape.channels is not None else 3,
            "embed_dim": s.EMBED_DIM,
            "depths": list(s.DEPTHS),
            "num_heads": list(s.NUM_HEADS),
            "window_size": s.WINDOW_SIZE,
            "mlp_ratio": s.MLP_RATIO,
            "qkv_bias": s.QKV_BIAS,
            "qk_scale": s.QK_SCALE,
            "drop_rate": s.DROP_RATE,
            "attn_drop_rate": s.ATTN_DROP_RATE,
            "drop_path_rate": s.DROP_PATH_RATE,
            "ape": s.APE,
            "patch_norm": s.PATCH_NORM,
            "use_checkpoint": s.USE_CHECKPOINT,
            "out_features": list(s.OUT_FEATURES),
        }

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Args:
            x: [B, C, H, W] normalised images.
        Returns:
            dict of the requested ``res*`` maps, NCHW.
        """
        if x.dim() != 4:
            raise ValueError(
                f"D2SwinTransformer takes a [B, C, H, W] tensor, got shape {tuple(x.shape)}"
            )
        outs = super().forward(x)
        return {k: v for k, v in outs.items() if k in self._out_features}

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(
                channels=self._out_feature_channels[name], stride=self._out_feature_strides[name]
            )
            for name in self._out_features
        }

    @property
    def size_divisibility(self) -> int:
        return 32
