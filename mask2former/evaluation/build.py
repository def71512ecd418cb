"""Which evaluators score a dataset: chosen from its metadata ``evaluator_type`` and the TEST flags."""

from detectron2.data import MetadataCatalog
from detectron2.evaluation import (
    CityscapesInstanceEvaluator,
    CityscapesSemSegEvaluator,
    COCOEvaluator,
    COCOPanopticEvaluator,
    DatasetEvaluators,
    LVISEvaluator,
    SemSegEvaluator,
)

from .instance_evaluation import InstanceSegEvaluator
from .ytvis_evaluation import YTVISEvaluator

__all__ = ["build_evaluators", "PANOPTIC_EVALUATOR_TYPES"]

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
    - ytvis: YTVISEvaluator (video AP; results.json + zip for the benchmark server).
    """
    test = cfg.MODEL.MASK_FORMER.TEST
    evaluator_type = MetadataCatalog.get(dataset_name).get("evaluator_type", None)
    evaluators = []
    if evaluator_type == "sem_seg":
        evaluators.append(SemSegEvaluator(dataset_name, distributed=True, output_dir=output_folder))
    elif evaluator_type == "coco":
        evaluators.append(COCOEvaluator(dataset_name, output_dir=output_folder))
    elif evaluator_type == "ytvis":
        evaluators.append(YTVISEvaluator(dataset_name, output_dir=output_folder))
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
