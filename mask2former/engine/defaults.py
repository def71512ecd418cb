"""What the training scripts share: building the config from the command line, and running
training or evaluation (``train_net.py``, ``train_net_video.py``)."""

import logging
from typing import Callable, Sequence

import torch

from detectron2.config import get_cfg
from detectron2.engine import default_argument_parser, default_setup, launch
from detectron2.evaluation import verify_results
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from ..checkpoint import Mask2FormerCheckpointer
from ..config import add_maskformer2_config, merge_config_checked
from ..model_zoo.checks import check_trained_weights
from ..utils.allocator import cpu_caching_allocator
from .hooks import TrainingPreempted

__all__ = ["setup", "train_or_evaluate", "launch_from_command_line"]

logger = logging.getLogger(__name__)


def setup(args, config_fns: Sequence[Callable] = (add_maskformer2_config,)):
    """The frozen config of a run: Detectron2's defaults, the keys added by ``config_fns``, then
    ``args.config_file`` and ``args.opts`` (with errors that name a misspelt key), MODEL.DEVICE
    set to cpu when CUDA is missing; then Detectron2's ``default_setup`` (output directory, logs,
    seed) and the project's logger."""
    cfg = get_cfg()
    for add_config in config_fns:
        add_config(cfg)
    merge_config_checked(cfg, args.config_file, args.opts)
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        cfg.MODEL.DEVICE = "cpu"
        print("CUDA is not available: MODEL.DEVICE set to cpu")
    cfg.freeze()
    default_setup(cfg, args)
    setup_logger(output=cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="mask2former")
    return cfg


def train_or_evaluate(cfg, args, trainer_cls):
    """``--eval-only``: load MODEL.WEIGHTS (strict: another NUM_CLASSES is an error naming the
    key, and so are missing, extra or renamed tensors) and evaluate, with TTA when
    TEST.AUG.ENABLED; otherwise train with ``trainer_cls`` (``--resume`` continues from
    OUTPUT_DIR/last_checkpoint). On CPU the caching allocator is
    installed for the run when CPU_CACHING_ALLOCATOR (see `mask2former.utils.allocator`).

    Training stopped by the preemption signal (`mask2former.engine.hooks.PreemptionCheckpoint`)
    returns ``{"preempted": {"iteration": k, "checkpoint": "model_<k>.pth"}}`` (the same is in
    OUTPUT_DIR/preempted.json) instead of the evaluation results."""
    with cpu_caching_allocator(enabled=cfg.MODEL.DEVICE == "cpu" and cfg.CPU_CACHING_ALLOCATOR):
        if args.eval_only:
            # no trained weights (empty, or the backbone's ImageNet file): name the zoo entry
            check_trained_weights(cfg, args.config_file, resume=args.resume)
            model = trainer_cls.build_model(cfg)
            Mask2FormerCheckpointer(model, save_dir=cfg.OUTPUT_DIR, strict_shapes=True
                                    ).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
            res = trainer_cls.test(cfg, model)
            if cfg.TEST.AUG.ENABLED:
                res.update(trainer_cls.test_with_TTA(cfg, model))
            if comm.is_main_process():
                verify_results(cfg, res)
            return res
        trainer = trainer_cls(cfg)
        trainer.resume_or_load(resume=args.resume)
        try:
            return trainer.train()
        except TrainingPreempted as stop:
            logger.warning("%s", stop)
            return {"preempted": {"iteration": stop.iteration, "checkpoint": stop.checkpoint}}


def launch_from_command_line(main, script: str, argv=None):
    """Parse Detectron2's standard arguments and run ``main(args)`` in ``--num-gpus`` processes
    per machine (``--num-machines``, ``--machine-rank``, ``--dist-url``) with Detectron2's
    ``launch``. A missing trained model or a failed model-zoo download ends the script with one
    line naming the cause and what to do."""
    from ..model_zoo import exit_on_model_zoo_error

    args = default_argument_parser().parse_args(argv)
    print("Command Line Args:", args)
    with exit_on_model_zoo_error(script):
        launch(main, args.num_gpus, num_machines=args.num_machines,
               machine_rank=args.machine_rank, dist_url=args.dist_url, args=(args,))
