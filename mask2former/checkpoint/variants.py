"""Which model variant a state_dict belongs to, from its key names (a pure function).

MaskFormer v1 and Mask2Former share the meta-architecture and most of the pixel decoder's names,
so loading one's checkpoint into the other's config would otherwise "succeed" with hundreds of
missing and unexpected keys. `check_same_variant` turns that into one clear error; the
checkpointer (`mask2former.checkpoint.Mask2FormerCheckpointer`) calls it before loading.

Variants are recognised by characteristic keys of the head's predictor (a leading ``module.``
of DDP checkpoints is ignored):

- "Mask2Former": ``sem_seg_head.predictor.query_feat.*`` (the content queries);
- "MaskFormer v1": ``sem_seg_head.predictor.transformer.decoder.*`` (DETR's decoder) with
  ``sem_seg_head.predictor.class_embed.*``;
- "MaskFormer v1 per-pixel baseline+": the same decoder without ``class_embed``;
- "MaskFormer v1 per-pixel baseline": ``sem_seg_head.predictor.weight`` (a 1x1 conv);
- "MaskFormer v1 (this project's earlier parameter names)": ``transformer_ffn_layers`` in the
  predictor without ``query_feat``, as written by this project before it used the v1 names.

Anything else (e.g. ImageNet backbone weights) has no variant and is never refused.
"""

from typing import Iterable, Optional

__all__ = [
    "MASK2FORMER",
    "MASKFORMER_V1",
    "MASKFORMER_V1_PER_PIXEL",
    "MASKFORMER_V1_PER_PIXEL_PLUS",
    "MASKFORMER_V1_OLD_NAMES",
    "CheckpointVariantError",
    "detect_variant",
    "check_same_variant",
]

MASK2FORMER = "Mask2Former"
MASKFORMER_V1 = "MaskFormer v1"
MASKFORMER_V1_PER_PIXEL = "MaskFormer v1 per-pixel baseline"
MASKFORMER_V1_PER_PIXEL_PLUS = "MaskFormer v1 per-pixel baseline+"
MASKFORMER_V1_OLD_NAMES = "MaskFormer v1 (this project's earlier parameter names)"

_PREDICTOR = "sem_seg_head.predictor."

# where to find configs of each variant (for the error message)
_CONFIGS = {
    MASK2FORMER: "configs/<dataset>/<task>/<backbone>.yaml",
    MASKFORMER_V1: "configs/<dataset>/<task>/maskformer_<backbone>.yaml",
    MASKFORMER_V1_PER_PIXEL: "configs/<dataset>/semantic/per_pixel_baseline_<backbone>.yaml",
    MASKFORMER_V1_PER_PIXEL_PLUS: (
        "configs/<dataset>/semantic/per_pixel_baseline_plus_<backbone>.yaml"
    ),
}


class CheckpointVariantError(ValueError):
    """A checkpoint of one model variant is loaded into a model of another."""


def detect_variant(keys: Iterable[str]) -> Optional[str]:
    """The variant of a state_dict from its keys (see module docstring), or None if unknown."""
    predictor = set()
    for k in keys:
        if k.startswith("module."):
            k = k[len("module."):]
        if k.startswith(_PREDICTOR):
            predictor.add(k[len(_PREDICTOR):])
    if not predictor:
        return None

    def has(prefix):
        return any(k.startswith(prefix) for k in predictor)

    if has("query_feat."):
        return MASK2FORMER
    if has("transformer.decoder."):
        return MASKFORMER_V1 if has("class_embed.") else MASKFORMER_V1_PER_PIXEL_PLUS
    if "weight" in predictor:
        return MASKFORMER_V1_PER_PIXEL
    if has("transformer_ffn_layers."):
        return MASKFORMER_V1_OLD_NAMES
    return None


def check_same_variant(model_keys: Iterable[str], checkpoint_keys: Iterable[str]) -> None:
    """Raise `CheckpointVariantError` when both key sets have a known variant and they differ.

    Args:
        model_keys: the model's state_dict keys (what the config builds).
        checkpoint_keys: the checkpoint's state_dict keys.
    """
    checkpoint_keys = list(checkpoint_keys)
    want, have = detect_variant(model_keys), detect_variant(checkpoint_keys)
    if want is None or have is None or want == have:
        return
    example = next(
        (k for k in checkpoint_keys if _PREDICTOR in k), checkpoint_keys[0]
    )
    if have == MASKFORMER_V1_OLD_NAMES:
        advice = (
            "it was saved before this project used the original MaskFormer v1 parameter names; "
            "retrain it, or rename its keys to the v1 names of "
            "mask2former.modeling.transformer_decoder.TransformerPredictor"
        )
    else:
        advice = f"use a {have} config ({_CONFIGS[have]}) with these weights"
    raise CheckpointVariantError(
        f"the checkpoint holds a {have} model (e.g. key '{example}') but the config builds a "
        f"{want} model: {advice}."
    )
