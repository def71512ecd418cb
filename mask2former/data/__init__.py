"""Datasets (registered on import) and dataset mappers."""
from . import datasets  # noqa: F401
from . import dataset_mappers  # noqa: F401
