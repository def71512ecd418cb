"""Errors of the model zoo. Every message is one line saying what is wrong and what to do."""

__all__ = [
    "ModelZooError",
    "UnknownModelError",
    "ZooConfigNotFoundError",
    "ZooDownloadError",
    "ChecksumMismatchError",
    "MissingTrainedWeightsError",
]


class ModelZooError(Exception):
    """Base class: scripts print ``str(error)`` (one line) instead of a traceback."""

    def __str__(self) -> str:  # KeyError would add quotes around the message
        return str(self.args[0]) if self.args else self.__class__.__name__


class UnknownModelError(ModelZooError, KeyError):
    """A model-zoo name that is not in the table."""


class ZooConfigNotFoundError(ModelZooError, FileNotFoundError):
    """The config file of a zoo entry is not where the package expects it."""


class ZooDownloadError(ModelZooError, OSError):
    """A zoo file could not be downloaded (network, HTTP error, short transfer)."""


class ChecksumMismatchError(ZooDownloadError):
    """A downloaded (or cached) file does not have the md5 prefix its file name promises."""


class MissingTrainedWeightsError(ModelZooError, ValueError):
    """Inference was asked for without trained weights (MODEL.WEIGHTS empty or a backbone
    initialisation)."""

