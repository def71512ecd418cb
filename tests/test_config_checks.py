import os

import pytest
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog

from mask2former import add_maskformer2_config
from mask2former.config import ConfigError, check_num_classes, merge_config_checked

from helpers import REPO as ROOT



def _cfg():
    cfg = get_cfg()
    add_maskformer2_config(cfg)
    add_maskformer2_config(cfg)  # idempotent
    return cfg


def test_unknown_key_in_file_suggests_the_right_one(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("MODEL:\n  MASK_FORMER:\n    NUM_QUERIES: 50\n")
    with pytest.raises(ConfigError) as ei:
        merge_config_checked(_cfg(), str(bad))
    msg = str(ei.value)
    assert "Unknown config key MODEL.MASK_FORMER.NUM_QUERIES" in msg and str(bad) in msg
    assert "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES" in msg


def test_unknown_key_on_command_line_and_odd_opts():
    with pytest.raises(ConfigError, match=r"SOLVER\.BASE_LR"):
        merge_config_checked(_cfg(), None, ["SOLVER.BASE_LRR", "0.1"])
    with pytest.raises(ConfigError, match="KEY VALUE pairs"):
        merge_config_checked(_cfg(), None, ["SOLVER.BASE_LR"])
    with pytest.raises(ConfigError, match="not found"):
        merge_config_checked(_cfg(), str(ROOT) + "/configs/nope.yaml")
    cfg = merge_config_checked(_cfg(), None, ["SOLVER.NONFINITE_LOSS.ACTION", "skip"])
    assert cfg.SOLVER.NONFINITE_LOSS.ACTION == "skip"


def test_num_classes_must_match_metadata():
    name = "_reliability_test_ds"
    if name not in DatasetCatalog.list():
        DatasetCatalog.register(name, lambda: [])
        MetadataCatalog.get(name).set(stuff_classes=["a", "b", "c"], thing_classes=["a"])
    cfg = _cfg()
    cfg.DATASETS.TRAIN = (name,)
    cfg.DATASETS.TEST = ()
    cfg.INPUT.DATASET_MAPPER_NAME = "mask_former_panoptic"
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 3
    check_num_classes(cfg)
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 150
    with pytest.raises(ConfigError, match="Set MODEL.SEM_SEG_HEAD.NUM_CLASSES 3"):
        check_num_classes(cfg)
    cfg.INPUT.DATASET_MAPPER_NAME = "mask_former_instance"  # things only
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 1
    check_num_classes(cfg)


def test_released_configs_agree_with_builtin_metadata():
    # every shipped config must pass the check (datasets need not exist on disk)
    import glob

    checked = 0
    for path in sorted(glob.glob(os.path.join(ROOT, "configs", "*", "*", "*.yaml"))):
        cfg = _cfg()
        from detectron2.projects.deeplab import add_deeplab_config

        add_deeplab_config(cfg)
        merge_config_checked(cfg, path)
        check_num_classes(cfg)
        checked += 1
    assert checked > 0
