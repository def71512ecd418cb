#!/usr/bin/env python
"""Convert an official ImageNet Swin Transformer checkpoint into a Detectron2 pickle that the
Swin configs load with ``MODEL.WEIGHTS``.

usage, with a checkpoint released by the Swin Transformer authors:
    python tools/convert-pretrained-swin-model-to-d2.py \
        swin_tiny_patch4_window7_224.pth swin_tiny_patch4_window7_224.pkl

Input: a ``torch.save`` file holding ``{"model": state_dict}`` (the official layout:
``patch_embed.*``, ``layers.{i}.blocks.{j}.*``, ``layers.{i}.downsample.*``, ``norm.*``,
``head.*``).
Output: ``{"model": {name: numpy array}, "__author__": "third_party",
"matching_heuristics": True}``, the format of the original project's converted Swin
weights: the names stay unprefixed and Detectron2's name-matching heuristics put them under
``backbone.``.

Dropped, because the segmentation backbone has no such tensors: the classifier ``head.*``, the
final ``norm.*`` (the backbone has its own per-stage output norms ``norm0..norm3``, trained from
scratch, as in the original), and the ``attn_mask`` buffers of the classification model (the
backbone computes the shifted-window masks for each input size).
"""

import argparse
import pickle
import sys

import torch

REQUIRED = ("patch_embed.proj.weight", "layers.0.blocks.0.attn.qkv.weight")


def _is_dropped(name):
    return name.startswith(("head.", "norm.")) or name.endswith(".attn_mask")


def load_swin_state_dict(path):
    """Read the official checkpoint and return its state_dict (name -> tensor)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(ckpt, dict) and isinstance(ckpt.get("model"), dict):
        state = ckpt["model"]
    elif isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict):
        state = ckpt["state_dict"]
    elif isinstance(ckpt, dict) and ckpt and all(torch.is_tensor(v) for v in ckpt.values()):
        state = ckpt
    else:
        raise ValueError(
            f"{path}: expected an official Swin checkpoint {{'model': state_dict}}; "
            f"found top-level keys {sorted(ckpt)[:10] if isinstance(ckpt, dict) else type(ckpt)}"
        )
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise ValueError(
            f"{path}: not a Swin Transformer (v1) state_dict, it lacks {missing}. "
            "Give the .pth file released by the Swin Transformer authors."
        )
    return state


def convert(state):
    """Returns (Detectron2 checkpoint dict, list of dropped names)."""
    model, dropped = {}, []
    for name, tensor in state.items():
        if _is_dropped(name):
            dropped.append(name)
            continue
        model[name] = tensor.detach().cpu().numpy()
    return {"model": model, "__author__": "third_party", "matching_heuristics": True}, dropped


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", help="official Swin checkpoint (.pth)")
    parser.add_argument("output", help="Detectron2 pickle to write (.pkl)")
    args = parser.parse_args(argv)
    if not args.output.endswith(".pkl"):
        parser.error("the output must end with .pkl (Detectron2 reads pickles by extension)")

    checkpoint, dropped = convert(load_swin_state_dict(args.input))
    with open(args.output, "wb") as f:
        pickle.dump(checkpoint, f)
    groups = sorted(
        {"*.attn_mask" if n.endswith(".attn_mask") else n.split(".")[0] + ".*" for n in dropped}
    )
    print(
        f"wrote {len(checkpoint['model'])} tensors to {args.output}; dropped {len(dropped)} "
        f"not used by the segmentation backbone: {', '.join(groups) or 'none'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
