#!/usr/bin/env python
"""Mask2Former-VIS (video instance segmentation) training / evaluation script.

    python train_net_video.py --config-file configs/youtubevis_2019/r50.yaml --num-gpus 8
    python train_net_video.py --config-file ... --eval-only MODEL.WEIGHTS model_final.pkl
    python train_net_video.py --config-file ... --resume

The same `mask2former.engine.Trainer` as train_net.py (solver, AMP, gradient clipping,
checkpointer, reliability hooks, DDP with --num-gpus / --num-machines): with a video
meta-architecture it maps training clips with the clip mapper (INPUT.SAMPLING_FRAME_*), reads
every frame of a test video in order, and scores YouTube-VIS datasets with `YTVISEvaluator`
(results.json + results.zip for the benchmark server when the split has no public annotations).
"""

from mask2former import add_maskformer2_config, add_maskformer2_video_config
from mask2former.engine import Trainer, launch_from_command_line, setup, train_or_evaluate

__all__ = ["Trainer", "setup", "main", "invoke_main", "CONFIG_FNS"]

# the config keys this script adds to Detectron2's (tools/submit_slurm.py reads them too)
CONFIG_FNS = (add_maskformer2_config, add_maskformer2_video_config)


def main(args):
    cfg = setup(args, config_fns=CONFIG_FNS)
    return train_or_evaluate(cfg, args, Trainer)


def invoke_main(argv=None) -> None:
    """Parse the command line and launch `main` in ``--num-gpus`` processes (a missing model or a
    failed download ends with one line)."""
    launch_from_command_line(main, "train_net_video.py", argv)


if __name__ == "__main__":
    invoke_main()
