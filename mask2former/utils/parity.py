"""Reference fixtures of the original implementation: loading, reduction, comparison.

A *fixture* holds the outputs of the original Mask2Former / MaskFormer code for one model with
the weights of :func:`mask2former.utils.testing.deterministic_init_`, on one image (or clip). It
exists in two layouts, both loaded by :func:`load_fixture` into one flat ``dict``:

* **full** (``*.pt``, made by the original code): every output at full size.
* **compact** (``*.npz``, ``tools/make_compact_fixture.py``): what :func:`reduce_fixture` keeps of
  a full one (a few hundred kB instead of tens of MB):

  ==========================  ===================================================================
  full key                    compact keys
  ==========================  ===================================================================
  pred_logits                 unchanged
  pred_masks                  ``pred_masks@queries``: the queries `ReductionSpec.queries` in
                              full; ``pred_masks@proj`` [Q, k]: every query's mask (flattened)
                              projected on k pseudo-random +-1 directions (`rademacher`);
                              ``pred_masks@shape``: the full shape
  aux0_pred_masks             the same (``aux0_pred_masks@queries``, ``@proj``)
  backbone.<res>              the same over channels (``@channels``, ``@proj``) [C, k]
  sem_seg_sample(_index)      the first `ReductionSpec.sem_seg_samples` sampled pixels
  instances.pred_masks        ``instances.pred_masks@rle``: COCO RLEs; instances sorted by score
  inference.pred_masks        ``inference.pred_masks@rle``: per track, one COCO RLE per frame
  everything else             unchanged (argmax / panoptic maps, segments_info, scores, ...)
  ==========================  ===================================================================

The same :func:`reduce_fixture` is applied to this project's outputs before they are compared
with a compact fixture, so that both sides go through one code path; :func:`compare` then
checks either layout with the tolerances of the full-size check.

Keys of a flat fixture: arrays are ``numpy.ndarray``; the rest (``opts``, ``segments_info``,
RLEs, clip geometry, ``reduction``, ...) are JSON-compatible values.
"""

import functools
import json
import math
import os
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

__all__ = [
    "COMPACT_FORMAT", "ReductionSpec", "rademacher", "project", "rle_encode", "rle_decode",
    "load_fixture", "save_compact", "flatten_full", "reduce_fixture", "compare", "fixture_kind",
    "tolerance",
]

COMPACT_FORMAT = "mask2former-parity-compact/1"

Check = Tuple[str, bool, str]  # (name, agrees, detail)

# relative-error tolerances (same as the full-size check of the original fixtures); outputs the
# fixtures store in fp16 (auxiliary masks, backbone maps) are rounded to fp16 on both sides
TOL_DEFAULT = 1e-4
TOL_FP16 = 2e-3
MIN_PIXEL_AGREEMENT = 0.999
# greedy matching of video tracks: same label and a score within this
VIDEO_SCORE_MATCH = 1e-3


def tolerance(key: str) -> float:
    """Relative-error tolerance of a dense output (``key`` without its ``@...`` suffix)."""
    base = key.split("@")[0]
    return TOL_FP16 if base.startswith(("aux0_pred_masks", "backbone.")) else TOL_DEFAULT


# --------------------------------------------------------------------------- reduction


@dataclass(frozen=True)
class ReductionSpec:
    """How a full fixture is reduced (stored in the compact file as ``reduction``).

    queries: indices of the queries whose mask logits are kept in full.
    channels: indices of the backbone channels kept in full.
    directions: k, the number of +-1 projection directions (see `rademacher`).
    seed: the projection directions' seed.
    sem_seg_samples: how many of the sampled sem_seg pixels are kept (the first ones).
    """

    queries: Tuple[int, ...] = (0, 13, 42, 77, 99)
    channels: Tuple[int, ...] = (0, 17, 42, 95)
    directions: int = 32
    seed: int = 12
    sem_seg_samples: int = 256

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "ReductionSpec":
        return cls(queries=tuple(d["queries"]), channels=tuple(d["channels"]),
                   directions=int(d["directions"]), seed=int(d["seed"]),
                   sem_seg_samples=int(d["sem_seg_samples"]))

    def to_json(self) -> Dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


@functools.lru_cache(maxsize=8)
def rademacher(k: int, n: int, seed: int) -> np.ndarray:
    """The [k, n] matrix of +-1 used for projections; numpy only, nothing stored.

    Entry (j, i) is the sign of the splitmix64 finaliser of
    ``z = ((j << 32) | i) + seed * 0x9E3779B97F4A7C15  (mod 2**64)``::

        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB
        z =  z ^ (z >> 31)
        entry = +1 if the top bit of z is set else -1

    (all arithmetic in unsigned 64 bits, wrapping). Requires n < 2**32 and k < 2**31.
    """
    if not (0 < n < 2**32 and 0 < k < 2**31):
        raise ValueError(f"rademacher: need 0 < n < 2**32 and 0 < k < 2**31, got n={n}, k={k}")
    j = np.arange(k, dtype=np.uint64)[:, None]
    i = np.arange(n, dtype=np.uint64)[None, :]
    z = (j << np.uint64(32)) | i
    z = z + np.uint64((seed * _GOLDEN) & _MASK64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    out = np.where((z >> np.uint64(63)).astype(bool), 1.0, -1.0)
    out.setflags(write=False)
    return out


def project(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Project the rows of ``x`` [m, ...] (each flattened row-major to n values) on the k
    directions of ``rademacher(k, n, seed)``, scaled by 1/sqrt(k): [m, k] float32 (computed in
    float64). The expected squared norm of a projected row is that of the row."""
    x = np.asarray(x, dtype=np.float64).reshape(x.shape[0], -1)
    n = x.shape[1]
    return (x @ rademacher(k, n, seed).T / math.sqrt(k)).astype(np.float32)


def rle_encode(mask: np.ndarray) -> Dict[str, Any]:
    """COCO RLE of a [H, W] boolean mask, ``{"size": [H, W], "counts": str}``."""
    from pycocotools import mask as mask_util

    rle = mask_util.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rle_decode(rle: Dict[str, Any]) -> np.ndarray:
    """The [H, W] boolean mask of a COCO RLE made by `rle_encode`."""
    from pycocotools import mask as mask_util

    return mask_util.decode({"size": list(rle["size"]),
                             "counts": rle["counts"].encode("ascii")}).astype(bool)


def _sort_by_score(scores: np.ndarray) -> np.ndarray:
    """Indices ordering ``scores`` from highest to lowest (stable for ties)."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def reduce_fixture(full: Dict[str, Any], spec: ReductionSpec = ReductionSpec()) -> Dict[str, Any]:
    """The compact layout of a flat full-layout fixture (see the module docstring).

    Used both to make the compact files and, with the compact file's own ``reduction``, on this
    project's outputs before comparing with them.
    """
    out: Dict[str, Any] = {}
    for key, value in full.items():
        base = key
        if base in ("pred_masks", "aux0_pred_masks"):
            masks = np.asarray(value)  # [1, Q, ...]
            if masks.shape[0] != 1:
                raise ValueError(f"{key}: expected a batch of one, got shape {masks.shape}")
            q = masks.shape[1]
            bad = [i for i in spec.queries if not 0 <= i < q]
            if bad:
                raise ValueError(f"{key}: query indices {bad} out of range for {q} queries")
            out[f"{key}@queries"] = masks[0, list(spec.queries)]
            out[f"{key}@proj"] = project(masks[0], spec.directions, spec.seed)
            out[f"{key}@shape"] = list(masks.shape)
        elif base.startswith("backbone."):
            maps = np.asarray(value)  # [1, C, h, w]
            c = maps.shape[1]
            bad = [i for i in spec.channels if not 0 <= i < c]
            if bad:
                raise ValueError(f"{key}: channel indices {bad} out of range for {c} channels")
            out[f"{key}@channels"] = maps[0, list(spec.channels)]
            out[f"{key}@proj"] = project(maps[0], spec.directions, spec.seed)
            out[f"{key}@shape"] = list(maps.shape)
        elif key == "sem_seg_sample_index":
            out[key] = np.asarray(value)[: spec.sem_seg_samples]
        elif key == "sem_seg_sample":
            out[key] = np.asarray(value)[:, : spec.sem_seg_samples]
        elif key == "instances.pred_masks":
            continue  # below, with the scores
        elif key in ("instances.scores", "instances.pred_classes"):
            order = _sort_by_score(full["instances.scores"])
            out[key] = np.asarray(value)[order]
            if key == "instances.scores" and "instances.pred_masks" in full:
                masks = np.asarray(full["instances.pred_masks"])
                out["instances.pred_masks@rle"] = [rle_encode(masks[i]) for i in order]
        elif key == "inference.pred_masks":
            masks = np.asarray(value)  # [N, T, H, W]
            out["inference.pred_masks@rle"] = [[rle_encode(f) for f in track] for track in masks]
        else:
            out[key] = value
    out["reduction"] = spec.to_json()
    return out


# --------------------------------------------------------------------------- files


def _to_numpy(value):
    import torch

    if torch.is_tensor(value):
        return value.detach().cpu().numpy()
    return value


def _jsonable(value):
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def flatten_full(ref: Dict[str, Any]) -> Dict[str, Any]:
    """A full fixture as saved by the original code (nested dicts of tensors) -> flat dict of
    numpy arrays (``backbone.res2``, ``instances.scores``, ``inference.pred_masks``, ...) and
    JSON-compatible values."""
    flat: Dict[str, Any] = {}
    for key, value in ref.items():
        if isinstance(value, dict) and key in ("backbone", "instances", "inference"):
            for sub, v in value.items():
                flat[f"{key}.{sub}"] = _to_numpy(v)
        else:
            v = _to_numpy(value)
            flat[key] = v if isinstance(v, np.ndarray) else _jsonable(v)
    return flat


def load_fixture(path: str) -> Dict[str, Any]:
    """Load a full (``.pt``) or compact (``.npz``) fixture as a flat dict.

    A compact fixture has ``format`` == `COMPACT_FORMAT` and ``reduction``; a full one has
    neither.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"parity fixture {path!r} does not exist (the compact fixtures are in "
            f"tests/fixtures/; the full-size ones are not part of the repository)")
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as z:
            if "meta" not in z.files:
                raise ValueError(f"{path}: not a compact parity fixture (no 'meta' entry)")
            flat: Dict[str, Any] = json.loads(z["meta"].tobytes().decode("utf-8"))
            if flat.get("format") != COMPACT_FORMAT:
                raise ValueError(f"{path}: format {flat.get('format')!r}, expected "
                                 f"{COMPACT_FORMAT!r}; remake it with tools/make_compact_fixture.py")
            for name in z.files:
                if name != "meta":
                    flat[name] = z[name]
        return flat
    if path.endswith(".pt"):
        import torch

        return flatten_full(torch.load(path, map_location="cpu", weights_only=True))
    raise ValueError(f"{path}: a parity fixture is a .pt (full) or .npz (compact) file")


def save_compact(path: str, compact: Dict[str, Any]) -> None:
    """Write a compact fixture: arrays as compressed npz entries, the rest as JSON in ``meta``
    (UTF-8 bytes as a uint8 array, so that the file loads without pickle)."""
    arrays = {k: v for k, v in compact.items() if isinstance(v, np.ndarray)}
    meta = {k: _jsonable(v) for k, v in compact.items() if not isinstance(v, np.ndarray)}
    meta["format"] = COMPACT_FORMAT
    if "meta" in arrays:
        raise ValueError("'meta' is reserved in compact fixtures")
    text = json.dumps(meta, sort_keys=True).encode("utf-8")
    np.savez_compressed(path, meta=np.frombuffer(text, dtype=np.uint8), **arrays)


def fixture_kind(fx: Dict[str, Any]) -> str:
    """"video" (Mask2Former-VIS: has num_frames), "v1" (MaskFormer: has no_object_shift) or
    "image"."""
    if "num_frames" in fx:
        return "video"
    if "no_object_shift" in fx:
        return "v1"
    return "image"


# --------------------------------------------------------------------------- comparison


def _rel_err(got: np.ndarray, want: np.ndarray) -> float:
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-12))


def _close(name: str, got, want, tol: float) -> Check:
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return name, False, f"shape {got.shape} != {want.shape}"
    e = _rel_err(got, want)
    return name, bool(e <= tol), f"rel err {e:.2e} (tol {tol:.0e})"


def _agree(name: str, got, want) -> Check:
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return name, False, f"shape {got.shape} != {want.shape}"
    a = float((got == want).mean()) if want.size else 1.0
    return name, a >= MIN_PIXEL_AGREEMENT, f"{a:.4%} pixels agree"


def _masks(fx: Dict[str, Any], prefix: str) -> np.ndarray:
    """Boolean masks of ``prefix`` (``instances`` [N, H, W] or ``inference`` [N, T, H, W]) from
    either layout."""
    if f"{prefix}.pred_masks" in fx:
        return np.asarray(fx[f"{prefix}.pred_masks"]).astype(bool)
    rles = fx[f"{prefix}.pred_masks@rle"]
    if prefix == "instances":
        return np.stack([rle_decode(r) for r in rles]) if rles else np.zeros((0, 0, 0), bool)
    if not rles:
        return np.zeros((0, 0, 0, 0), bool)
    return np.stack([np.stack([rle_decode(r) for r in track]) for track in rles])


def _has_masks(fx: Dict[str, Any], prefix: str) -> bool:
    return f"{prefix}.pred_masks" in fx or f"{prefix}.pred_masks@rle" in fx


def _describe(key: str, fx: Dict[str, Any]) -> str:
    base, _, part = key.partition("@")
    if part == "queries":
        return f"{base}[queries {','.join(map(str, fx['reduction']['queries']))}]"
    if part == "channels":
        return f"{base}[channels {','.join(map(str, fx['reduction']['channels']))}]"
    if part == "proj":
        what = "channels" if base.startswith("backbone.") else "queries"
        return f"{base} (all {what} on {fx['reduction']['directions']} directions)"
    return base


_DENSE = ("pred_logits", "pred_masks", "aux0_pred_masks", "backbone.")


def compare(got: Dict[str, Any], want: Dict[str, Any]) -> List[Check]:
    """Compare this project's outputs ``got`` with the fixture ``want``, both flat and in the same
    layout (full, or compact through `reduce_fixture`); one (name, agrees, detail) per output
    the fixture holds."""
    checks: List[Check] = []

    def missing(name):
        checks.append((name, False, "not produced by this project's model"))

    # dense outputs: head and backbone
    def order(key):
        return next(i for i, p in enumerate(("backbone.",) + _DENSE) if key.startswith(p)), key

    dense = (k for k in want if k.startswith(_DENSE) and not k.endswith("@shape"))
    for key in sorted(dense, key=order):
        name = _describe(key, want)
        if key not in got:
            missing(name)
            continue
        shape_key = key.split("@")[0] + "@shape"  # a projection: the shape it was made from
        if shape_key in want and list(got.get(shape_key, [])) != list(want[shape_key]):
            checks.append((name, False, f"shape {tuple(got.get(shape_key, []))} != "
                                        f"{tuple(want[shape_key])}"))
            continue
        checks.append(_close(name, got[key], want[key], tolerance(key)))

    # semantic segmentation
    if "sem_seg_argmax" in want:
        if "sem_seg_argmax" not in got:
            missing("sem_seg argmax")
        else:
            checks.append(_agree("sem_seg argmax", got["sem_seg_argmax"], want["sem_seg_argmax"]))
    if "sem_seg_sample" in want:
        if "sem_seg_sample" not in got:
            missing("sem_seg values")
        elif not np.array_equal(got.get("sem_seg_sample_index"), want["sem_seg_sample_index"]):
            checks.append(("sem_seg values", False, "sampled at other pixels than the fixture"))
        else:
            checks.append(_close("sem_seg values", got["sem_seg_sample"], want["sem_seg_sample"],
                                 TOL_DEFAULT))

    # panoptic segmentation
    if "panoptic_seg" in want:
        if "panoptic_seg" not in got:
            missing("panoptic_seg")
        else:
            checks.append(_agree("panoptic_seg", got["panoptic_seg"], want["panoptic_seg"]))
    if "segments_info" in want:
        def norm(s):
            return sorted((int(d["id"]), bool(d["isthing"]), int(d["category_id"])) for d in s)

        if "segments_info" not in got:
            missing("segments_info")
        else:
            g, w = norm(got["segments_info"]), norm(want["segments_info"])
            checks.append(("segments_info", g == w, f"{len(g)} segments vs {len(w)}"
                           + ("" if g == w else f": {g} vs {w}")))

    # instance segmentation, sorted by score
    if "instances.scores" in want:
        if "instances.scores" not in got:
            missing("instances")
        else:
            checks.extend(_compare_instances(got, want))

    # video inference (top-k tracks, compared as a set)
    if "inference.pred_scores" in want:
        if "inference.pred_scores" not in got:
            missing("video inference")
        else:
            checks.extend(_compare_video(got, want))
    if not checks:
        checks.append(("fixture", False, "the fixture holds no output to compare"))
    return checks


def _compare_instances(got, want) -> List[Check]:
    og, ow = _sort_by_score(got["instances.scores"]), _sort_by_score(want["instances.scores"])
    sg, sw = np.asarray(got["instances.scores"])[og], np.asarray(want["instances.scores"])[ow]
    checks = [_close("instances.scores", sg, sw, TOL_DEFAULT)]
    cg = np.asarray(got["instances.pred_classes"])[og]
    cw = np.asarray(want["instances.pred_classes"])[ow]
    same = cg.shape == cw.shape and bool(np.array_equal(cg, cw))
    checks.append(("instances.pred_classes", same, f"{len(cg)} instances vs {len(cw)}"))
    if _has_masks(want, "instances"):
        if not _has_masks(got, "instances"):
            checks.append(("instances.pred_masks", False, "not produced by this project's model"))
        else:
            mg, mw = _masks(got, "instances")[og], _masks(want, "instances")[ow]
            checks.append(_agree("instances.pred_masks", mg, mw))
    return checks


def _compare_video(got, want) -> List[Check]:
    checks: List[Check] = []
    size_g, size_w = tuple(got["inference.image_size"]), tuple(want["inference.image_size"])
    checks.append(("image_size", size_g == size_w, f"{size_g} vs {size_w}"))
    sg = np.asarray(got["inference.pred_scores"], dtype=np.float64)
    sw = np.asarray(want["inference.pred_scores"], dtype=np.float64)
    lg = [int(x) for x in np.asarray(got["inference.pred_labels"])]
    lw = [int(x) for x in np.asarray(want["inference.pred_labels"])]
    checks.append(("top-k count", len(sg) == len(sw), f"{len(sg)} vs {len(sw)}"))
    mg, mw = _masks(got, "inference"), _masks(want, "inference")
    if len(sg) != len(sw) or mg.shape != mw.shape:
        checks.append(("pred_masks (T, H, W)", False, f"shape {mg.shape} vs {mw.shape}"))
        return checks
    checks.append(_close("pred_scores (sorted)", -np.sort(-sg), -np.sort(-sw), TOL_DEFAULT))
    checks.append(("pred_labels (multiset)", sorted(lg) == sorted(lw), f"{sorted(lg)} vs {sorted(lw)}"))
    # each reference track takes the unused prediction with its label and score that agrees best
    used, agreement = set(), []
    for j in range(len(sw)):
        cands = [i for i in range(len(sg)) if i not in used and lg[i] == lw[j]
                 and abs(sg[i] - sw[j]) < VIDEO_SCORE_MATCH]
        if not cands:
            agreement.append(0.0)
            continue
        scores = {i: float((mg[i] == mw[j]).mean()) for i in cands}
        best = max(cands, key=scores.get)
        used.add(best)
        agreement.append(scores[best])
    worst = min(agreement) if agreement else 1.0
    checks.append(("pred_masks (T, H, W)", worst >= MIN_PIXEL_AGREEMENT,
                   f"worst track {worst:.4%} pixels agree"))
    return checks


def summary(name: str, checks: Sequence[Check]) -> str:
    """The one-line summary of a parity run."""
    failed = [n for n, ok, _ in checks if not ok]
    return (f"parity {name}: {len(checks) - len(failed)}/{len(checks)} outputs agree"
            + (f"; differ: {', '.join(failed)}" if failed else ""))
