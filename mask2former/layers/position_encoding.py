"""Sine position encodings (SPEC §4, §9).

`PositionEmbeddingSine` (2-D) is shared by the pixel decoder and the transformer decoders;
`PositionEmbeddingSine3D` (frames, rows, columns) is the video decoder's, built on the 2-D one.
"""

import math

import torch
from torch import nn

__all__ = ["PositionEmbeddingSine", "PositionEmbeddingSine3D", "sine_features"]


def sine_features(embed: torch.Tensor, num_feats: int, temperature: float) -> torch.Tensor:
    """Sine/cosine features of coordinates.

    Args:
        embed: [...] float32 coordinates.
        num_feats: F, number of output features per coordinate.
        temperature: base of the frequencies.
    Returns:
        [..., F]: feature ``i`` is ``sin`` (even ``i``) or ``cos`` (odd ``i``) of
        ``embed / temperature ** (2 * floor(i / 2) / F)``.
    """
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=embed.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_feats)
    pos = embed[..., None] / dim_t
    return torch.stack((pos[..., 0::2].sin(), pos[..., 1::2].cos()), dim=-1).flatten(-2)


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
            raise ValueError(f"{type(self).__name__}: `scale` is only used with normalize=True")
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else scale

    def _coordinates(self, not_mask: torch.Tensor, dim: int) -> torch.Tensor:
        """Cumulative count of valid positions along ``dim`` (1, 2, ...), normalised to
        (0, scale] by the last value along ``dim`` when ``normalize``; float32."""
        embed = not_mask.cumsum(dim, dtype=torch.float32)
        if self.normalize:
            last = embed.narrow(dim, embed.shape[dim] - 1, 1)
            embed = embed / (last + 1e-6) * self.scale
        return embed

    def spatial_encoding(self, not_mask: torch.Tensor) -> torch.Tensor:
        """[N, H, W] bool (True = valid) → [N, H, W, 2 * num_pos_feats] float32 (y half, x half)."""
        pos_y = sine_features(self._coordinates(not_mask, 1), self.num_pos_feats, self.temperature)
        pos_x = sine_features(self._coordinates(not_mask, 2), self.num_pos_feats, self.temperature)
        return torch.cat((pos_y, pos_x), dim=3)

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
        return self.spatial_encoding(not_mask).permute(0, 3, 1, 2).to(x.dtype)

    def extra_repr(self):
        return (
            f"num_pos_feats={self.num_pos_feats}, temperature={self.temperature}, "
            f"normalize={self.normalize}, scale={self.scale}"
        )


class PositionEmbeddingSine3D(PositionEmbeddingSine):
    """Sine position encoding of a clip (SPEC §9): the 2-D encoding of every frame plus a frame
    encoding.

    The frame coordinate ``1..T`` is normalised like the rows and columns and encoded with
    ``2 * num_pos_feats`` features (frequencies over ``F' = 2 * num_pos_feats``), so that it can be
    added to the concatenated (y, x) encoding: ``pos = cat(pos_y, pos_x) + pos_z``.
    """

    def forward(self, x, mask=None):
        """
        Args:
            x: [B, T, C, H, W] clip features (only shape, device and dtype are used).
            mask: optional [B, T, H, W] bool, True on padded pixels; None means all valid.
        Returns:
            [B, T, 2 * num_pos_feats, H, W] encoding in ``x``'s dtype.
        """
        if x.dim() != 5:
            raise ValueError(
                f"PositionEmbeddingSine3D expects [B, T, C, H, W] features, got {tuple(x.shape)}"
            )
        b, t, _, h, w = x.shape
        if mask is None:
            not_mask = torch.ones((b, t, h, w), device=x.device, dtype=torch.bool)
        else:
            not_mask = ~mask
        spatial = self.spatial_encoding(not_mask.flatten(0, 1)).view(b, t, h, w, -1)
        pos_z = sine_features(
            self._coordinates(not_mask, 1), 2 * self.num_pos_feats, self.temperature
        )
        return (spatial + pos_z).permute(0, 1, 4, 2, 3).to(x.dtype)
