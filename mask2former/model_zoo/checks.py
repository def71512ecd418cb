"""Say which weights a run needs before trying to load (or download) the wrong ones.

Inference (``demo/demo.py``, ``train_net.py --eval-only``) needs *trained* weights. The configs'
own MODEL.WEIGHTS is the ImageNet initialisation of the backbone (the start of training), so
running a config as-is would download that file and produce meaningless masks.
:func:`check_trained_weights` stops such a run with one line naming the zoo entry of the config
(``MODEL.WEIGHTS mask2former://coco/panoptic/r50``).
"""
import contextlib
import logging
import os
from typing import Iterator, Optional
from urllib.parse import urlparse

from .errors import MissingTrainedWeightsError, ModelZooError
from .table import BackboneWeights, ZooModel, backbone_weights, list_models

__all__ = [
    "backbone_initialisation",
    "zoo_model_for_config",
    "zoo_checkpoint",
    "explain_missing_weights",
    "check_trained_weights",
    "exit_on_model_zoo_error",
]

logger = logging.getLogger(__name__)


def backbone_initialisation(weights: str) -> Optional[BackboneWeights]:
    """The backbone initialisation ``weights`` names (e.g. ``detectron2://ImageNetPretrained/
    torchvision/R-50.pkl``, ``R-101.pkl``, ``/data/swin_large_patch4_window12_384_22k.pkl``), or
    None if it is not one of :func:`~.table.backbone_weights`."""
    weights = weights.strip()
    if not weights:
        return None
    base = os.path.basename(urlparse(weights).path if "://" in weights else weights)
    for b in backbone_weights():
        if weights in (b.weights, b.url) or base == b.file:
            return b
    if weights.startswith("detectron2://ImageNetPretrained/"):
        return BackboneWeights(name=base, file=base, backbones=(), weights=weights,
                               description="an ImageNet model of Detectron2's ImageNetPretrained")
    return None


def zoo_checkpoint(weights: str) -> Optional[ZooModel]:
    """The zoo entry whose released checkpoint ``weights`` names (``mask2former://<name>``, its
    URL, or a path ending in its file name ``model_final_<md5 prefix>.pkl``), or None."""
    weights = weights.strip()
    if not weights:
        return None
    base = os.path.basename(urlparse(weights).path if "://" in weights else weights)
    for m in list_models():
        if weights in (m.weights, m.url) or base == m.url.rsplit("/", 1)[1]:
            return m
    return None


def _same_file(a: str, b: str) -> bool:
    return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def _base_of(config_file: str) -> Optional[str]:
    """The ``_BASE_`` file of a yaml config (absolute), or None."""
    import yaml

    try:
        with open(config_file, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return None
    base = data.get("_BASE_") if isinstance(data, dict) else None
    if not isinstance(base, str) or "://" in base:
        return None
    base = os.path.expanduser(base)
    return base if os.path.isabs(base) else os.path.join(os.path.dirname(config_file), base)


def zoo_model_for_config(config_file: str) -> Optional[ZooModel]:
    """The zoo entry of ``config_file``, or of the first zoo config in its ``_BASE_`` chain."""
    path, seen = config_file, set()
    while path and os.path.isfile(path) and path not in seen:
        seen.add(path)
        for m in list_models():
            if os.path.isfile(m.config_path) and _same_file(m.config_path, path):
                return m
        path = _base_of(path)
    return None


def explain_missing_weights(cfg, config_file: Optional[str] = None, *,
                            opts_flag: str = "") -> Optional[str]:
    """One line saying that ``cfg`` has no trained weights and what to pass instead, or None.

    "No trained weights" means MODEL.WEIGHTS is empty, a backbone initialisation
    (:func:`backbone_initialisation`), or the released model of *another* zoo entry that the
    config's training starts from (the video configs start from the COCO instance models).

    Args:
        cfg: the merged config.
        config_file: the config file the run was given (used to find its zoo entry).
        opts_flag: how the caller passes config overrides, e.g. ``"--opts "`` for the demo.
    """
    weights = cfg.MODEL.WEIGHTS.strip()
    entry = zoo_model_for_config(config_file) if config_file else None
    if weights:
        init = backbone_initialisation(weights)
        start = zoo_checkpoint(weights) if entry is not None else None
        if init is not None:
            what = (f"MODEL.WEIGHTS is {weights}, the ImageNet initialisation of the backbone "
                    f"({init.name}) that training starts from, not a trained model")
        elif start is not None and start.name != entry.name and start.kind != entry.kind:
            what = (f"MODEL.WEIGHTS is {weights}, the released {start.name} model that training "
                    f"of this config starts from, not a trained {entry.kind} model")
        else:
            return None
    else:
        what = "MODEL.WEIGHTS is empty (the model would run with random weights)"
    if entry is not None:
        todo = (f"For the released model ({entry.headline()}) add "
                f"`{opts_flag}MODEL.WEIGHTS {entry.weights}` (downloaded once into the fvcore "
                f"cache, $FVCORE_CACHE), or pass a checkpoint you trained")
    else:
        todo = (f"There is no released model for this config: pass "
                f"`{opts_flag}MODEL.WEIGHTS <file>` with a trained checkpoint (e.g. "
                f"model_final.pth of a train_net.py run), or use a config of MODEL_ZOO.md")
    return f"{config_file or 'The config'} has no trained weights: {what}. {todo}."


def check_trained_weights(cfg, config_file: Optional[str] = None, *, resume: bool = False,
                          opts_flag: str = "") -> None:
    """Raise :class:`MissingTrainedWeightsError` (see :func:`explain_missing_weights`) unless
    ``cfg`` names trained weights. With ``resume``, a ``last_checkpoint`` in OUTPUT_DIR counts
    as trained weights (Detectron2 loads it instead of MODEL.WEIGHTS)."""
    if resume and os.path.isfile(os.path.join(cfg.OUTPUT_DIR, "last_checkpoint")):
        return
    msg = explain_missing_weights(cfg, config_file, opts_flag=opts_flag)
    if msg is not None:
        raise MissingTrainedWeightsError(msg)


@contextlib.contextmanager
def exit_on_model_zoo_error(prog: str) -> Iterator[None]:
    """For scripts: turn a :class:`ModelZooError` into ``SystemExit("<prog>: error: <msg>")``
    (one line on stderr, exit status 1) instead of a traceback."""
    try:
        yield
    except ModelZooError as e:
        raise SystemExit(f"{prog}: error: {e}") from None
