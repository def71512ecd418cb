"""Building blocks shared by the transformer decoders and the deformable pixel-decoder encoder.

Every block is a residual sub-layer ``x = norm(x + dropout(f(x)))`` (post-norm, the released
models) or ``x = x + dropout(f(norm(x)))`` (pre-norm). Sequences are sequence-first,
``[L, N, C]``, as `nn.MultiheadAttention` expects by default. Parameter names are those of the
released checkpoints (``self_attn``, ``multihead_attn``, ``linear1``, ``linear2``, ``norm``,
``layers.{i}``).
"""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "get_activation_fn",
    "with_pos_embed",
    "feed_forward_residual",
    "SelfAttentionLayer",
    "CrossAttentionLayer",
    "FFNLayer",
    "MLP",
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

    Used by `FFNLayer` and by the deformable encoder layer, whose parameters are named
    differently in the released checkpoints (``norm2`` instead of ``norm``).
    """
    if normalize_before:
        y = linear2(dropout(activation(linear1(norm(x)))))
        return x + dropout(y)
    y = linear2(dropout(activation(linear1(x))))
    return norm(x + dropout(y))


class _ResidualBlock(nn.Module):
    """Common part of the attention blocks: norm, dropout, pre/post-norm and init.

    Subclasses create their attention module first, then call `_add_residual_parts`, so that
    the state_dict order is that of the released checkpoints (attention, then norm).
    """

    def _add_residual_parts(self, d_model, dropout, normalize_before):
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.normalize_before = normalize_before
        self._reset_parameters()

    def _reset_parameters(self):
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def _residual(self, x, fn):
        if self.normalize_before:
            return x + self.dropout(fn(self.norm(x)))
        return self.norm(x + self.dropout(fn(x)))


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

        def attend(x):
            q = k = with_pos_embed(x, query_pos)
            return self.self_attn(
                q,
                k,
                value=x,
                attn_mask=tgt_mask,
                key_padding_mask=tgt_key_padding_mask,
                need_weights=False,
            )[0]

        return self._residual(tgt, attend)


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
        if (
            memory_mask is not None
            and memory_mask.dtype == torch.bool
            and memory.device.type == "cpu"
        ):
            # torch 2.3's fused CPU attention returns NaN for a query whose keys are all blocked
            # within one of its internal key blocks (seen from S >= 1024 keys) when the mask is
            # boolean or -inf; an additive mask with the finite minimum gives the same result.
            memory_mask = torch.zeros(memory_mask.shape, dtype=memory.dtype).masked_fill(
                memory_mask, torch.finfo(memory.dtype).min
            )

        def attend(x):
            return self.multihead_attn(
                query=with_pos_embed(x, query_pos),
                key=with_pos_embed(memory, pos),
                value=memory,
                attn_mask=memory_mask,
                key_padding_mask=memory_key_padding_mask,
                need_weights=False,
            )[0]

        return self._residual(tgt, attend)


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
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

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
