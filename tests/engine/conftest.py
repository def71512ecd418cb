"""Fixtures of the engine tests: the project's Trainer on a toy model (toy_trainer.py)."""
import pytest

from toy_trainer import make_toy_trainer  # noqa: F401  (ToyModel, toy_loader live there too)


@pytest.fixture
def toy_trainer_factory():
    return make_toy_trainer


@pytest.fixture(autouse=True)
def _restore_skip_log_env(monkeypatch):
    """The Trainer points the skip log at OUTPUT_DIR: undo that after each test."""
    from mask2former.data.robust_loading import SKIP_LOG_ENV

    monkeypatch.delenv(SKIP_LOG_ENV, raising=False)
