"""Suite-wide fixtures."""
import logging

import pytest

from helpers import TINY_TRAIN_CONFIG

# Loggers that tools and train_net.py configure with Detectron2's `setup_logger`, which turns
# their propagation off. Tests that run a tool in-process would otherwise hide every later
# record of these loggers from pytest's `caplog`.
_PROJECT_LOGGERS = ("mask2former", "detectron2", "fvcore", "d2")


@pytest.fixture(autouse=True)
def _project_loggers_propagate():
    for name in _PROJECT_LOGGERS:
        logging.getLogger(name).propagate = True
    yield


@pytest.fixture(scope="session")
def train_synthetic_root(tmp_path_factory):
    """A datasets root with a tiny generated synthetic panoptic set (8 train / 2 val, 64 px),
    registered as synthetic_*: the training tests' data."""
    from mask2former.data.datasets import register_synthetic
    from mask2former.data.synthetic import generate_synthetic_dataset

    root = str(tmp_path_factory.mktemp("datasets"))
    generate_synthetic_dataset(root, num_train=8, num_val=2, seed=0, image_size=64)
    register_synthetic(root)
    return root


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory):
    """Path of `helpers.TINY_TRAIN_CONFIG` written to a file."""
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(TINY_TRAIN_CONFIG)
    return str(path)
