"""Building blocks shared by the transformer decoders and the transformer encoders.

Every block is a residual sub-layer ``x = norm(x + dropout(f(x)))`` (post-norm, the released
models) or ``x = x + dropout(f(norm(x)))`` (pre-norm). Sequences are sequence-first,
``[L, N, C]``, as `nn.MultiheadAttention` expects by default.

Each sub-layer is written once, as a function of its modules (`self_attention_residual`,
`cross_attention_residual`, `feed_forward_residual`). Two sets of modules compose them under
the parameter names of the released checkpoints:

- Mask2Former: one module per sub-layer, `SelfAttentionLayer` (``self_attn``, ``norm``),
  `CrossAttentionLayer` (``multihead_attn``, ``norm``), `FFNLayer` (``linear1``, ``linear2``,
  ``norm``);
- MaskFormer v1 (DETR's layout): one module per layer, `DetrEncoderLayer` (``self_attn``,
  ``linear1``, ``linear2``, ``norm1``, ``norm2``) and `DetrDecoderLayer` (``self_attn``,
  ``multihead_attn``, ``linear1``, ``linear2``, ``norm1``..``norm3``), stacked by `DetrEncoder` /
  `DetrDecoder` (``layers.{i}``, ``norm``) inside a `DetrTransformer` (``encoder``, ``decoder``).
"""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "get_activation_fn",
    "with_pos_embed",
    "feed_forward_residual",
    "self_attention_residual",
    "cross_attention_residual",
    "SelfAttentionLayer",
    "CrossAttentionLayer",
    "FFNLayer",
    "MLP",
    "DetrEncoderLayer",
    "DetrDecoderLayer",
    "DetrEncoder",
    "DetrDecoder",
    "DetrTransformer",
]


def get_activation_fn(name: str):
    """Activation function by name ("relu", "gelu", "glu")."""
    if name == "relu":
        return F.relu
    if name == "gelu":
        return F.gelu
    if name == "glu":
        return F.glu
    raise ValueError(f"activation should be relu, gelu or glu, not {name!r}")


def with_pos_embed(x: Tensor, pos: Optional[Tensor]) -> Tensor:
    return x if pos is None else x + pos


def feed_forward_residual(x, linear1, linear2, norm, dropout, activation, normalize_before=False):
    """The residual feed-forward sub-layer ``norm(x + dropout(linear2(dropout(act(linear1(x))))))``.

    Used by `FFNLayer`, by the deformable encoder layer and by the DETR layers of MaskFormer v1,
    whose parameters are named differently in the released checkpoints (``norm2`` / ``norm3``
    instead of ``norm``).
    """
    if normalize_before:
        y = linear2(dropout(activation(linear1(norm(x)))))
        return x + dropout(y)
    y = linear2(dropout(activation(linear1(x))))
    return norm(x + dropout(y))


def _residual(x, fn, norm, dropout, normalize_before):
    """``norm(x + dropout(fn(x)))`` (post-norm) or ``x + dropout(fn(norm(x)))`` (pre-norm)."""
    if normalize_before:
        return x + dropout(fn(norm(x)))
    return norm(x + dropout(fn(x)))


def self_attention_residual(
    x,
    attn: nn.MultiheadAttention,
    norm,
    dropout,
    *,
    query_pos=None,
    attn_mask=None,
    key_padding_mask=None,
    normalize_before=False,
):
    """The residual self-attention sub-layer; ``query_pos`` is added to queries and keys.

    Used by `SelfAttentionLayer` and by the DETR layers of MaskFormer v1 (``norm1``).

    Args:
        x: [L, N, C]; query_pos: [L, N, C] or None.
        attn_mask: [L, L] or [N*heads, L, L] (True = blocked); key_padding_mask: [N, L].
    Returns:
        [L, N, C]
    """

    def attend(y):
        q = k = with_pos_embed(y, query_pos)
        return attn(
            q, k, value=y, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
            need_weights=False,
        )[0]

    return _residual(x, attend, norm, dropout, normalize_before)


def cross_attention_residual(
    x,
    memory,
    attn: nn.MultiheadAttention,
    norm,
    dropout,
    *,
    pos=None,
    query_pos=None,
    memory_mask=None,
    memory_key_padding_mask=None,
    normalize_before=False,
):
    """The residual cross-attention sub-layer from queries to a memory (``pos`` on keys only).

    Used by `CrossAttentionLayer` and by the DETR decoder layer of MaskFormer v1 (``norm2``).

    Args:
        x: [Q, N, C] queries; memory: [S, N, C]; pos: [S, N, C]; query_pos: [Q, N, C].
        memory_mask: [N*heads, Q, S] bool (True = blocked) or None;
        memory_key_padding_mask: [N, S] bool (True = padding) or None.
    Returns:
        [Q, N, C]
    """
    if memory_mask is not None and memory_mask.dtype == torch.bool and memory.device.type == "cpu":
        # torch 2.3's fused CPU attention returns NaN for a query whose keys are all blocked
        # within one of its internal key blocks (seen from S >= 1024 keys) when the mask is
        # boolean or -inf; an additive mask with the finite minimum gives the same result.
        memory_mask = torch.zeros(memory_mask.shape, dtype=memory.dtype).masked_fill(
            memory_mask, torch.finfo(memory.dtype).min
        )

    def attend(y):
        return attn(
            query=with_pos_embed(y, query_pos),
            key=with_pos_embed(memory, pos),
            value=memory,
            attn_mask=memory_mask,
            key_padding_mask=memory_key_padding_mask,
            need_weights=False,
        )[0]

    return _residual(x, attend, norm, dropout, normalize_before)


def _xavier_init_(module: nn.Module):
    for p in module.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)


class _ResidualBlock(nn.Module):
    """Common part of the attention blocks: norm, dropout, pre/post-norm and init.

    Subclasses create their attention module first, then call `_add_residual_parts`, so that
    the state_dict order is that of the released checkpoints (attention, then norm).
    """

    def _add_residual_parts(self, d_model, dropout, normalize_before):
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.normalize_before = normalize_before
        _xavier_init_(self)


class SelfAttentionLayer(_ResidualBlock):
    """Residual self-attention over queries; ``query_pos`` is added to queries and keys."""

    def __init__(self, d_model, nhead, dropout=0.0, activation="relu", normalize_before=False):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self._add_residual_parts(d_model, dropout, normalize_before)

    def forward(self, tgt, tgt_mask=None, tgt_key_padding_mask=None, query_pos=None):
        """
        Args:
            tgt: [Q, N, C]; query_pos: [Q, N, C] or None.
            tgt_mask: [Q, Q] or [N*heads, Q, Q] (True = blocked); tgt_key_padding_mask: [N, Q].
        Returns:
            [Q, N, C]
        """
        return self_attention_residual(
            tgt,
            self.self_attn,
            self.norm,
            self.dropout,
            query_pos=query_pos,
            attn_mask=tgt_mask,
            key_padding_mask=tgt_key_padding_mask,
            normalize_before=self.normalize_before,
        )


class CrossAttentionLayer(_ResidualBlock):
    """Residual cross-attention from queries to a memory (``pos`` added to keys only)."""

    def __init__(self, d_model, nhead, dropout=0.0, activation="relu", normalize_before=False):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self._add_residual_parts(d_model, dropout, normalize_before)

    def forward(
        self, tgt, memory, memory_mask=None, memory_key_padding_mask=None, pos=None, query_pos=None
    ):
        """
        Args:
            tgt: [Q, N, C] queries; memory: [S, N, C]; pos: [S, N, C]; query_pos: [Q, N, C].
            memory_mask: [N*heads, Q, S] bool (True = blocked) or None.
        Returns:
            [Q, N, C]
        """
        return cross_attention_residual(
            tgt,
            memory,
            self.multihead_attn,
            self.norm,
            self.dropout,
            pos=pos,
            query_pos=query_pos,
            memory_mask=memory_mask,
            memory_key_padding_mask=memory_key_padding_mask,
            normalize_before=self.normalize_before,
        )


class FFNLayer(nn.Module):
    """Residual feed-forward block: Linear(d, dim_ff) → act → Linear(dim_ff, d)."""

    def __init__(
        self, d_model, dim_feedforward=2048, dropout=0.0, activation="relu", normalize_before=False
    ):
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.activation = get_activation_fn(activation)
        self.normalize_before = normalize_before
        _xavier_init_(self)

    def forward(self, tgt):
        """[L, N, C] → [L, N, C]"""
        return feed_forward_residual(
            tgt,
            self.linear1,
            self.linear2,
            self.norm,
            self.dropout,
            self.activation,
            self.normalize_before,
        )


class MLP(nn.Module):
    """A multi-layer perceptron with ReLU between layers (none after the last)."""

    def __init__(self, input_dim, hidden_dim, output_dim, num_layers):
        super().__init__()
        self.num_layers = num_layers
        dims_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims_in, dims_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[..., input_dim] → [..., output_dim]"""
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < self.num_layers - 1:
                x = F.relu(x)
        return x


# ---- MaskFormer v1: the same sub-layers in DETR's module layout --------------------------------


class DetrEncoderLayer(nn.Module):
    """DETR encoder layer: self-attention (``pos`` on queries and keys), then FFN.

    Parameter names of the MaskFormer v1 checkpoints: ``self_attn``, ``linear1``, ``linear2``,
    ``norm1`` (attention), ``norm2`` (FFN).
    """

    def __init__(
        self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
        normalize_before=False,
    ):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.activation = get_activation_fn(activation)
        self.normalize_before = normalize_before

    def forward(self, src, src_key_padding_mask=None, pos=None):
        """[S, N, C] → [S, N, C]; ``pos`` [S, N, C]; ``src_key_padding_mask`` [N, S] or None."""
        src = self_attention_residual(
            src, self.self_attn, self.norm1, self.dropout1, query_pos=pos,
            key_padding_mask=src_key_padding_mask, normalize_before=self.normalize_before,
        )
        return feed_forward_residual(
            src, self.linear1, self.linear2, self.norm2, self.dropout2, self.activation,
            self.normalize_before,
        )


class DetrDecoderLayer(nn.Module):
    """DETR decoder layer: self-attention, cross-attention to the memory, then FFN.

    Parameter names of the MaskFormer v1 checkpoints: ``self_attn``, ``multihead_attn``,
    ``linear1``, ``linear2``, ``norm1`` (self-attention), ``norm2`` (cross-attention), ``norm3``
    (FFN).
    """

    def __init__(
        self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
        normalize_before=False,
    ):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.activation = get_activation_fn(activation)
        self.normalize_before = normalize_before

    def forward(self, tgt, memory, memory_key_padding_mask=None, pos=None, query_pos=None):
        """
        Args:
            tgt: [Q, N, C] queries; memory: [S, N, C]; pos: [S, N, C] (keys of the
            cross-attention); query_pos: [Q, N, C] (queries and self-attention keys);
            memory_key_padding_mask: [N, S] bool (True = padding) or None.
        Returns:
            [Q, N, C]
        """
        pre = self.normalize_before
        tgt = self_attention_residual(
            tgt, self.self_attn, self.norm1, self.dropout1, query_pos=query_pos,
            normalize_before=pre,
        )
        tgt = cross_attention_residual(
            tgt, memory, self.multihead_attn, self.norm2, self.dropout2, pos=pos,
            query_pos=query_pos, memory_key_padding_mask=memory_key_padding_mask,
            normalize_before=pre,
        )
        return feed_forward_residual(
            tgt, self.linear1, self.linear2, self.norm3, self.dropout3, self.activation, pre
        )


class DetrEncoder(nn.Module):
    """A stack of `DetrEncoderLayer` (``layers.{i}``) with a final LayerNorm (``norm``) only for
    pre-norm layers, as in DETR."""

    def __init__(self, num_layers, d_model, nhead, dim_feedforward, dropout, normalize_before):
        super().__init__()
        self.layers = nn.ModuleList(
            DetrEncoderLayer(d_model, nhead, dim_feedforward, dropout,
                             normalize_before=normalize_before)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model) if normalize_before else None
        _xavier_init_(self)

    def forward(self, src, src_key_padding_mask=None, pos=None):
        """[S, N, C] → [S, N, C] (see `DetrEncoderLayer`)."""
        for layer in self.layers:
            src = layer(src, src_key_padding_mask=src_key_padding_mask, pos=pos)
        return self.norm(src) if self.norm is not None else src


class DetrDecoder(nn.Module):
    """A stack of `DetrDecoderLayer` (``layers.{i}``) and the LayerNorm (``norm``) that DETR
    applies to every output it returns."""

    def __init__(self, num_layers, d_model, nhead, dim_feedforward, dropout, normalize_before):
        super().__init__()
        self.layers = nn.ModuleList(
            DetrDecoderLayer(d_model, nhead, dim_feedforward, dropout,
                             normalize_before=normalize_before)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        _xavier_init_(self)

    def forward(self, tgt, memory, memory_key_padding_mask=None, pos=None, query_pos=None,
                return_intermediate=False):
        """
        Args: see `DetrDecoderLayer`; return_intermediate: return every layer's output.
        Returns:
            list of normalised outputs [Q, N, C]: one per layer with ``return_intermediate``,
            otherwise only the last layer's.
        """
        outputs = []
        for layer in self.layers:
            tgt = layer(tgt, memory, memory_key_padding_mask=memory_key_padding_mask, pos=pos,
                        query_pos=query_pos)
            if return_intermediate:
                outputs.append(self.norm(tgt))
        return outputs if return_intermediate else [self.norm(tgt)]


class DetrTransformer(nn.Module):
    """DETR's container: ``encoder`` (a `DetrEncoder`) and optionally ``decoder``.

    MaskFormer v1 uses it as ``predictor.transformer`` (encoder of ``ENC_LAYERS`` layers, 0 in
    the released models, and the decoder) and as ``pixel_decoder.transformer`` of
    ``TransformerEncoderPixelDecoder`` (encoder only).
    """

    def __init__(self, encoder: DetrEncoder, decoder: Optional[DetrDecoder] = None):
        super().__init__()
        self.encoder = encoder
        if decoder is not None:
            self.decoder = decoder

    @staticmethod
    def flatten(x):
        """[N, C, H, W] → [H*W, N, C] (sequence-first)."""
        return x.flatten(2).permute(2, 0, 1)
