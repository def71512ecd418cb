"""The masked-attention transformer decoder of Mask2Former (SPEC §4)."""

from typing import List

import fvcore.nn.weight_init as weight_init
import torch
import torch.nn.functional as F
from torch import nn

from detectron2.config import configurable
from detectron2.layers import Conv2d

from ...layers.transformer import MLP, CrossAttentionLayer, FFNLayer, SelfAttentionLayer
from .build import TRANSFORMER_DECODER_REGISTRY
from ...layers.position_encoding import PositionEmbeddingSine

__all__ = [
    "MultiScaleMaskedTransformerDecoder",
    "predict_from_queries",
    "decode_queries",
    "mask_logits_from_embeddings",
    "resized_mask_features",
    "attention_mask_from_logits",
    "aux_outputs",
    "make_input_proj",
]


def decode_queries(queries, decoder_norm, class_embed, mask_embed):
    """Class logits and mask embeddings of decoded queries.

    Args:
        queries: [Q, N, C] decoder output (sequence-first).
        decoder_norm: LayerNorm applied first (None: the queries are already normalised);
            class_embed: Linear(C, K+1) or None (then no logits are computed);
            mask_embed: MLP(C → mask_dim).
    Returns:
        class logits [N, Q, K+1] (None without class_embed), mask embeddings [N, Q, mask_dim].
    """
    out = (queries if decoder_norm is None else decoder_norm(queries)).transpose(0, 1)
    logits = class_embed(out) if class_embed is not None else None
    return logits, mask_embed(out)


def mask_logits_from_embeddings(embeddings, mask_features):
    """Mask logits: embeddings [N, Q, D] times per-pixel features [N, D, H, W] → [N, Q, H, W]."""
    return torch.einsum("bqc,bchw->bqhw", embeddings, mask_features)


def predict_from_queries(queries, decoder_norm, class_embed, mask_embed, mask_features):
    """Class logits and mask logits from decoded queries (both transformer decoders use it).

    Args:
        queries: [Q, N, C] decoder output (sequence-first).
        decoder_norm, class_embed, mask_embed: see `decode_queries`;
        mask_features: [N, mask_dim, H, W].
    Returns:
        class logits [N, Q, K+1] (None without class_embed), mask logits [N, Q, H, W].
    """
    logits, embeddings = decode_queries(queries, decoder_norm, class_embed, mask_embed)
    return logits, mask_logits_from_embeddings(embeddings, mask_features)


def make_input_proj(in_channels, hidden_dim, enforce=False):
    """1x1 conv from ``in_channels`` to ``hidden_dim``; identity (an empty Sequential, no
    parameters) when the widths match and ``enforce`` is False."""
    if in_channels != hidden_dim or enforce:
        proj = Conv2d(in_channels, hidden_dim, kernel_size=1)
        weight_init.c2_xavier_fill(proj)
        return proj
    return nn.Sequential()


def aux_outputs(classes, masks):
    """Per-layer predictions except the last, as the list of dicts the criterion expects."""
    if classes is None:
        return [{"pred_masks": m} for m in masks[:-1]]
    return [{"pred_logits": c, "pred_masks": m} for c, m in zip(classes[:-1], masks[:-1])]


def attention_mask_from_logits(mask_logits, size, num_heads):
    """Masked-attention mask for the next decoder layer.

    Args:
        mask_logits: [N, Q, H, W] mask logits of the current prediction, or [N, Q, T, H, W] for
            a clip of T frames (resized bilinearly to ``size``, frame by frame, when they have
            another size).
        size: (h, w) of the feature level the next layer attends to.
        num_heads: attention heads (the mask is the same for every head).
    Returns:
        [N*num_heads, Q, h*w] (clips: [N*num_heads, Q, T*h*w], frame-major) bool, True = blocked
        (sigmoid < 0.5); a query whose row would be fully blocked attends everywhere instead.
        Detached.
    """
    m = mask_logits.detach()
    if tuple(m.shape[-2:]) != tuple(size):
        lead = m.shape[:-2]
        m = F.interpolate(
            m.flatten(0, -3)[:, None], size=tuple(size), mode="bilinear", align_corners=False
        ).view(*lead, *size)
    blocked = m.flatten(2).sigmoid() < 0.5  # [N, Q, (T)hw]
    blocked = blocked & ~blocked.all(-1, keepdim=True)
    return blocked.repeat_interleave(num_heads, dim=0)


def resized_mask_features(mask_features, sizes):
    """``mask_features`` [N, D, H, W] resized bilinearly (align_corners=False) to each of
    ``sizes``, detached: a list of [N, D, h, w] in the order of ``sizes``.

    Bilinear resizing is linear and acts on every channel alike, so the product of mask
    embeddings with resized features equals (up to float rounding) the resized product. The
    decoder's attention masks are computed that way: the product is made at the attended
    level's size (at most 1/8 of the image) instead of at 1/4 and then resized.
    """
    features = mask_features.detach()
    return [F.interpolate(features, size=s, mode="bilinear", align_corners=False) for s in sizes]


@TRANSFORMER_DECODER_REGISTRY.register()
class MultiScaleMaskedTransformerDecoder(nn.Module):
    """Masked-attention decoder over the pixel decoder's 1/32, 1/16 and 1/8 maps (round robin).

    Each of ``dec_layers`` layers does masked cross-attention (to the foreground of the previous
    prediction), self-attention and an FFN; a prediction is made from the learnable queries
    before the first layer and after every layer, and each prediction gives the attention mask
    of the next layer.

    Hooks for subclasses that decode clips of several frames (the video decoder overrides them;
    here every image is a clip of one frame): `clip_shape`, `position_encoding`,
    `group_frames`, `mask_logits`, `finalize_outputs`. Memory sequences are frame-major:
    [T*H*W, B, C] (`memory_sequence`).
    """

    _version = 2

    @configurable
    def __init__(
        self,
        in_channels,
        mask_classification=True,
        *,
        num_classes: int,
        hidden_dim: int,
        num_queries: int,
        nheads: int,
        dim_feedforward: int,
        dec_layers: int,
        pre_norm: bool,
        mask_dim: int,
        enforce_input_project: bool,
        num_feature_levels: int = 3,
    ):
        """
        Args:
            in_channels: channels of the multi-scale features.
            mask_classification: predict class logits (always True for Mask2Former).
            num_classes: K (the class head has K+1 outputs, the last is "no object").
            hidden_dim: transformer width; num_queries: Q; nheads: attention heads.
            dim_feedforward: FFN width; dec_layers: number of decoder layers (the config's
                DEC_LAYERS minus 1); pre_norm: pre-norm residual blocks.
            mask_dim: channels of the mask features; enforce_input_project: always add a 1x1
                conv on the memory even when ``in_channels == hidden_dim``.
            num_feature_levels: number of multi-scale maps (3).
        """
        super().__init__()
        if not mask_classification:
            raise ValueError("MultiScaleMaskedTransformerDecoder only supports mask classification")
        self.mask_classification = mask_classification
        self.pe_layer = PositionEmbeddingSine(hidden_dim // 2, normalize=True)
        self.num_heads = nheads
        self.num_layers = dec_layers
        self.transformer_self_attention_layers = nn.ModuleList(
            SelfAttentionLayer(hidden_dim, nheads, dropout=0.0, normalize_before=pre_norm)
            for _ in range(dec_layers)
        )
        self.transformer_cross_attention_layers = nn.ModuleList(
            CrossAttentionLayer(hidden_dim, nheads, dropout=0.0, normalize_before=pre_norm)
            for _ in range(dec_layers)
        )
        self.transformer_ffn_layers = nn.ModuleList(
            FFNLayer(hidden_dim, dim_feedforward, dropout=0.0, normalize_before=pre_norm)
            for _ in range(dec_layers)
        )
        self.decoder_norm = nn.LayerNorm(hidden_dim)

        self.num_queries = num_queries
        self.query_feat = nn.Embedding(num_queries, hidden_dim)  # content
        self.query_embed = nn.Embedding(num_queries, hidden_dim)  # position
        self.num_feature_levels = num_feature_levels
        self.level_embed = nn.Embedding(num_feature_levels, hidden_dim)
        self.input_proj = nn.ModuleList(
            make_input_proj(in_channels, hidden_dim, enforce_input_project)
            for _ in range(num_feature_levels)
        )

        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)

    @classmethod
    def from_config(cls, cfg, in_channels, mask_classification):
        mf = cfg.MODEL.MASK_FORMER
        if mf.DEC_LAYERS < 1:
            raise ValueError(f"MODEL.MASK_FORMER.DEC_LAYERS must be >= 1, got {mf.DEC_LAYERS}")
        if mf.TRANSFORMER_IN_FEATURE != "multi_scale_pixel_decoder":
            raise ValueError(
                "MultiScaleMaskedTransformerDecoder reads the pixel decoder's multi-scale maps: "
                "set MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE 'multi_scale_pixel_decoder' (got "
                f"{mf.TRANSFORMER_IN_FEATURE!r}). A MaskFormer v1 config (one feature map, e.g. "
                "'res5' or 'transformer_encoder') needs TRANSFORMER_DECODER_NAME "
                "'TransformerPredictor' and, to train as v1, MASK_LOSS_TYPE 'focal' with "
                "TRAIN_NUM_POINTS 0 (see configs/*/*/maskformer_*.yaml)"
            )
        if mf.DROPOUT != 0.0:
            raise ValueError(
                "MultiScaleMaskedTransformerDecoder has no dropout (as released); "
                f"set MODEL.MASK_FORMER.DROPOUT 0.0 (got {mf.DROPOUT})"
            )
        return {
            "in_channels": in_channels,
            "mask_classification": mask_classification,
            "num_classes": cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            "hidden_dim": mf.HIDDEN_DIM,
            "num_queries": mf.NUM_OBJECT_QUERIES,
            "nheads": mf.NHEADS,
            "dim_feedforward": mf.DIM_FEEDFORWARD,
            # DEC_LAYERS counts the prediction from the learnable queries: 10 -> 9 layers.
            "dec_layers": mf.DEC_LAYERS - 1,
            "pre_norm": mf.PRE_NORM,
            "enforce_input_project": mf.ENFORCE_INPUT_PROJ,
            "mask_dim": cfg.MODEL.SEM_SEG_HEAD.MASK_DIM,
        }

    # --- hooks: how images are grouped into clips (one frame per clip here) -------------------
    def clip_shape(self, num_images: int):
        """(B, T): the ``num_images`` maps of a batch form B clips of T frames (here (N, 1))."""
        return num_images, 1

    def position_encoding(self, feat: torch.Tensor, num_clips: int) -> torch.Tensor:
        """Position encoding of one level, [B*T, C, H, W], for maps ``feat`` [B*T, C, H, W]."""
        return self.pe_layer(feat)

    def group_frames(self, maps: torch.Tensor, num_clips: int) -> torch.Tensor:
        """Per-image maps [B*T, D, H, W] in the layout `mask_logits` reads (here unchanged)."""
        return maps

    def mask_logits(self, embeddings: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Mask logits of query embeddings [B, Q, D] with `group_frames` features:
        here [B, Q, H, W]."""
        return mask_logits_from_embeddings(embeddings, features)

    def finalize_outputs(self, out: dict, queries: torch.Tensor) -> dict:
        """The output dict, given the last decoder output ``queries`` [Q, B, C] (unchanged here)."""
        return out

    @staticmethod
    def memory_sequence(maps: torch.Tensor, num_clips: int) -> torch.Tensor:
        """Maps [B*T, C, H, W] (or [B*T, C, H*W]) → frame-major sequence [T*H*W, B, C]."""
        maps = maps.flatten(2)
        _, c, hw = maps.shape
        return maps.reshape(num_clips, -1, c, hw).permute(1, 3, 0, 2).flatten(0, 1)

    def forward(self, x: List[torch.Tensor], mask_features: torch.Tensor, mask=None, *,
                return_aux: bool = True):
        """
        Args:
            x: ``num_feature_levels`` maps [N, C, H_l, W_l], coarsest first (N = B*T images:
                B clips of T frames, frame-major within a clip; see `clip_shape`).
            mask_features: [N, mask_dim, H/4, W/4].
            mask: unused (no padding masks), kept for the head's uniform call.
            return_aux: also return the intermediate predictions. False (inference) skips
                their class logits and full-resolution masks; the attention masks do not
                depend on it.
        Returns:
            {"pred_logits": [B, Q, K+1], "pred_masks": [B, Q, H/4, W/4] (`mask_logits`)} and,
            with ``return_aux``, "aux_outputs": [{"pred_logits", "pred_masks"}] * dec_layers —
            aux_outputs[0] is the prediction from the learnable queries.
        """
        if len(x) != self.num_feature_levels:
            raise ValueError(f"expected {self.num_feature_levels} feature levels, got {len(x)}")
        n, _ = self.clip_shape(mask_features.shape[0])
        src, pos, sizes = [], [], []
        for i, feat in enumerate(x):
            sizes.append(feat.shape[-2:])
            pos.append(self.memory_sequence(self.position_encoding(feat, n), n))  # [THW, B, C]
            memory = self.input_proj[i](feat).flatten(2) + self.level_embed.weight[i][None, :, None]
            src.append(self.memory_sequence(memory, n))
        query_embed = self.query_embed.weight.unsqueeze(1).repeat(1, n, 1)
        output = self.query_feat.weight.unsqueeze(1).repeat(1, n, 1)
        attn_features = [
            self.group_frames(f, n) for f in resized_mask_features(mask_features, sizes)
        ]
        mask_features = self.group_frames(mask_features, n)

        classes, masks = [], []
        attn_mask = None
        # prediction j is made from the learnable queries (j = 0) or after layer j - 1; it
        # gives the attention mask of layer j, which attends to level j % num_feature_levels
        for j in range(self.num_layers + 1):
            if j > 0:
                layer = j - 1
                level = layer % self.num_feature_levels
                output = self.transformer_cross_attention_layers[layer](
                    output, src[level], memory_mask=attn_mask, pos=pos[level], query_pos=query_embed
                )
                output = self.transformer_self_attention_layers[layer](output, query_pos=query_embed)
                output = self.transformer_ffn_layers[layer](output)
            last = j == self.num_layers
            full = return_aux or last
            logits, embeddings = decode_queries(
                output, self.decoder_norm, self.class_embed if full else None, self.mask_embed
            )
            if full:
                classes.append(logits)
                masks.append(self.mask_logits(embeddings, mask_features))
            if not last:
                level = j % self.num_feature_levels
                small = self.mask_logits(embeddings.detach(), attn_features[level])
                attn_mask = attention_mask_from_logits(small, sizes[level], self.num_heads)
        out = {"pred_logits": classes[-1], "pred_masks": masks[-1]}
        if return_aux:
            out["aux_outputs"] = aux_outputs(classes, masks)
        return self.finalize_outputs(out, output)
