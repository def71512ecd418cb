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
"""

import logging
import os
import weakref
from collections import OrderedDict

import torch

import detectron2.utils.comm as comm
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.data import (
    DatasetMapper,
    MetadataCatalog,
    build_detection_test_loader,
    build_detection_train_loader,
)
from detectron2.engine import (
    AMPTrainer,
    DefaultTrainer,
    SimpleTrainer,
    TrainerBase,
    create_ddp_model,
    default_argument_parser,
    default_setup,
    launch,
)
from detectron2.evaluation import (
    CityscapesInstanceEvaluator,
    CityscapesSemSegEvaluator,
    COCOEvaluator,
    COCOPanopticEvaluator,
    DatasetEvaluators,
    LVISEvaluator,
    SemSegEvaluator,
    verify_results,
)
from detectron2.projects.deeplab import add_deeplab_config
from detectron2.utils.logger import setup_logger

from mask2former import add_maskformer2_config
from mask2former.data.dataset_mappers import build_dataset_mapper
from mask2former.engine import (
    Mask2FormerCheckpointer,
    RobustTestMapper,
    SkippedImagesReporter,
    add_reliability_config,
    install_reliability,
    merge_config_checked,
)
from mask2former.evaluation import InstanceSegEvaluator
from mask2former.model_zoo import check_trained_weights, exit_on_model_zoo_error
from mask2former.solver import build_lr_scheduler, build_optimizer
from mask2former.modeling.test_time_augmentation import SemanticSegmentorWithTTA
from mask2former.utils.allocator import cpu_caching_allocator
from mask2former.utils.sample_loading import RobustDatasetMapper

logger = logging.getLogger("mask2former.train_net")

PANOPTIC_EVALUATOR_TYPES = (
    "coco_panoptic_seg",
    "ade20k_panoptic_seg",
    "cityscapes_panoptic_seg",
    "mapillary_vistas_panoptic_seg",
)


def build_evaluators(cfg, dataset_name, output_folder):
    """Evaluators for ``dataset_name`` by its metadata ``evaluator_type`` and the TEST flags.

    - sem_seg: SemSegEvaluator.
    - coco: COCOEvaluator (instance AP).
    - *_panoptic_seg: COCOPanopticEvaluator if PANOPTIC_ON; SemSegEvaluator (or Cityscapes'
      for Cityscapes) if SEMANTIC_ON; InstanceSegEvaluator (or Cityscapes') if INSTANCE_ON.
    - cityscapes_instance / cityscapes_sem_seg: the Cityscapes evaluators. lvis: LVISEvaluator.
    """
    test = cfg.MODEL.MASK_FORMER.TEST
    evaluator_type = MetadataCatalog.get(dataset_name).get("evaluator_type", None)
    evaluators = []
    if evaluator_type == "sem_seg":
        evaluators.append(SemSegEvaluator(dataset_name, distributed=True, output_dir=output_folder))
    elif evaluator_type == "coco":
        evaluators.append(COCOEvaluator(dataset_name, output_dir=output_folder))
    elif evaluator_type == "lvis":
        evaluators.append(LVISEvaluator(dataset_name, output_dir=output_folder))
    elif evaluator_type == "cityscapes_instance":
        evaluators.append(CityscapesInstanceEvaluator(dataset_name))
    elif evaluator_type == "cityscapes_sem_seg":
        evaluators.append(CityscapesSemSegEvaluator(dataset_name))
    elif evaluator_type in PANOPTIC_EVALUATOR_TYPES:
        cityscapes = evaluator_type == "cityscapes_panoptic_seg"
        if test.PANOPTIC_ON:
            evaluators.append(COCOPanopticEvaluator(dataset_name, output_folder))
        if test.SEMANTIC_ON:
            evaluators.append(
                CityscapesSemSegEvaluator(dataset_name)
                if cityscapes
                else SemSegEvaluator(dataset_name, distributed=True, output_dir=output_folder)
            )
        if test.INSTANCE_ON:
            evaluators.append(
                CityscapesInstanceEvaluator(dataset_name)
                if cityscapes
                else InstanceSegEvaluator(dataset_name, output_dir=output_folder)
            )
    if not evaluators:
        raise NotImplementedError(
            f"no evaluator for dataset {dataset_name!r} with evaluator_type {evaluator_type!r} "
            "and the enabled MODEL.MASK_FORMER.TEST outputs"
        )
    return evaluators[0] if len(evaluators) == 1 else DatasetEvaluators(evaluators)


class Trainer(DefaultTrainer):
    """DefaultTrainer with Mask2Former's mappers, evaluators, optimizer, LR schedule and TTA.

    ``__init__`` follows DefaultTrainer's but builds DDP without ``device_ids`` for CPU models
    (Detectron2's default passes the local rank, which DDP rejects for CPU modules), and runs
    in fp32 when AMP is requested on CPU (Detectron2's AMPTrainer needs CUDA).
    """

    def __init__(self, cfg):
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())

        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)

        on_cpu = next(model.parameters()).device.type == "cpu"
        ddp_kwargs = {"broadcast_buffers": False}
        if on_cpu:
            ddp_kwargs["device_ids"] = None
        model = create_ddp_model(model, **ddp_kwargs)
        use_amp = cfg.SOLVER.AMP.ENABLED and not on_cpu
        if cfg.SOLVER.AMP.ENABLED and on_cpu:
            logger.warning(
                "SOLVER.AMP.ENABLED is ignored on CPU (Detectron2's AMPTrainer needs "
                "CUDA): training in fp32."
            )
        self._trainer = (AMPTrainer if use_amp else SimpleTrainer)(model, data_loader, optimizer)

        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = DetectionCheckpointer(
            model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self)
        )
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())
        # crash-safe checkpointer + non-finite loss guard (replaces self.checkpointer)
        install_reliability(self, cfg)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        if output_folder is None:
            output_folder = os.path.join(cfg.OUTPUT_DIR, "inference")
        evaluator = build_evaluators(cfg, dataset_name, output_folder)
        # reports images that could not be read (evaluated as black images) in the results
        return DatasetEvaluators([evaluator, SkippedImagesReporter(dataset_name)])

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return build_detection_test_loader(cfg, dataset_name, mapper=RobustTestMapper(cfg))

    @classmethod
    def build_train_loader(cls, cfg):
        mapper = build_dataset_mapper(cfg, is_train=True)
        if mapper is None:
            mapper = DatasetMapper(cfg, is_train=True)
        if cfg.DATALOADER.get("SKIP_BAD_SAMPLES", False):
            mapper = RobustDatasetMapper(
                mapper, summary_period=cfg.DATALOADER.get("SKIPPED_SUMMARY_PERIOD", 100)
            )
        return build_detection_train_loader(cfg, mapper=mapper)

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_optimizer(cfg, model)

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer):
        return build_lr_scheduler(cfg, optimizer)

    @classmethod
    def test_with_TTA(cls, cfg, model):
        """Semantic multi-scale + flip TTA over cfg.TEST.AUG; results keys get a "_TTA" suffix."""
        logger.info("Running inference with test-time augmentation ...")
        model = SemanticSegmentorWithTTA(cfg, model)
        # TTA produces semantic segmentation only: evaluate that output alone
        sem_cfg = cfg.clone()
        sem_cfg.defrost()
        sem_cfg.MODEL.MASK_FORMER.TEST.SEMANTIC_ON = True
        sem_cfg.MODEL.MASK_FORMER.TEST.PANOPTIC_ON = False
        sem_cfg.MODEL.MASK_FORMER.TEST.INSTANCE_ON = False
        evaluators = [
            cls.build_evaluator(sem_cfg, name, os.path.join(cfg.OUTPUT_DIR, "inference_TTA"))
            for name in cfg.DATASETS.TEST
        ]
        res = cls.test(cfg, model, evaluators)
        return OrderedDict((k + "_TTA", v) for k, v in res.items())


def setup(args):
    """Config from file + opts (deeplab and Mask2Former keys added), then default_setup."""
    cfg = get_cfg()
    add_deeplab_config(cfg)
    add_maskformer2_config(cfg)
    add_reliability_config(cfg)
    merge_config_checked(cfg, args.config_file, args.opts)
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        cfg.MODEL.DEVICE = "cpu"
        print("CUDA is not available: MODEL.DEVICE set to cpu")
    cfg.freeze()
    default_setup(cfg, args)
    setup_logger(output=cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="mask2former")
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:  # no trained weights: name the config's zoo entry instead of loading
        check_trained_weights(cfg, args.config_file, resume=args.resume)
    # reuses large CPU buffers (see mask2former/config.py); removed again when main returns
    with cpu_caching_allocator(enabled=cfg.MODEL.DEVICE == "cpu" and cfg.CPU_CACHING_ALLOCATOR):
        return train_or_evaluate(cfg, args)


def train_or_evaluate(cfg, args):
    if args.eval_only:
        model = Trainer.build_model(cfg)
        # safe loading (.safetensors / weights-only .pth / numpy-only .pkl); a checkpoint whose
        # shapes do not fit (e.g. other NUM_CLASSES) is an error naming the key to change
        Mask2FormerCheckpointer(model, save_dir=cfg.OUTPUT_DIR, strict_shapes=True).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume
        )
        res = Trainer.test(cfg, model)
        if cfg.TEST.AUG.ENABLED:
            res.update(Trainer.test_with_TTA(cfg, model))
        if comm.is_main_process():
            verify_results(cfg, res)
        return res

    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def invoke_main() -> None:
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )


if __name__ == "__main__":
    with exit_on_model_zoo_error("train_net.py"):  # missing weights, failed download: one line
        invoke_main()
