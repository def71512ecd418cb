"""mask2former/engine/trainer.py: the Trainer's data loading keeps going past data faults and
stops on bugs, and its parts come from the documented build_* methods."""

import copy
import os

import pytest

from detectron2.data import DatasetCatalog, MetadataCatalog

from mask2former.checkpoint import Mask2FormerCheckpointer
from mask2former.data.dataset_mappers import DATASET_MAPPERS, build_dataset_mapper
from mask2former.data.robust_loading import read_skip_log, set_skip_log
from mask2former.engine import EnsureFinalCheckpoint, NonFiniteLossGuard, SkippedSamplesSummary, Trainer

from helpers import TINY_TRAIN_CONFIG, make_cfg

DATASET = "_trainer_test_one_truncated"


@pytest.fixture
def dataset_with_a_truncated_jpeg(train_synthetic_root, tmp_path):
    """The tiny synthetic training set with its first image truncated to a third."""
    records = copy.deepcopy(DatasetCatalog.get("synthetic_panoptic_train"))
    data = open(records[0]["file_name"], "rb").read()
    bad = tmp_path / "truncated.jpg"
    bad.write_bytes(data[: len(data) // 3])
    records[0]["file_name"] = str(bad)
    DatasetCatalog.register(DATASET, lambda: records)
    MetadataCatalog.get(DATASET).set(**MetadataCatalog.get("synthetic_panoptic_train").as_dict()
                                     | {"name": DATASET})
    yield str(bad)
    DatasetCatalog.remove(DATASET)
    MetadataCatalog.remove(DATASET)


def _cfg(tmp_path, *opts):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_TRAIN_CONFIG)
    return make_cfg(str(path), "DATASETS.TRAIN", f"('{DATASET}',)", "DATASETS.TEST", "()",
                    "OUTPUT_DIR", str(tmp_path / "out"), "SOLVER.IMS_PER_BATCH", "4", *opts)


def test_truncated_jpeg_is_skipped_and_reported(dataset_with_a_truncated_jpeg, tmp_path):
    cfg = _cfg(tmp_path)
    set_skip_log(str(tmp_path / "skips.jsonl"))
    try:
        batches = iter(Trainer.build_train_loader(cfg))
        seen = [d["file_name"] for _ in range(4) for d in next(batches)]
        skips = read_skip_log(split="train")
    finally:
        set_skip_log(None)
    assert dataset_with_a_truncated_jpeg not in seen and len(seen) == 16
    assert skips and {s["file"] for s in skips} == {dataset_with_a_truncated_jpeg}
    assert "truncated" in skips[0]["reason"]


class _BuggyMapper:
    """The project's panoptic mapper, with a bug on the third sample it maps."""

    def __init__(self, cfg, is_train=True):
        inner = cfg.clone()
        inner.defrost()
        inner.INPUT.DATASET_MAPPER_NAME = "coco_panoptic_lsj"
        self.mapper = build_dataset_mapper(inner, is_train)
        self.calls = 0

    def __call__(self, d):
        self.calls += 1
        if self.calls == 3:
            return None + 1  # TypeError: a bug, not a data fault
        return self.mapper(d)


def test_a_mapper_bug_stops_training(dataset_with_a_truncated_jpeg, tmp_path, monkeypatch):
    monkeypatch.setitem(DATASET_MAPPERS, "_buggy", _BuggyMapper)
    trainer = Trainer(_cfg(tmp_path, "SOLVER.MAX_ITER", "20", "INPUT.DATASET_MAPPER_NAME", "_buggy"))
    trainer.resume_or_load(resume=False)
    with pytest.raises(TypeError, match="unsupported operand"):
        trainer.train()
    assert trainer.iter < 20


def test_parts_come_from_the_build_methods(dataset_with_a_truncated_jpeg, tmp_path):
    trainer = Trainer(_cfg(tmp_path, "SOLVER.MAX_ITER", "1"))
    assert isinstance(trainer.checkpointer, Mask2FormerCheckpointer)
    kinds = {type(h) for h in trainer._hooks}
    assert {NonFiniteLossGuard, EnsureFinalCheckpoint, SkippedSamplesSummary} <= kinds
    # the periodic checkpointer Detectron2 adds writes through the same (safe) checkpointer
    periodic = [h for h in trainer._hooks if type(h).__name__ == "PeriodicCheckpointer"]
    assert periodic and periodic[0].checkpointer is trainer.checkpointer
    assert os.environ.get("MASK2FORMER_SKIP_LOG", "").endswith("skipped_samples.jsonl")
