#!/usr/bin/env python
"""Mask2Former training / evaluation script (Detectron2 style).

    python train_net.py --config-file configs/coco/panoptic/r50.yaml --num-gpus 8
    python train_net.py --config-file ... --eval-only MODEL.WEIGHTS model_final.pkl
    python train_net.py --config-file configs/coco/panoptic/r50.yaml --eval-only \
        MODEL.WEIGHTS mask2former://coco/panoptic/r50   # the released model (MODEL_ZOO.md)
    python train_net.py --config-file ... --resume            # continue from OUTPUT_DIR/last_checkpoint

Distributed: ``--num-gpus N`` starts N processes per machine (NCCL with GPUs; on a CPU-only
machine N gloo processes: set ``MODEL.DEVICE cpu``, or it is set for you when CUDA is missing).
Several machines: ``--num-machines M --machine-rank R --dist-url tcp://HOST:PORT`` on each.

The trainer is `mask2former.engine.Trainer` (Detectron2's DefaultTrainer with the project's
loaders, evaluators, optimizer, checkpointer and reliability hooks); subclass it and pass your
class to `train_or_evaluate` to change a part.
"""

from mask2former import add_maskformer2_config
from mask2former.engine import Trainer, launch_from_command_line, setup, train_or_evaluate

__all__ = ["Trainer", "setup", "main", "invoke_main", "CONFIG_FNS"]

# the config keys this script adds to Detectron2's (tools/submit_slurm.py reads them too)
CONFIG_FNS = (add_maskformer2_config,)


def main(args):
    cfg = setup(args, config_fns=CONFIG_FNS)
    return train_or_evaluate(cfg, args, Trainer)


def invoke_main(argv=None) -> None:
    """Parse the command line and launch `main` in ``--num-gpus`` processes (a missing model or a
    failed download ends with one line)."""
    launch_from_command_line(main, "train_net.py", argv)


if __name__ == "__main__":
    invoke_main()
