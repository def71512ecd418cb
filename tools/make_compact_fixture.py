#!/usr/bin/env python
"""Reduce a full parity fixture of the original implementation to a compact one.

usage:
    python tools/make_compact_fixture.py FULL.pt -o tests/fixtures/NAME.npz [--image IMAGE]

FULL.pt is a full-size reference fixture made by the original code (e.g.
parity_coco_panoptic_r50.pt; tests/fixtures/README.md says which). The compact file keeps what
``tools/parity_check.py`` compares, reduced by ``mask2former.utils.parity.reduce_fixture`` (the
same function the check applies to this project's outputs), in a compressed ``.npz`` that loads
with numpy alone (no pickle). IMAGE is the image the fixture was made from (default: the COCO
sample 000000439180.jpg shipped in datasets/samples/); its name and SHA-256 are recorded so that
the check can tell when it is given another one.
"""

import argparse
import hashlib
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from mask2former.utils.parity import (  # noqa: E402
    ReductionSpec,
    load_fixture,
    reduce_fixture,
    save_compact,
)

DEFAULT_IMAGE = os.path.join("datasets", "samples", "coco_panoptic_sample", "input_images",
                             "000000439180.jpg")


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _shown(path: str) -> str:
    """``path`` as recorded in the fixture: relative paths as given, absolute ones relative to
    the repository when inside it, else the file name."""
    if not os.path.isabs(path):
        return path
    rel = os.path.relpath(path, REPO)
    return os.path.basename(path) if rel.startswith("..") else rel


def make_compact(full_path: str, out_path: str, image: str = DEFAULT_IMAGE,
                 spec: ReductionSpec = ReductionSpec()) -> dict:
    """Write the compact fixture of ``full_path`` to ``out_path``; returns its flat dict."""
    if not full_path.endswith(".pt"):
        raise ValueError(f"{full_path}: expected a full fixture (.pt)")
    if not out_path.endswith(".npz"):
        raise ValueError(f"{out_path}: the compact fixture must be a .npz file")
    image_abs = image if os.path.isabs(image) else os.path.join(REPO, image)
    if not os.path.isfile(image_abs):
        raise FileNotFoundError(f"image {image_abs!r} (the one the fixture was made from) not found")
    full = load_fixture(full_path)
    if "reduction" in full:
        raise ValueError(f"{full_path} is already compact")
    compact = reduce_fixture(full, spec)
    compact["source"] = {
        "fixture": os.path.basename(full_path),
        "fixture_sha256": sha256(full_path),
        "image": _shown(image_abs),
        "image_sha256": sha256(image_abs),
        "command": f"python tools/make_compact_fixture.py {_shown(full_path)} -o {_shown(out_path)}",
    }
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    save_compact(out_path, compact)
    return compact


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("full", help="full fixture (.pt) made by the original implementation")
    p.add_argument("-o", "--output", required=True, help="compact fixture to write (.npz)")
    p.add_argument("--image", default=DEFAULT_IMAGE,
                   help="image the fixture was made from (default: %(default)s)")
    args = p.parse_args(argv)
    make_compact(args.full, args.output, args.image)
    size = os.path.getsize(args.output)
    print(f"{args.output}: {size / 1e6:.2f} MB (from {os.path.getsize(args.full) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
