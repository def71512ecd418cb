"""An evaluator that reports the test images that could not be read.

`mask2former.data.dataset_mappers.RobustTestMapper` evaluates an unreadable image as a black
image and marks its dict with ``UNREADABLE_KEY``; `SkippedImagesReporter`, added beside the
dataset's evaluators, collects these marks and adds ``{"skipped_images": {"count": n}}`` to the
results, with a warning listing the files: metrics of a run with skipped images are a lower
bound and say so.
"""
import logging
from typing import List

from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

from ..data.dataset_mappers.test_dataset_mapper import UNREADABLE_KEY

__all__ = ["SkippedImagesReporter"]

logger = logging.getLogger(__name__)


class SkippedImagesReporter(DatasetEvaluator):
    """Counts inputs marked unreadable; ``evaluate`` → {"skipped_images": {"count": n}}."""

    def __init__(self, dataset_name: str):
        self.dataset_name = dataset_name
        self._files: List[tuple] = []

    def reset(self):
        self._files = []

    def process(self, inputs, outputs):
        for x in inputs:
            if UNREADABLE_KEY in x:
                self._files.append((x.get("file_name", "?"), x[UNREADABLE_KEY]))

    def evaluate(self):
        files = [f for part in comm.gather(self._files, dst=0) for f in part]
        if not comm.is_main_process():
            return {}
        if files:
            logger.warning(
                "%s: %d image(s) could not be read and were evaluated as black images (their "
                "ground truth still counts, so the metrics are a lower bound):\n%s",
                self.dataset_name, len(files),
                "\n".join(f"  {f}: {r}" for f, r in files[:50]))
        else:
            logger.info("%s: all images were readable.", self.dataset_name)
        return {"skipped_images": {"count": float(len(files))}}
