"""A toy Detectron2 DefaultTrainer (tiny linear model) to test the engine without the real model."""
import pytest

from toy_trainer import make_toy_trainer  # noqa: F401  (ToyModel, toy_loader live there too)


@pytest.fixture
def toy_trainer_factory():
    return make_toy_trainer


@pytest.fixture(autouse=True)
def _restore_skip_log_env(monkeypatch):
    """install_reliability() points the skip log at OUTPUT_DIR: undo that after each test."""
    from mask2former.utils.sample_loading import SKIP_LOG_ENV

    monkeypatch.delenv(SKIP_LOG_ENV, raising=False)
