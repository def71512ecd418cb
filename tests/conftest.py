"""Suite-wide fixtures, and the check that the compiled extensions are built."""
import logging

import pytest

from helpers import TINY_TRAIN_CONFIG


def pytest_sessionstart(session):
    """The compiled op (mask2former._C) and allocator (mask2former._allocator) are part of the
    build: without them the suite stops at once instead of testing the fallbacks only."""
    from mask2former.layers import available_backends
    from mask2former.layers.ms_deform_attn import _EXT_REASON
    from mask2former.utils import allocator

    missing = []
    if "native-cpu" not in available_backends():
        missing.append(f"mask2former._C ({_EXT_REASON})")
    if not allocator.is_available():
        missing.append("mask2former._allocator")
    if missing:
        raise pytest.UsageError(
            f"compiled extension(s) missing: {', '.join(missing)}. Build them with `make build` "
            "(or `.venv/bin/python setup.py build_ext --inplace`) before running the tests.")

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
def _train_synthetic_data(tmp_path_factory):
    from mask2former.data.synthetic import generate_synthetic_dataset

    root = str(tmp_path_factory.mktemp("datasets"))
    generate_synthetic_dataset(root, num_train=8, num_val=2, seed=0, image_size=64)
    return root


@pytest.fixture
def train_synthetic_root(_train_synthetic_data):
    """A datasets root with a tiny generated synthetic panoptic set (8 train / 2 val, 64 px),
    registered as synthetic_* for the test (other tests register those names elsewhere): the
    training tests' data."""
    from mask2former.data.datasets import register_synthetic

    register_synthetic(_train_synthetic_data)
    return _train_synthetic_data


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory):
    """Path of `helpers.TINY_TRAIN_CONFIG` written to a file."""
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(TINY_TRAIN_CONFIG)
    return str(path)
