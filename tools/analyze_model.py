#!/usr/bin/env python
"""Parameters, FLOPs and structure of a Mask2Former model (fvcore), for any config.

    python tools/analyze_model.py --config-file configs/coco/panoptic/r50.yaml --tasks parameter
    python tools/analyze_model.py --config-file configs/coco/panoptic/swin_l.yaml \
        --tasks parameter flop --input-size 800 1216 MODEL.DEVICE cpu

Arguments follow Detectron2's tools/analyze_model.py (``--config-file``, ``--tasks``, trailing
config options). FLOPs are counted by fvcore on ``--num-inputs`` random images of
``--input-size`` (no dataset needed; the paper averages real validation images, so its numbers
differ). fvcore counts one fused multiply-add as one flop. Rules are added for attention
(``scaled_dot_product_attention``: QK^T and AV products) and deformable-attention sampling
(compiled op or ``grid_sample``: 4 multiply-adds per bilinear sample and channel, plus the
attention weighting); other uncounted ops (elementwise) are listed.
"""

import argparse
import logging
import sys
from collections import Counter

import torch
from fvcore.nn import parameter_count, parameter_count_table
from fvcore.nn.jit_handles import get_shape

from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.utils.analysis import FlopCountAnalysis
from detectron2.utils.logger import setup_logger

from mask2former import add_maskformer2_config

logger = logging.getLogger("mask2former.analyze_model")


def setup_cfg(args):
    cfg = get_cfg()
    add_maskformer2_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    if not torch.cuda.is_available() and cfg.MODEL.DEVICE.startswith("cuda"):
        cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    return cfg


def random_inputs(cfg, size, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    h, w = size
    return [
        [
            {
                "image": torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8).float(),
                "height": h,
                "width": w,
            }
        ]
        for _ in range(n)
    ]


def count_parameters(model, max_depth):
    total = parameter_count(model)[""]
    print(parameter_count_table(model, max_depth=max_depth))
    print(f"Total parameters: {total} ({total / 1e6:.1f} M)")
    return total


def sdpa_flop_jit(inputs, outputs):
    """scaled_dot_product_attention: q [.., L, E], k [.., S, E], v [.., S, Ev]."""
    q, k, v = (get_shape(x) for x in inputs[:3])
    batch = 1
    for d in q[:-2]:
        batch *= d
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def ms_deform_attn_flop_jit(inputs, outputs):
    """Deformable sampling: value [N, S, M, D], locations [N, Lq, M, L, P, 2]."""
    n, _, m, d = get_shape(inputs[0])
    _, lq, _, levels, points, _ = get_shape(inputs[3])
    return n * lq * m * levels * points * d * 5


def grid_sample_flop_jit(inputs, outputs):
    """Bilinear grid_sample: 4 multiply-adds per output element."""
    numel = 1
    for d in get_shape(outputs[0]):
        numel *= d
    return 4 * numel


FLOP_HANDLES = {
    "aten::scaled_dot_product_attention": sdpa_flop_jit,
    "aten::grid_sampler": grid_sample_flop_jit,
    "aten::grid_sampler_2d": grid_sample_flop_jit,
    "mask2former::ms_deform_attn_forward": ms_deform_attn_flop_jit,
}


def count_flops(model, inputs):
    model.eval()
    totals, skipped = [], Counter()
    with torch.no_grad():
        for batch in inputs:
            analysis = FlopCountAnalysis(model, batch).set_op_handle(**FLOP_HANDLES)
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            totals.append(analysis.total())
            skipped.update(analysis.unsupported_ops())
    mean = sum(totals) / len(totals)
    print(
        f"FLOPs (fvcore, multiply-adds) per image: {mean / 1e9:.2f} G "
        f"(mean of {len(totals)} input(s))"
    )
    if skipped:
        print(
            "Ops without a flop rule (not counted): "
            + ", ".join(f"{k} x{v}" for k, v in skipped.most_common())
        )
    return mean


def main(argv=None):
    parser = argparse.ArgumentParser(description="Analyze a Mask2Former model (fvcore).")
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument(
        "--tasks", choices=["flop", "parameter", "structure"], nargs="+", default=["parameter"]
    )
    parser.add_argument(
        "-n", "--num-inputs", type=int, default=1, help="random images to average FLOPs over"
    )
    parser.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=None,
        help="image size for FLOPs (default: INPUT.MIN_SIZE_TEST squared)",
    )
    parser.add_argument("--max-depth", type=int, default=3, help="depth of the parameter table")
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, default=[], help="config options as KEY VALUE pairs"
    )
    args = parser.parse_args(argv)
    setup_logger(name="fvcore")
    setup_logger(name="mask2former")
    cfg = setup_cfg(args)
    model = build_model(cfg)
    results = {}
    if "parameter" in args.tasks:
        results["parameter"] = count_parameters(model, args.max_depth)
    if "structure" in args.tasks:
        print(str(model))
    if "flop" in args.tasks:
        size = args.input_size or (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST)
        results["flop"] = count_flops(model, random_inputs(cfg, size, args.num_inputs))
    return results


if __name__ == "__main__":
    main()
    sys.exit(0)
