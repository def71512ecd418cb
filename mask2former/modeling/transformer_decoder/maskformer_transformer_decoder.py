"""The transformer decoder of MaskFormer v1 ("StandardTransformerDecoder").

A DETR-style encoder-decoder over a single map (by default res5, 1/32): the queries start at
zero, every decoder layer does self-attention, cross-attention to the whole map (no masking)
and an FFN, and every layer's output gives a prediction (the last is the output, the others are
auxiliary outputs). It reuses the blocks of the Mask2Former decoder; its parameter names follow
this project (``transformer_*_layers``), not the DETR names of the MaskFormer v1 checkpoints.
"""

import torch
from torch import nn

from detectron2.config import configurable

from ...layers.transformer import MLP, CrossAttentionLayer, FFNLayer, SelfAttentionLayer
from .build import TRANSFORMER_DECODER_REGISTRY
from .mask2former_transformer_decoder import aux_outputs, make_input_proj, predict_from_queries
from ...layers.position_encoding import PositionEmbeddingSine

__all__ = ["StandardTransformerDecoder"]


@TRANSFORMER_DECODER_REGISTRY.register()
class StandardTransformerDecoder(nn.Module):
    """MaskFormer v1 decoder: ``dec_layers`` unmasked layers over one feature map."""

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
        dropout: float,
        dim_feedforward: int,
        enc_layers: int,
        dec_layers: int,
        pre_norm: bool,
        deep_supervision: bool,
        mask_dim: int,
        enforce_input_project: bool,
    ):
        """
        Args:
            in_channels: channels of the input map; num_classes: K; hidden_dim, nheads,
            dropout, dim_feedforward, pre_norm: transformer settings; enc_layers: transformer
            encoder layers over the map (0 in the released configs); dec_layers: decoder layers
            (MaskFormer v1 counts layers, 6); deep_supervision: return auxiliary outputs;
            mask_dim: channels of the mask features; enforce_input_project: always project.
        """
        super().__init__()
        self.mask_classification = mask_classification
        self.deep_supervision = deep_supervision
        self.num_heads = nheads
        self.pe_layer = PositionEmbeddingSine(hidden_dim // 2, normalize=True)
        self.input_proj = make_input_proj(in_channels, hidden_dim, enforce_input_project)

        def block(cls, *args):
            return cls(hidden_dim, *args, dropout=dropout, normalize_before=pre_norm)

        self.encoder_self_attention_layers = nn.ModuleList(
            block(SelfAttentionLayer, nheads) for _ in range(enc_layers)
        )
        self.encoder_ffn_layers = nn.ModuleList(
            block(FFNLayer, dim_feedforward) for _ in range(enc_layers)
        )
        self.encoder_norm = nn.LayerNorm(hidden_dim) if (pre_norm and enc_layers > 0) else None
        self.transformer_self_attention_layers = nn.ModuleList(
            block(SelfAttentionLayer, nheads) for _ in range(dec_layers)
        )
        self.transformer_cross_attention_layers = nn.ModuleList(
            block(CrossAttentionLayer, nheads) for _ in range(dec_layers)
        )
        self.transformer_ffn_layers = nn.ModuleList(
            block(FFNLayer, dim_feedforward) for _ in range(dec_layers)
        )
        self.decoder_norm = nn.LayerNorm(hidden_dim)

        self.num_queries = num_queries
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1) if mask_classification else None
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)

    @classmethod
    def from_config(cls, cfg, in_channels, mask_classification):
        mf = cfg.MODEL.MASK_FORMER
        if mf.DEC_LAYERS < 1:
            raise ValueError(f"MODEL.MASK_FORMER.DEC_LAYERS must be >= 1, got {mf.DEC_LAYERS}")
        return {
            "in_channels": in_channels,
            "mask_classification": mask_classification,
            "num_classes": cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            "hidden_dim": mf.HIDDEN_DIM,
            "num_queries": mf.NUM_OBJECT_QUERIES,
            "nheads": mf.NHEADS,
            "dropout": mf.DROPOUT,
            "dim_feedforward": mf.DIM_FEEDFORWARD,
            "enc_layers": mf.ENC_LAYERS,
            "dec_layers": mf.DEC_LAYERS,
            "pre_norm": mf.PRE_NORM,
            "deep_supervision": mf.DEEP_SUPERVISION,
            "enforce_input_project": mf.ENFORCE_INPUT_PROJ,
            "mask_dim": cfg.MODEL.SEM_SEG_HEAD.MASK_DIM,
        }

    def forward(self, x, mask_features, mask=None, *, return_aux: bool = True):
        """
        Args:
            x: [N, C, h, w] the transformer's input map.
            mask_features: [N, mask_dim, H/4, W/4].
            mask: optional [N, H, W] bool padding mask (True = padding) of the input image.
            return_aux: with deep supervision, predict after every layer ("aux_outputs");
                False predicts after the last layer only (inference).
        Returns:
            {"pred_logits": [N, Q, K+1], "pred_masks": [N, Q, H/4, W/4]} and, with deep
            supervision and ``return_aux``, "aux_outputs": [...]
        """
        key_padding = None
        if mask is not None:
            key_padding = nn.functional.interpolate(mask[None].float(), size=x.shape[-2:])[0].bool()
        pos = self.pe_layer(x, key_padding).flatten(2).permute(2, 0, 1)  # [hw, N, C]
        memory = self.input_proj(x).flatten(2).permute(2, 0, 1)
        key_padding = key_padding.flatten(1) if key_padding is not None else None
        for attn, ffn in zip(self.encoder_self_attention_layers, self.encoder_ffn_layers):
            memory = ffn(attn(memory, tgt_key_padding_mask=key_padding, query_pos=pos))
        if self.encoder_norm is not None:
            memory = self.encoder_norm(memory)

        n = memory.shape[1]
        aux = self.deep_supervision
        query_pos = self.query_embed.weight.unsqueeze(1).repeat(1, n, 1)
        output = torch.zeros_like(query_pos)
        classes, masks = [], []
        for i in range(len(self.transformer_ffn_layers)):
            output = self.transformer_self_attention_layers[i](output, query_pos=query_pos)
            output = self.transformer_cross_attention_layers[i](
                output, memory, memory_key_padding_mask=key_padding, pos=pos, query_pos=query_pos
            )
            output = self.transformer_ffn_layers[i](output)
            if (aux and return_aux) or i == len(self.transformer_ffn_layers) - 1:
                logits, mask_logits = predict_from_queries(
                    output, self.decoder_norm, self.class_embed, self.mask_embed, mask_features
                )
                classes.append(logits)
                masks.append(mask_logits)
        out = {"pred_logits": classes[-1], "pred_masks": masks[-1]}
        if aux and return_aux:
            out["aux_outputs"] = aux_outputs(classes if self.mask_classification else None, masks)
        return out
