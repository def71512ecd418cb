"""Fixtures of the model tests."""

import pytest

from helpers import cached_model


@pytest.fixture(scope="session")
def coco_r50_model():
    return cached_model("coco/panoptic/r50.yaml")
