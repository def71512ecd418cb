"""Suite-wide fixtures."""
import logging

import pytest

# Loggers that tools and train_net.py configure with Detectron2's `setup_logger`, which turns
# their propagation off. Tests that run a tool in-process would otherwise hide every later
# record of these loggers from pytest's `caplog`.
_PROJECT_LOGGERS = ("mask2former", "detectron2", "fvcore", "d2")


@pytest.fixture(autouse=True)
def _project_loggers_propagate():
    for name in _PROJECT_LOGGERS:
        logging.getLogger(name).propagate = True
    yield
