"""Helpers shared by the ``prepare_*.py`` scripts (not a dataset script itself)."""

import argparse
import multiprocessing as mp
import os
import sys
from typing import Callable, Iterable, List

from tqdm import tqdm

# The scripts are run as ``python datasets/prepare_x.py``: make the repository importable.
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def run_parallel(fn: Callable, items: Iterable, workers: int, desc: str) -> List:
    """``[fn(x) for x in items]`` over ``workers`` processes, in order, with a progress bar."""
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        return [fn(x) for x in tqdm(items, desc=desc, unit="img")]
    with mp.Pool(workers) as pool:
        return list(
            tqdm(pool.imap(fn, items, chunksize=4), total=len(items), desc=desc, unit="img")
        )


def list_files(folder: str, ext: str) -> List[str]:
    """Sorted file names (not paths) in ``folder`` ending with ``ext``; clear error if missing."""
    if not os.path.isdir(folder):
        sys.exit(f"error: expected folder '{folder}' does not exist (see datasets/README.md).")
    names = sorted(f for f in os.listdir(folder) if f.endswith(ext))
    if not names:
        sys.exit(f"error: no '*{ext}' files in '{folder}'.")
    return names


def ade20k_image_id(stem: str, index: int) -> int:
    """Integer image id of an ADE20K image: the number in ``ADE_val_00000001`` (else index+1)."""
    tail = stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else index + 1


def read_ade20k_instance_mapping(path: str):
    """ADE20K instance-category index (1..100) -> 0-based ADE20K-150 id.

    Reads ``categoryMapping.txt`` of the ADE20K instance annotations (a header line, then rows
    whose first two integers are ``instance_id scene_parsing_150_id`` with 1-based ids). If the
    file does not exist, the built-in order of the 100 instance classes (ascending ADE-150 id)
    is used, with a warning.
    """
    from mask2former.data.datasets.builtin_categories import ADE20K_INSTANCE_CATEGORIES

    if not os.path.isfile(path):
        print(
            f"warning: {path} not found; assuming instance category k is the k-th of the 100 "
            "ADE20K instance classes in ascending ADE-150 order.",
            file=sys.stderr,
        )
        return {k + 1: c["id"] for k, c in enumerate(ADE20K_INSTANCE_CATEGORIES)}
    mapping = {}
    with open(path) as f:
        for line in f:
            tokens = line.split()
            if len(tokens) < 2 or not (tokens[0].isdigit() and tokens[1].isdigit()):
                continue  # header / blank
            mapping[int(tokens[0])] = int(tokens[1]) - 1
    if not mapping:
        sys.exit(f"error: no 'instance_id semantic_id' rows in {path}.")
    return mapping


def parse_ade20k_instance_args(description: str, argv=None):
    """Command line of the ADE20K panoptic/instance converters.

    Returns (args with dataset_dir and workers, the instance category mapping read from
    --catid-mapping or DATASET_DIR/categoryMapping.txt)."""
    default_dir = os.path.join(os.getenv("DETECTRON2_DATASETS", "datasets"), "ADEChallengeData2016")
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dataset-dir", default=default_dir)
    parser.add_argument(
        "--catid-mapping", default=None, help="default: DATASET_DIR/categoryMapping.txt"
    )
    parser.add_argument("--workers", type=int, default=default_workers())
    args = parser.parse_args(argv)
    mapping = read_ade20k_instance_mapping(
        args.catid_mapping or os.path.join(args.dataset_dir, "categoryMapping.txt")
    )
    return args, mapping
