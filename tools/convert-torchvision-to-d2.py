#!/usr/bin/env python
"""Convert a torchvision ResNet checkpoint into a Detectron2 pickle for ``MODEL.WEIGHTS``.

    python tools/convert-torchvision-to-d2.py resnet50-0676ba61.pth R-50.pkl
    python tools/convert-torchvision-to-d2.py resnet101-63fe2227.pth R-101.pkl

The input is a torchvision ``state_dict`` (or a dict holding one under "state_dict"/"model").
The output is ``{"model": {name: numpy array}, "__author__": "torchvision",
"matching_heuristics": True}`` with Detectron2 ResNet names (stem.conv1, res2..res5,
convN.norm, shortcut). The classifier (fc.*) and BatchNorm's ``num_batches_tracked`` are
dropped. Use it with configs whose RESNETS.STRIDE_IN_1X1 is False (torchvision-style), as
all configs here.
"""

import argparse
import pickle
import re
import sys

import torch

__all__ = ["convert_torchvision_resnet"]

_RULES = [
    (re.compile(r"^layer(\d)\."), lambda m: f"res{int(m.group(1)) + 1}."),
    (re.compile(r"\.bn(\d)\."), lambda m: f".conv{m.group(1)}.norm."),
    (re.compile(r"\.downsample\.0\."), lambda m: ".shortcut."),
    (re.compile(r"\.downsample\.1\."), lambda m: ".shortcut.norm."),
]


def _rename(key: str) -> str:
    if not key.startswith("layer"):
        # stem: conv1.weight -> stem.conv1.weight, bn1.* -> stem.conv1.norm.*
        key = "stem." + key.replace("bn1.", "conv1.norm.")
        return key
    for pattern, repl in _RULES:
        key = pattern.sub(repl, key)
    return key


def convert_torchvision_resnet(state_dict):
    """torchvision ResNet state_dict → {Detectron2 name: numpy array} (fc and counters dropped)."""
    out = {}
    for key, value in state_dict.items():
        if key.startswith("fc.") or key.endswith("num_batches_tracked"):
            continue
        if not (key.startswith(("conv1.", "bn1.", "layer"))):
            raise ValueError(f"unexpected key {key!r}: is this a torchvision ResNet state_dict?")
        out[_rename(key)] = value.detach().cpu().numpy()
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", help="torchvision ResNet checkpoint (.pth)")
    parser.add_argument("output", help="Detectron2 pickle to write (.pkl)")
    args = parser.parse_args(argv)
    obj = torch.load(args.input, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, dict) and wrapper in obj and isinstance(obj[wrapper], dict):
            obj = obj[wrapper]
    model = convert_torchvision_resnet(obj)
    with open(args.output, "wb") as f:
        pickle.dump({"model": model, "__author__": "torchvision", "matching_heuristics": True}, f)
    print(f"wrote {len(model)} tensors to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
