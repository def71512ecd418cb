#!/usr/bin/env python
"""Convert Detectron2 / Mask2Former weights (.pkl model-zoo pickles, .pth) to .safetensors.

    python tools/convert_to_safetensors.py model_final_f07440.pkl   # -> ...f07440.safetensors
    python tools/convert_to_safetensors.py output/model_final.pth -o r50.safetensors

Only the model weights are kept (optimizer/scheduler state is dropped). The metadata records
the source file name, its "__author__" and, for Caffe2-style name-matched files,
"matching_heuristics" so that loading the .safetensors file behaves like loading the original.
Then use it with ``MODEL.WEIGHTS path/to/file.safetensors``: loading it cannot execute code.

.pkl files are read with a numpy-only unpickler; a pickle that needs more is refused unless you
trust it and set MASK2FORMER_ALLOW_UNSAFE_PICKLE=1 for this conversion.
"""
import argparse
import hashlib
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mask2former.checkpoint.weights import (  # noqa: E402
    UnsafeCheckpointError,
    load_safetensors_weights,
    load_weights_file,
    save_safetensors_weights,
)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def convert(src: str, dst: str) -> int:
    """Convert ``src`` to ``dst``; returns the number of tensors written."""
    ckpt, fmt = load_weights_file(src)
    weights = ckpt["model"]
    extra = {"source_file": os.path.basename(src), "source_format": fmt,
             "source_sha256": _sha256(src)}
    if ckpt.get("matching_heuristics"):
        extra["matching_heuristics"] = True
    if "iteration" in ckpt:
        extra["iteration"] = int(ckpt["iteration"])
    save_safetensors_weights(weights, dst, author=ckpt.get("__author__", "mask2former"),
                             extra=extra)
    # Read back and compare: a conversion that changed any value must not go unnoticed.
    back = load_safetensors_weights(dst)["model"]
    import numpy as np
    import torch

    if set(back) != set(weights):
        raise RuntimeError(f"{dst}: tensor names differ from {src} after conversion")
    for k, v in weights.items():
        v = torch.as_tensor(np.asarray(v)) if not torch.is_tensor(v) else v
        if not torch.equal(back[k], v.detach().cpu()):
            raise RuntimeError(f"{dst}: tensor {k} differs from {src} after conversion")
    return len(back)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", help=".pkl (Detectron2 model zoo) or .pth/.pt checkpoint")
    parser.add_argument("-o", "--output", help="output .safetensors (default: next to input)")
    parser.add_argument("-f", "--force", action="store_true", help="overwrite the output")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    if not os.path.isfile(args.input):
        parser.error(f"input file not found: {args.input}")
    dst = args.output or os.path.splitext(args.input)[0] + ".safetensors"
    if not dst.endswith(".safetensors"):
        parser.error(f"output must end in .safetensors (MODEL.WEIGHTS uses the suffix): {dst}")
    if os.path.exists(dst) and not args.force:
        parser.error(f"{dst} exists; pass --force to overwrite")
    try:
        n = convert(args.input, dst)
    except UnsafeCheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {dst}: {n} tensors (verified against {args.input})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
