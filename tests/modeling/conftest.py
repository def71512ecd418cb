"""Fixtures of the model tests (helpers are in model_helpers.py)."""

import pytest

from model_helpers import cached_model


@pytest.fixture(scope="session")
def coco_r50_model():
    return cached_model("coco/panoptic/r50.yaml")
