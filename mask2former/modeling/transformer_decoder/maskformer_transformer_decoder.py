"""The transformer predictor of MaskFormer v1 ("TransformerPredictor", SPEC §10).

A DETR encoder-decoder over one feature map (``TRANSFORMER_IN_FEATURE``: a backbone map such as
res5, or the output of ``TransformerEncoderPixelDecoder``'s encoder): the queries start at zero,
``query_embed`` is their position; each of the ``DEC_LAYERS`` decoder layers does
self-attention, cross-attention to the whole map (no masking) and an FFN; every layer's output,
after the decoder's LayerNorm, gives a prediction (the last is the output, the others the
auxiliary outputs, so ``aux_outputs[0]`` comes from the first layer). The map is projected to
``HIDDEN_DIM`` by a 1x1 conv only when its width differs (or ``ENFORCE_INPUT_PROJ``); the mask
embedding is a 3-layer MLP.

Parameter names are those of the released v1 checkpoints (``transformer.decoder.layers.{i}.*``,
``transformer.decoder.norm``, ``query_embed``, ``input_proj``, ``class_embed``,
``mask_embed.layers.{i}``). The Mask2Former repository registered the same module as
"StandardTransformerDecoder"; both names select it.
"""

import torch
from torch import nn

from detectron2.config import configurable

from ...layers.position_encoding import PositionEmbeddingSine
from ...layers.transformer import MLP, DetrDecoder, DetrEncoder, DetrTransformer
from .build import TRANSFORMER_DECODER_REGISTRY
from .mask2former_transformer_decoder import (
    aux_outputs,
    decode_queries,
    make_input_proj,
    mask_logits_from_embeddings,
)

__all__ = ["TransformerPredictor", "StandardTransformerDecoder"]


@TRANSFORMER_DECODER_REGISTRY.register()
class TransformerPredictor(nn.Module):
    """MaskFormer v1 predictor: a DETR transformer over one feature map (see module docstring)."""

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
            in_channels: channels of the input map.
            mask_classification: predict class logits (False: masks only, as in
                ``PerPixelBaselinePlusHead``, whose queries are the classes).
            num_classes: K; hidden_dim, nheads, dropout, dim_feedforward, pre_norm: transformer
                settings; enc_layers: encoder layers over the map (0 in the released models);
                dec_layers: decoder layers (6); deep_supervision: return auxiliary outputs;
                mask_dim: channels of the mask features; enforce_input_project: always project.
        """
        super().__init__()
        self.mask_classification = mask_classification
        self.deep_supervision = deep_supervision
        self.pe_layer = PositionEmbeddingSine(hidden_dim // 2, normalize=True)
        # creation order = state_dict order of the released checkpoints
        self.transformer = DetrTransformer(
            DetrEncoder(enc_layers, hidden_dim, nheads, dim_feedforward, dropout, pre_norm),
            DetrDecoder(dec_layers, hidden_dim, nheads, dim_feedforward, dropout, pre_norm),
        )
        self.num_queries = num_queries
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.input_proj = make_input_proj(in_channels, hidden_dim, enforce_input_project)
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1) if mask_classification else None
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)

    @classmethod
    def from_config(cls, cfg, in_channels, mask_classification):
        mf = cfg.MODEL.MASK_FORMER
        if mf.DEC_LAYERS < 1:
            raise ValueError(f"MODEL.MASK_FORMER.DEC_LAYERS must be >= 1, got {mf.DEC_LAYERS}")
        if mf.TRANSFORMER_IN_FEATURE == "multi_scale_pixel_decoder":
            raise ValueError(
                "the MaskFormer v1 TransformerPredictor reads one feature map; "
                "MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE 'multi_scale_pixel_decoder' needs "
                "TRANSFORMER_DECODER_NAME 'MultiScaleMaskedTransformerDecoder' (Mask2Former)"
            )
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
            x: [N, C, h, w] the input map.
            mask_features: [N, mask_dim, H/4, W/4].
            mask: optional [N, H, W] bool padding mask (True = padding) of the input image
                (the released models use none).
            return_aux: with deep supervision, predict after every layer ("aux_outputs");
                False predicts after the last layer only (inference).
        Returns:
            {"pred_logits": [N, Q, K+1] (with mask classification), "pred_masks":
            [N, Q, H/4, W/4]} and, with deep supervision and ``return_aux``, "aux_outputs":
            DEC_LAYERS - 1 dicts of the same keys, from layers 0 .. DEC_LAYERS - 2.
        """
        key_padding = None
        if mask is not None:
            key_padding = nn.functional.interpolate(mask[None].float(), size=x.shape[-2:])[0]
            key_padding = key_padding.bool()
        pos = DetrTransformer.flatten(self.pe_layer(x, key_padding))  # [hw, N, C]
        src = DetrTransformer.flatten(self.input_proj(x))
        key_padding = key_padding.flatten(1) if key_padding is not None else None
        memory = self.transformer.encoder(src, src_key_padding_mask=key_padding, pos=pos)

        query_pos = self.query_embed.weight.unsqueeze(1).repeat(1, memory.shape[1], 1)
        aux = self.deep_supervision and return_aux
        hs = self.transformer.decoder(
            torch.zeros_like(query_pos), memory, memory_key_padding_mask=key_padding, pos=pos,
            query_pos=query_pos, return_intermediate=aux,
        )  # normalised outputs [Q, N, C]
        classes, masks = [], []
        for h in hs:
            logits, embeddings = decode_queries(h, None, self.class_embed, self.mask_embed)
            classes.append(logits)
            masks.append(mask_logits_from_embeddings(embeddings, mask_features))
        out = {"pred_masks": masks[-1]}
        if self.mask_classification:
            out["pred_logits"] = classes[-1]
        if aux:
            out["aux_outputs"] = aux_outputs(classes if self.mask_classification else None, masks)
        return out


@TRANSFORMER_DECODER_REGISTRY.register()
class StandardTransformerDecoder(TransformerPredictor):
    """The Mask2Former repository's registry name for `TransformerPredictor` (same module, same
    parameter names); kept so that configs naming it build the v1 predictor."""
