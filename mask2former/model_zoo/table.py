"""The model-zoo table (``model_zoo.json`` beside this file) as Python objects.

Each released model is a :class:`ZooModel` named like its config below ``configs/``:
``"coco/panoptic/swin_l"`` is ``configs/coco/panoptic/swin_l.yaml``, ``"youtubevis_2019/r50"``
is ``configs/youtubevis_2019/r50.yaml``. The ImageNet initialisations the configs start
training from are :class:`BackboneWeights`.
"""
import difflib
import functools
import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .errors import UnknownModelError

__all__ = [
    "TABLE_PATH",
    "REPO_ROOT",
    "ZooModel",
    "BackboneWeights",
    "load_table",
    "list_models",
    "find_model",
    "find_model_by_url",
    "backbone_weights",
    "normalize_name",
]

TABLE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model_zoo.json")
# the checkout (or editable install) the package lives in: configs/ is beside mask2former/
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass(frozen=True)
class ZooModel:
    """One released model.

    Attributes:
        name: ``<dataset>/<task>/<backbone>`` (image) or ``<dataset>/<backbone>`` (video).
        config: our config file, relative to the repository root.
        kind: "image", "video" or "maskformer_v1".
        metrics: the published metrics, column name -> value as printed in the original table.
        url: the released checkpoint; its file name is ``model_final_<md5_prefix>.pkl``.
        md5_prefix: the first 6 hex digits of the checkpoint's md5.
        original_config: the config path in the original repository.
        params_m: parameters of ``build_model(config)`` in millions (None if not counted).
        notes: remarks on the copied facts (e.g. a cell of the original table that is wrong).
    """

    name: str
    config: str
    kind: str
    dataset: str
    task: str
    backbone: str
    backbone_name: str
    queries: int
    schedule: str
    metrics: Dict[str, str]
    model_id: str
    url: str
    md5_prefix: str
    original_config: str
    params_m: Optional[float] = None
    notes: Tuple[str, ...] = field(default_factory=tuple)

    @property
    def weights(self) -> str:
        """The value of MODEL.WEIGHTS that loads this model: ``mask2former://<name>``."""
        return f"mask2former://{self.name}"

    @property
    def config_path(self) -> str:
        """Absolute path of the config file."""
        return os.path.join(REPO_ROOT, self.config)

    def headline(self) -> str:
        """E.g. ``COCO panoptic, R50, PQ 51.9``: the first published metric."""
        metric, value = next(iter(self.metrics.items()))
        return f"{self.dataset} {self.task}, {self.backbone_name}, {metric} {value}"


@dataclass(frozen=True)
class BackboneWeights:
    """An ImageNet initialisation of the backbone (the start of training, not a trained model).

    Attributes:
        file: the file name the configs put in MODEL.WEIGHTS (e.g. ``R-101.pkl``).
        backbones: our backbone keys (``r50``, ``swin_l``, ...) whose configs use it.
        weights: the MODEL.WEIGHTS value when it is downloadable (``detectron2://...``), else "".
        url: where ``weights`` downloads from, else "".
        source_url: the publisher's file to convert, else "".
        convert: the command that converts ``source_url`` into ``file``, else "".
    """

    name: str
    file: str
    backbones: Tuple[str, ...]
    description: str
    weights: str = ""
    url: str = ""
    source_url: str = ""
    convert: str = ""


@functools.lru_cache(maxsize=None)
def load_table() -> dict:
    """The raw JSON table (cached; do not mutate)."""
    with open(TABLE_PATH, encoding="utf-8") as f:
        return json.load(f)


def _model(row: dict) -> ZooModel:
    row = dict(row)
    row["notes"] = tuple(row.get("notes", ()))
    row["metrics"] = dict(row["metrics"])
    return ZooModel(**row)


@functools.lru_cache(maxsize=None)
def _models() -> Tuple[ZooModel, ...]:
    table = load_table()
    rows = list(table["models"]) + list(table.get("maskformer_v1", {}).get("models", []))
    return tuple(_model(r) for r in rows)


def list_models(kind: Optional[str] = None) -> List[ZooModel]:
    """Every released model in table order, or those of one ``kind`` ("image", "video", ...)."""
    return [m for m in _models() if kind is None or m.kind == kind]


def normalize_name(name: str) -> str:
    """Accept ``coco/panoptic/r50``, ``configs/coco/panoptic/r50.yaml`` or ``mask2former://...``."""
    name = name.strip()
    for prefix in ("mask2former://", "configs/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
    if name.endswith(".yaml"):
        name = name[: -len(".yaml")]
    return name.strip("/")


def find_model(name: str) -> ZooModel:
    """The zoo entry called ``name`` (see :func:`normalize_name`).

    Raises:
        UnknownModelError: with the closest names.
    """
    key = normalize_name(name)
    for m in _models():
        if m.name == key:
            return m
    names = [m.name for m in _models()]
    close = difflib.get_close_matches(key, names, n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise UnknownModelError(
        f"'{name}' is not a model of the Mask2Former model zoo.{hint} The names are "
        f"<dataset>/<task>/<backbone> as below configs/ (e.g. coco/panoptic/r50); "
        f"mask2former.model_zoo.list_models() and MODEL_ZOO.md list them all.")


def find_model_by_url(url: str) -> Optional[ZooModel]:
    """The zoo entry whose checkpoint is ``url``, or None."""
    for m in _models():
        if m.url == url:
            return m
    return None


@functools.lru_cache(maxsize=None)
def backbone_weights() -> Tuple[BackboneWeights, ...]:
    """The backbone initialisations, in table order."""
    out = []
    for row in load_table()["backbone_weights"]:
        row = dict(row)
        row["backbones"] = tuple(row["backbones"])
        out.append(BackboneWeights(**row))
    return tuple(out)
