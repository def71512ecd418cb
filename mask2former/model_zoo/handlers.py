"""iopath path handlers, registered with Detectron2's ``PathManager`` on ``import mask2former``.

* ``mask2former://<name>`` (e.g. ``mask2former://coco/panoptic/swin_l``): the released checkpoint
  of the zoo entry ``<name>``.
* ``https://dl.fbaipublicfiles.com/...``: downloaded by :func:`.download.fetch` (cache, md5
  check, resume, mirror, one-line errors) instead of iopath's plain URL handler. This also covers
  ``detectron2://`` URLs, which Detectron2 resolves to this host.

So ``MODEL.WEIGHTS mask2former://coco/panoptic/r50`` (or the plain https URL) works in
``train_net.py``, ``demo/demo.py`` and any code that loads weights through Detectron2's
checkpointers.
"""
from typing import Any, List

from detectron2.utils.file_io import PathHandler, PathManager

from .download import ZOO_HOST, fetch
from .table import find_model

__all__ = ["ZooURLHandler", "Mask2FormerZooHandler", "register_handlers"]


class ZooURLHandler(PathHandler):
    """``https://dl.fbaipublicfiles.com/...`` through :func:`~.download.fetch`."""

    PREFIX = ZOO_HOST + "/"

    def _get_supported_prefixes(self) -> List[str]:
        return [self.PREFIX]

    def _get_local_path(self, path: str, force: bool = False, cache_dir=None, **kwargs: Any) -> str:
        self._check_kwargs(kwargs)
        return fetch(path, cache_dir=cache_dir, force=force)

    def _open(self, path: str, mode: str = "r", buffering: int = -1, **kwargs: Any):
        self._check_kwargs(kwargs)
        if mode not in ("r", "rb"):
            raise ValueError(f"{path}: zoo files can only be read (mode 'r' or 'rb'), not {mode!r}")
        return open(self._get_local_path(path), mode, buffering)


class Mask2FormerZooHandler(PathHandler):
    """``mask2former://<name>`` → the checkpoint URL of zoo entry ``<name>``."""

    PREFIX = "mask2former://"

    def _get_supported_prefixes(self) -> List[str]:
        return [self.PREFIX]

    def _url(self, path: str) -> str:
        return find_model(path[len(self.PREFIX):]).url

    def _get_local_path(self, path: str, **kwargs: Any) -> str:
        return PathManager.get_local_path(self._url(path), **kwargs)

    def _open(self, path: str, mode: str = "r", **kwargs: Any):
        return PathManager.open(self._url(path), mode, **kwargs)


_registered = False


def register_handlers() -> None:
    """Register both handlers with Detectron2's PathManager (idempotent)."""
    global _registered
    if _registered:
        return
    PathManager.register_handler(ZooURLHandler())
    PathManager.register_handler(Mask2FormerZooHandler())
    _registered = True
