"""Sine position encoding shared by the pixel decoder and the transformer decoders (SPEC §4)."""

import math

import torch
from torch import nn

__all__ = ["PositionEmbeddingSine"]


class PositionEmbeddingSine(nn.Module):
    """The 2-D sine/cosine position encoding of DETR ("Attention is all you need" on images).

    For an all-valid map, row/column coordinates ``1..H`` and ``1..W`` are (when ``normalize``)
    divided by their last value (+1e-6) and multiplied by ``scale``; channel ``i`` of each half
    uses the frequency ``temperature ** (2 * floor(i / 2) / num_pos_feats)``, with sine on even and
    cosine on odd channels. The y half comes first, then the x half.
    """

    def __init__(self, num_pos_feats=64, temperature=10000, normalize=False, scale=None):
        super().__init__()
        if scale is not None and not normalize:
            raise ValueError("PositionEmbeddingSine: `scale` is only used with normalize=True")
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else scale

    def forward(self, x, mask=None):
        """
        Args:
            x: [N, C, H, W] feature map (only its shape, device and dtype are used).
            mask: optional [N, H, W] bool, True on padded pixels; None means all valid.
        Returns:
            [N, 2 * num_pos_feats, H, W] encoding in ``x``'s dtype.
        """
        n, _, h, w = x.shape
        if mask is None:
            not_mask = torch.ones((n, h, w), device=x.device, dtype=torch.bool)
        else:
            not_mask = ~mask
        y_embed = not_mask.cumsum(1, dtype=torch.float32)
        x_embed = not_mask.cumsum(2, dtype=torch.float32)
        if self.normalize:
            eps = 1e-6
            y_embed = y_embed / (y_embed[:, -1:, :] + eps) * self.scale
            x_embed = x_embed / (x_embed[:, :, -1:] + eps) * self.scale

        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=x.device)
        dim_t = self.temperature ** (
            2 * torch.div(dim_t, 2, rounding_mode="floor") / self.num_pos_feats
        )

        pos_x = x_embed[:, :, :, None] / dim_t
        pos_y = y_embed[:, :, :, None] / dim_t
        pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
        pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
        pos = torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)
        return pos.to(x.dtype)

    def extra_repr(self):
        return (
            f"num_pos_feats={self.num_pos_feats}, temperature={self.temperature}, "
            f"normalize={self.normalize}, scale={self.scale}"
        )
