"""The Mask2Former `Trainer`: Detectron2's DefaultTrainer with the project's parts.

Everything is built through DefaultTrainer's documented, overridable methods:

- `build_train_loader`: the mapper named by INPUT.DATASET_MAPPER_NAME, wrapped so that data faults
  (unreadable files, annotations inconsistent with their image) are skipped and reported
  (DATALOADER.SKIP_BAD_SAMPLES) while any other error stops training;
- `build_test_loader`: the robust test mapper (unreadable images are evaluated as black images
  and reported beside the metrics);
- `build_evaluator`: `mask2former.evaluation.build_evaluators` plus the skipped-images report;
- `build_optimizer` / `build_lr_scheduler`: `mask2former.solver` (AdamW, backbone multiplier,
  full-model gradient clipping, poly schedule);
- `build_hooks`: Detectron2's hooks plus the non-finite loss guard, the skipped-sample summary,
  the missing-final-checkpoint hook and, when ``$MASK2FORMER_PREEMPT_SIGNAL`` names a signal, the
  checkpoint-and-stop on that signal (`mask2former.engine.hooks`);
- `build_checkpointer`: `mask2former.checkpoint.Mask2FormerCheckpointer` (atomic saves, intact-file
  checks on resume, safe loading of released weights);
- `build_step_trainer`: the inner SimpleTrainer / AMPTrainer that runs one step.

``__init__`` follows DefaultTrainer's, calling those methods, with two differences for CPU
training: DDP is built without ``device_ids`` for CPU models (Detectron2 passes the local rank,
which DDP rejects for CPU modules), and SOLVER.AMP.ENABLED trains under bf16 autocast on CPUs with
bf16 instructions (Detectron2's AMPTrainer needs CUDA), fp32 elsewhere with a log line.
"""

import logging
import os
import weakref
from collections import OrderedDict

import torch

from detectron2.data import DatasetMapper, build_detection_test_loader, build_detection_train_loader
from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer, TrainerBase, create_ddp_model
from detectron2.evaluation import DatasetEvaluators
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from ..checkpoint import Mask2FormerCheckpointer
from ..config import check_num_classes
from ..data.dataset_mappers import VIDEO_META_ARCHITECTURES, RobustTestMapper, build_dataset_mapper
from ..data.robust_loading import RobustDatasetMapper, set_skip_log
from ..evaluation import SkippedImagesReporter, build_evaluators
from ..modeling.test_time_augmentation import SemanticSegmentorWithTTA
from ..solver import build_lr_scheduler, build_optimizer
from ..utils.precision import cpu_bf16_support
from .hooks import (
    AfterBackwardRelay,
    EnsureFinalCheckpoint,
    NonFiniteLossGuard,
    PreemptionCheckpoint,
    SkippedSamplesSummary,
    preempt_signal_from_env,
)

__all__ = ["Trainer", "CPUAutocastTrainer"]

logger = logging.getLogger(__name__)


class CPUAutocastTrainer(SimpleTrainer):
    """Detectron2's SimpleTrainer with each step under CPU autocast (bf16 by default).

    bf16 keeps fp32's exponent range, so no gradient scaler is needed: the losses, gradients,
    optimizer and weights stay fp32; matrix products and convolutions run in bf16.
    """

    def __init__(self, model, data_loader, optimizer, precision: torch.dtype = torch.bfloat16):
        super().__init__(model, data_loader, optimizer)
        self.precision = precision

    def run_step(self):
        with torch.autocast("cpu", dtype=self.precision):
            super().run_step()


class Trainer(DefaultTrainer):
    """DefaultTrainer with Mask2Former's loaders, evaluators, optimizer, schedule, checkpointer,
    reliability hooks and TTA (see the module docstring)."""

    def __init__(self, cfg):
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        check_num_classes(cfg)

        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        on_cpu = next(model.parameters()).device.type == "cpu"
        # CPU modules take no device_ids in DDP
        model = create_ddp_model(model, broadcast_buffers=False,
                                 **({"device_ids": None} if on_cpu else {}))
        self._trainer = self.build_step_trainer(cfg, model, data_loader, optimizer)

        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = self.build_checkpointer(cfg, model)
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    # ------------------------------------------------------------------ training parts
    @classmethod
    def build_step_trainer(cls, cfg, model, data_loader, optimizer) -> SimpleTrainer:
        """The inner trainer that runs one iteration. SOLVER.AMP.ENABLED: Detectron2's AMPTrainer
        (fp16 + gradient scaler) on CUDA; on CPU bf16 autocast (`CPUAutocastTrainer`, no scaler)
        where the CPU has bf16 instructions, else fp32 with a log line saying why."""
        on_cpu = next(model.parameters()).device.type == "cpu"
        if not cfg.SOLVER.AMP.ENABLED:
            return SimpleTrainer(model, data_loader, optimizer)
        if not on_cpu:
            return AMPTrainer(model, data_loader, optimizer)
        supported, why = cpu_bf16_support()
        if not supported:
            logger.warning("SOLVER.AMP.ENABLED on CPU: training in fp32, because %s.", why)
            return SimpleTrainer(model, data_loader, optimizer)
        logger.info("SOLVER.AMP.ENABLED on CPU: training under bf16 autocast (%s).", why)
        return CPUAutocastTrainer(model, data_loader, optimizer)

    def build_checkpointer(self, cfg, model) -> Mask2FormerCheckpointer:
        """Atomic, validating checkpointer saving the model and this trainer's state."""
        return Mask2FormerCheckpointer(model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self))

    def build_hooks(self):
        """Detectron2's default hooks, then the non-finite loss guard (its ``after_backward`` is
        relayed from the inner step trainer, which is where Detectron2 dispatches it), the
        missing-final-checkpoint hook, the skipped-sample summary and (with
        ``$MASK2FORMER_PREEMPT_SIGNAL``) `PreemptionCheckpoint`, last so that it saves the state
        every other hook has updated for the iteration."""
        hooks = super().build_hooks()
        guard = NonFiniteLossGuard.from_config(self.cfg)
        self._trainer.register_hooks([AfterBackwardRelay(guard)])
        hooks += [guard, EnsureFinalCheckpoint(self.checkpointer)]
        if self.cfg.OUTPUT_DIR:
            skip_log = os.path.join(self.cfg.OUTPUT_DIR, "skipped_samples.jsonl")
            set_skip_log(skip_log)  # inherited by the data-loader workers (started later)
            hooks.append(SkippedSamplesSummary(skip_log, self.cfg.DATALOADER.SKIPPED_SUMMARY_PERIOD))
        signum = preempt_signal_from_env()
        if signum is not None:
            hooks.append(PreemptionCheckpoint(self.checkpointer, signum, self.cfg.OUTPUT_DIR))
        return hooks

    @classmethod
    def build_train_loader(cls, cfg):
        mapper = build_dataset_mapper(cfg, is_train=True)
        if mapper is None:
            mapper = DatasetMapper(cfg, is_train=True)
        if cfg.DATALOADER.SKIP_BAD_SAMPLES:
            mapper = RobustDatasetMapper(mapper, summary_period=cfg.DATALOADER.SKIPPED_SUMMARY_PERIOD)
        return build_detection_train_loader(cfg, mapper=mapper)

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_optimizer(cfg, model)

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer):
        return build_lr_scheduler(cfg, optimizer)

    # ------------------------------------------------------------------ evaluation
    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        """Images: the robust test mapper. Video meta-architectures: the clip mapper in test
        mode (every frame of a video, in order), one video per batch."""
        if cfg.MODEL.META_ARCHITECTURE in VIDEO_META_ARCHITECTURES:
            mapper = build_dataset_mapper(cfg, is_train=False)
        else:
            mapper = RobustTestMapper(cfg)
        return build_detection_test_loader(cfg, dataset_name, mapper=mapper)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        if output_folder is None:
            output_folder = os.path.join(cfg.OUTPUT_DIR, "inference")
        evaluator = build_evaluators(cfg, dataset_name, output_folder)
        # reports images that could not be read (evaluated as black images) with the results
        return DatasetEvaluators([evaluator, SkippedImagesReporter(dataset_name)])

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
