"""Checks that turn bad configurations into errors that say what to change."""
import difflib
import logging
import os
from typing import Iterable, List, Optional, Sequence

from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog

__all__ = ["ConfigError", "merge_config_checked", "check_num_classes", "expected_num_classes"]

logger = logging.getLogger(__name__)

# Mappers whose targets are the dataset's thing classes only; all others use stuff_classes
# (which in this project's panoptic metadata cover every class).
_INSTANCE_MAPPERS = ("mask_former_instance", "coco_instance_lsj")


class ConfigError(ValueError):
    """A config value is wrong; the message says which key to change and to what."""


def _all_keys(cfg: CfgNode, prefix: str = "") -> List[str]:
    keys = []
    for k, v in cfg.items():
        full = f"{prefix}{k}"
        keys.append(full)
        if isinstance(v, CfgNode):
            keys.extend(_all_keys(v, full + "."))
    return keys


def _unknown_key_message(cfg: CfgNode, err: Exception, source: str) -> Optional[str]:
    text = str(err.args[0]) if err.args else ""
    # merge_from_file raises KeyError("Non-existent config key: X"), merge_from_list an
    # AssertionError("Non-existent key: X")
    for marker in ("Non-existent config key: ", "Non-existent key: "):
        if marker in text:
            break
    else:
        return None
    key = text.split(marker, 1)[1].strip().strip("'\"")
    candidates = _all_keys(cfg)
    close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.85)
    if not close:  # compare the last component only, within any node
        last = key.rsplit(".", 1)[-1]
        close = [c for c in candidates
                 if c.rsplit(".", 1)[-1] in difflib.get_close_matches(
                     last, [x.rsplit(".", 1)[-1] for x in candidates], n=3, cutoff=0.75)][:3]
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    return (f"Unknown config key {key} (in {source}).{hint} Fix or remove it; if it is a "
            f"Mask2Former key, make sure add_maskformer2_config(cfg) runs before the merge.")


def merge_config_checked(cfg: CfgNode, config_file: Optional[str] = None,
                         opts: Sequence[str] = ()) -> CfgNode:
    """``cfg.merge_from_file(config_file)`` then ``cfg.merge_from_list(opts)`` with clear errors.

    Raises:
        ConfigError: for an unknown key (with close matches), a missing file, or an odd
            number of ``opts`` / a type mismatch.
    """
    if config_file:
        if not os.path.isfile(config_file) and "://" not in config_file:
            raise ConfigError(f"Config file not found: {config_file}. Pass --config-file with a "
                              f"path such as configs/coco/panoptic/r50.yaml.")
        try:
            cfg.merge_from_file(config_file)
        except KeyError as e:
            msg = _unknown_key_message(cfg, e, config_file)
            if msg is None:
                raise
            raise ConfigError(msg) from None
        except ValueError as e:  # yacs type mismatch
            raise ConfigError(f"Bad value in {config_file}: {e}") from None
        except FileNotFoundError as e:  # e.g. a missing _BASE_ file
            raise ConfigError(f"{config_file} refers to a file that does not exist: "
                              f"{e.filename}") from None
    opts = list(opts or [])
    if opts:
        if len(opts) % 2:
            raise ConfigError(f"Command-line overrides must be KEY VALUE pairs; got an odd number "
                              f"of items: {opts}")
        try:
            cfg.merge_from_list(opts)
        except (KeyError, AssertionError) as e:
            msg = _unknown_key_message(cfg, e, "the command-line overrides")
            if msg is None:
                raise
            raise ConfigError(msg) from None
        except ValueError as e:  # yacs type mismatch
            raise ConfigError(f"Bad command-line override: {e}") from None
    return cfg


def expected_num_classes(cfg: CfgNode, dataset_name: str) -> Optional[int]:
    """Number of classes the model needs for ``dataset_name``, or None if metadata is silent."""
    meta = MetadataCatalog.get(dataset_name)
    mapper = cfg.INPUT.get("DATASET_MAPPER_NAME", "")
    if mapper in _INSTANCE_MAPPERS:
        classes = getattr(meta, "thing_classes", None)
    else:
        classes = getattr(meta, "stuff_classes", None)
        if classes is None:
            classes = getattr(meta, "thing_classes", None)
    return None if classes is None else len(classes)


def check_num_classes(cfg: CfgNode, dataset_names: Optional[Iterable[str]] = None) -> None:
    """Raise :class:`ConfigError` if MODEL.SEM_SEG_HEAD.NUM_CLASSES disagrees with the metadata.

    Args:
        dataset_names: defaults to DATASETS.TRAIN + DATASETS.TEST.
    """
    if dataset_names is None:
        dataset_names = list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST)
    have = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
    for name in dataset_names:
        want = expected_num_classes(cfg, name)
        if want is None:
            logger.debug("Dataset %s has no class list in its metadata; not checked.", name)
            continue
        if want != have:
            raise ConfigError(
                f"MODEL.SEM_SEG_HEAD.NUM_CLASSES is {have} but dataset '{name}' has {want} "
                f"classes (metadata of mapper '{cfg.INPUT.get('DATASET_MAPPER_NAME', '')}'). Set "
                f"MODEL.SEM_SEG_HEAD.NUM_CLASSES {want}, or use a dataset with {have} classes.")
