#!/usr/bin/env python
"""Export the Mask2Former inference network (backbone + sem_seg_head) to ONNX.

usage:
    python tools/export_onnx.py --config-file configs/coco/panoptic/r50.yaml --size 512x512 \\
        --output mask2former_r50.onnx [--check] [--opts MODEL.WEIGHTS model_final.pkl]

Exported, for one fixed input size and batch size:
  * input normalisation (``pixel_mean`` / ``pixel_std``),
  * the backbone, the pixel decoder (multi-scale deformable attention through its "pytorch"
    backend, i.e. ``grid_sample``; the compiled kernels are not ONNX operators) and the
    transformer decoder.
  Graph input ``image``: float32 [B, 3, H, W] in ``cfg.INPUT.FORMAT`` with values 0..255, already
  resized and padded to H x W (multiples of the model's size divisibility).
  Graph outputs: ``pred_logits`` [B, Q, K+1] and ``pred_masks`` [B, Q, H/4, W/4] (mask logits)
  of the last decoder layer.

Not exported (stays in Python): resizing / padding of the input images, the auxiliary outputs
of the intermediate decoder layers (training only), upsampling the mask logits to the image
size and the semantic / panoptic / instance post-processing
(``mask2former.modeling.postprocessing``).

``--check`` runs the exported file with onnxruntime on CPU and prints the largest relative
difference to PyTorch for both outputs.
"""

import argparse
import os
import sys
import warnings

import numpy as np
import torch
from torch import nn

from detectron2.config import get_cfg
from detectron2.modeling import build_model

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mask2former import add_maskformer2_config  # noqa: E402
from mask2former.checkpoint import Mask2FormerCheckpointer  # noqa: E402
from mask2former.layers import MSDeformAttn  # noqa: E402

OUTPUT_NAMES = ("pred_logits", "pred_masks")


class InferenceNetwork(nn.Module):
    """The tensor part of a MaskFormer model's inference: normalise, backbone, head.

    forward(image [B, 3, H, W] float, 0..255)
        -> (pred_logits [B, Q, K+1], pred_masks [B, Q, H/4, W/4])
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.backbone = model.backbone
        self.sem_seg_head = model.sem_seg_head
        self.register_buffer("pixel_mean", model.pixel_mean.detach().clone(), persistent=False)
        self.register_buffer("pixel_std", model.pixel_std.detach().clone(), persistent=False)

    def forward(self, image: torch.Tensor):
        x = (image - self.pixel_mean) / self.pixel_std
        out = self.sem_seg_head(self.backbone(x), return_aux=False)  # no auxiliary predictions
        return out["pred_logits"], out["pred_masks"]


def use_pytorch_deform_attn(module: nn.Module) -> int:
    """Route every MSDeformAttn of ``module`` through the pure-PyTorch op; returns their count."""
    n = 0
    for m in module.modules():
        if isinstance(m, MSDeformAttn):
            m.backend = "pytorch"
            n += 1
    return n


def build_inference_network(cfg) -> InferenceNetwork:
    model = build_model(cfg).eval()
    if cfg.MODEL.WEIGHTS:
        # safe loading (.pth weights_only, .pkl arrays only, safetensors); a tensor whose shape
        # does not fit is an error here, not a silently random-initialised export
        Mask2FormerCheckpointer(model, strict_shapes=True).load(cfg.MODEL.WEIGHTS)
    net = InferenceNetwork(model).eval()
    use_pytorch_deform_attn(net)
    return net


def parse_size(text: str, divisibility: int):
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must look like 512x768 (HxW), got {text!r}") from None
    if divisibility > 1 and (h % divisibility or w % divisibility):
        raise ValueError(
            f"--size {h}x{w}: both sides must be multiples of {divisibility} (the model's "
            "size divisibility); pad the images to such a size before running the ONNX model"
        )
    return h, w


@torch.no_grad()
def export_onnx(
    net: InferenceNetwork, path: str, height: int, width: int, batch_size: int = 1, opset: int = 17
) -> torch.Tensor:
    """Trace ``net`` at [batch_size, 3, height, width] and write ``path``; returns the example
    input used for tracing (random values in 0..255)."""
    g = torch.Generator().manual_seed(0)
    example = torch.rand(batch_size, 3, height, width, generator=g) * 255
    with warnings.catch_warnings():
        # shapes turned into Python numbers are constants of the graph: expected for a
        # fixed-size export, so the tracer's warnings about them are noise here
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            net,
            (example,),
            path,
            input_names=["image"],
            output_names=list(OUTPUT_NAMES),
            opset_version=opset,
            do_constant_folding=True,
        )
    return example


def run_onnxruntime(path: str, image: torch.Tensor):
    """Run the exported file with onnxruntime (CPU); returns {output name: tensor}."""
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    outs = session.run(list(OUTPUT_NAMES), {"image": image.numpy().astype(np.float32)})
    return {k: torch.from_numpy(v) for k, v in zip(OUTPUT_NAMES, outs)}


def max_rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    """max |got - want| / max |want|."""
    return ((got - want).abs().max() / want.abs().max().clamp_min(1e-12)).item()


def setup_cfg(args):
    cfg = get_cfg()
    add_maskformer2_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", *args.opts])
    cfg.freeze()
    return cfg


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--output", required=True, help="ONNX file to write")
    parser.add_argument("--size", default="512x512", help="fixed input size HxW")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--check", action="store_true", help="compare onnxruntime with PyTorch")
    parser.add_argument("--opts", default=[], nargs=argparse.REMAINDER, help="KEY VALUE pairs")
    args = parser.parse_args(argv)

    cfg = setup_cfg(args)
    net = build_inference_network(cfg)
    divisibility = max(cfg.MODEL.MASK_FORMER.SIZE_DIVISIBILITY, net.backbone.size_divisibility)
    height, width = parse_size(args.size, divisibility)
    example = export_onnx(net, args.output, height, width, args.batch_size, args.opset)
    print(f"wrote {args.output} (input image [{args.batch_size}, 3, {height}, {width}])")
    if args.check:
        with torch.no_grad():
            want = dict(zip(OUTPUT_NAMES, net(example)))
        got = run_onnxruntime(args.output, example)
        for name in OUTPUT_NAMES:
            print(
                f"{name}: shape {tuple(got[name].shape)}, onnxruntime vs PyTorch max rel err "
                f"{max_rel_err(got[name], want[name]):.2e}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
