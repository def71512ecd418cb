"""mask2former/evaluation/build.py: which evaluators score a dataset."""

import pytest

from detectron2.data import MetadataCatalog
from detectron2.evaluation import (
    CityscapesSemSegEvaluator,
    COCOEvaluator,
    COCOPanopticEvaluator,
    DatasetEvaluators,
    SemSegEvaluator,
)

from mask2former.engine import Trainer
from mask2former.evaluation import InstanceSegEvaluator, SkippedImagesReporter, build_evaluators

from helpers import make_cfg


def test_evaluators_by_evaluator_type(train_synthetic_root, tmp_path):
    cfg = make_cfg()
    t = cfg.MODEL.MASK_FORMER.TEST
    t.SEMANTIC_ON, t.PANOPTIC_ON, t.INSTANCE_ON = True, True, True
    build = build_evaluators
    ev = build(cfg, "synthetic_panoptic_val", str(tmp_path))
    assert isinstance(ev, DatasetEvaluators)
    kinds = [type(e) for e in ev._evaluators]
    assert kinds == [COCOPanopticEvaluator, SemSegEvaluator, InstanceSegEvaluator]
    # the Trainer's evaluator: these, then the skipped-images report
    trainer_ev = Trainer.build_evaluator(cfg, "synthetic_panoptic_val", str(tmp_path))
    inner, report = trainer_ev._evaluators
    assert [type(x) for x in inner._evaluators] == kinds
    assert isinstance(report, SkippedImagesReporter)
    t.SEMANTIC_ON, t.INSTANCE_ON = False, False
    assert isinstance(build(cfg, "synthetic_panoptic_val", str(tmp_path)), COCOPanopticEvaluator)
    assert isinstance(build(cfg, "synthetic_sem_seg_val", str(tmp_path)), SemSegEvaluator)
    assert type(build(cfg, "synthetic_instance_val", str(tmp_path))) is COCOEvaluator
    assert isinstance(
        build(cfg, "cityscapes_fine_sem_seg_val", str(tmp_path)), CityscapesSemSegEvaluator
    )
    MetadataCatalog.get("_test_no_evaluator").set(evaluator_type="nonsense")
    with pytest.raises(NotImplementedError, match="nonsense"):
        build(cfg, "_test_no_evaluator", str(tmp_path))
