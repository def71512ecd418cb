"""The Mask2Former model zoo, in the style of :mod:`detectron2.model_zoo`.

Names are config paths below ``configs/`` without ``.yaml``: ``"coco/panoptic/swin_l"``,
``"ade20k/semantic/r50"``, ``"youtubevis_2019/swin_l"`` (MODEL_ZOO.md lists them all)::

    from mask2former import model_zoo

    model_zoo.get_config_file("coco/panoptic/swin_l")   # .../configs/coco/panoptic/swin_l.yaml
    model_zoo.get_checkpoint_url("coco/panoptic/swin_l")  # https://dl.fbaipublicfiles.com/...pkl
    cfg = model_zoo.get_config("coco/panoptic/r50", trained=True)
    model = model_zoo.get("coco/panoptic/r50", trained=True)  # weights downloaded and loaded

``import mask2former`` registers the path handlers of :mod:`.handlers`, so ``MODEL.WEIGHTS
mask2former://coco/panoptic/r50`` (or the checkpoint's https URL) works everywhere Detectron2
loads weights; files are downloaded once into the fvcore cache (``$FVCORE_CACHE``), verified
against the md5 prefix in their name, and ``MASK2FORMER_ZOO_MIRROR`` redirects the downloads
(:mod:`.download`).
"""
import os
from typing import Optional

from .checks import (  # noqa: F401
    backbone_initialisation,
    check_trained_weights,
    exit_on_model_zoo_error,
    explain_missing_weights,
    zoo_checkpoint,
    zoo_model_for_config,
)
from .download import MIRROR_ENV, ZOO_HOST, cache_path, fetch, mirror_url  # noqa: F401
from .errors import (  # noqa: F401
    ChecksumMismatchError,
    MissingTrainedWeightsError,
    ModelZooError,
    UnknownModelError,
    ZooConfigNotFoundError,
    ZooDownloadError,
)
from .handlers import register_handlers
from .table import (  # noqa: F401
    BackboneWeights,
    ZooModel,
    backbone_weights,
    find_model,
    list_models,
)

__all__ = [
    "get_config_file",
    "get_checkpoint_url",
    "get_config",
    "get",
    "list_models",
    "find_model",
    "backbone_weights",
    "check_trained_weights",
    "explain_missing_weights",
    "ModelZooError",
    "ZooDownloadError",
    "ChecksumMismatchError",
    "MissingTrainedWeightsError",
]

register_handlers()


def get_config_file(name: str) -> str:
    """Absolute path of the config file of zoo entry ``name``.

    Raises:
        UnknownModelError: ``name`` is not in the zoo (the message lists close names).
        ZooConfigNotFoundError: the config file is missing (e.g. the package was installed
            without its ``configs/`` folder: use a source checkout).
    """
    model = find_model(name)
    path = model.config_path
    if not os.path.isfile(path):
        raise ZooConfigNotFoundError(
            f"The config of zoo entry {model.name} is missing: {path}. The configs are part of "
            f"the source checkout (install with `pip install -e .` from it).")
    return path


def get_checkpoint_url(name: str) -> str:
    """The released checkpoint of zoo entry ``name`` (its original https URL; downloads go
    through ``MASK2FORMER_ZOO_MIRROR`` when that is set)."""
    return find_model(name).url


def _config_adder(model: ZooModel):
    from .. import config as m2f_config

    if model.kind == "video":
        adder = getattr(m2f_config, "add_maskformer2_video_config", None)
        if adder is None:
            raise ModelZooError(
                f"{model.name} is a video model, but this installation has no video config keys "
                f"(mask2former.config.add_maskformer2_video_config).")
        return adder
    return m2f_config.add_maskformer2_config


def get_config(name: str, trained: bool = False):
    """The config of zoo entry ``name`` (a Detectron2 CfgNode with the Mask2Former keys).

    Args:
        trained: set MODEL.WEIGHTS to the released checkpoint's URL; otherwise MODEL.WEIGHTS
            stays the config's (the ImageNet initialisation of the backbone).
    """
    from detectron2.config import get_cfg

    from ..config import merge_config_checked

    model = find_model(name)
    path = get_config_file(name)
    cfg = get_cfg()
    _config_adder(model)(cfg)
    merge_config_checked(cfg, path)
    if trained:
        cfg.MODEL.WEIGHTS = model.url
    return cfg


def get(name: str, trained: bool = True, device: Optional[str] = "cpu"):
    """Build the model of zoo entry ``name`` and load its weights.

    Args:
        trained: load the released checkpoint (downloaded once, md5-verified). If False, load
            the config's MODEL.WEIGHTS (the backbone's ImageNet initialisation; the rest of the
            model keeps its random initialisation), as :func:`detectron2.model_zoo.get` does.
        device: MODEL.DEVICE ("cpu", "cuda", ...); None keeps the config's ("cuda"), or "cpu"
            when CUDA is not available.

    Returns:
        torch.nn.Module: the model, in training mode like Detectron2's ``build_model`` returns it
        (call ``.eval()`` for inference).
    """
    import torch
    from detectron2.modeling import build_model

    from ..checkpoint import Mask2FormerCheckpointer

    cfg = get_config(name, trained=trained)
    if device is not None:
        cfg.MODEL.DEVICE = device
    elif not torch.cuda.is_available():
        cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg)
    # safe loading: the .pkl is read with the numpy-only unpickler; a released checkpoint must
    # fit the model exactly (strict shapes)
    Mask2FormerCheckpointer(model, strict_shapes=trained).load(cfg.MODEL.WEIGHTS)
    return model
