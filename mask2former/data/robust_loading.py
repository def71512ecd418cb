"""Robust reading of training/evaluation samples.

* :func:`read_image` — drop-in for ``detectron2.data.detection_utils.read_image`` that converts
  16-bit and 32-bit integer images to 8 bits by scaling (Pillow's own conversion clips them to
  white), converts grayscale / palette / RGBA / CMYK images to the requested format, applies EXIF
  orientation, and turns unreadable or truncated files into :class:`BadSampleError` naming the
  file (Pillow would otherwise return a partially decoded image for some truncated files only
  when ``LOAD_TRUNCATED_IMAGES`` is set, and raise assorted exception types otherwise).
  Label maps (``format=None``) keep their values: 16-bit labels (ADE20K-full) stay exact.
* :func:`sanitize_annotations` — drops polygons with fewer than 3 points, odd length or
  non-finite coordinates, clips coordinates to the image, drops instances with zero area,
  RLEs of another image size and boxes with non-finite values; reports what it dropped.
* :class:`RobustDatasetMapper` — wraps any dataset mapper: sanitises annotations (per frame for
  videos), turns a sample that fails with a *data fault* (`DATA_FAULTS`: an unreadable, truncated
  or missing file, an annotation inconsistent with its image) into a skipped one (``None``;
  Detectron2's training loader then draws another) with a warning naming the file and the reason,
  logs a summary every ``summary_period`` skips, and stops with an error if
  ``max_consecutive_failures`` samples fail in a row (that is a wrong dataset root, not a few bad
  files). Any other exception (a TypeError, KeyError or shape error in a mapper: a bug) is not
  caught: it stops training on its first occurrence.
* Skips are also appended to a JSON-lines file (``MASK2FORMER_SKIP_LOG``, set by
  :func:`set_skip_log`) so the main process can summarise skips made in loader workers
  (:func:`summarize_skip_log`).
"""
import json
import logging
import math
import os
import threading
import time
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from detectron2.data.detection_utils import SizeMismatchError
from PIL import Image, ImageFile

__all__ = [
    "BadSampleError",
    "DATA_FAULTS",
    "read_image",
    "read_label_map",
    "sanitize_annotations",
    "RobustDatasetMapper",
    "SKIP_LOG_ENV",
    "set_skip_log",
    "record_skip",
    "read_skip_log",
    "summarize_skip_log",
]

logger = logging.getLogger(__name__)

SKIP_LOG_ENV = "MASK2FORMER_SKIP_LOG"


class BadSampleError(ValueError):
    """A data fault: a sample's file is unreadable, truncated or missing, or its annotation is
    inconsistent with its image. ``file_name`` names the file ("" when the raiser does not know
    it; `RobustDatasetMapper` then names the sample)."""

    def __init__(self, file_name: str, reason: str):
        super().__init__(f"{file_name}: {reason}")
        self.file_name = file_name
        self.reason = reason


# The exceptions that mean "this sample's data is bad" (skipped by RobustDatasetMapper); every
# other exception is a bug and propagates. Detectron2's check_image_size raises SizeMismatchError
# when an image disagrees with the size its annotations record.
DATA_FAULTS = (BadSampleError, SizeMismatchError)


# ----------------------------------------------------------------------------- images
_INT_MODES_16 = ("I;16", "I;16B", "I;16L", "I;16N")


def _to_8bit(image: Image.Image, file_name: str) -> Image.Image:
    """Scale high-bit-depth single-channel images to 8-bit "L" (value * 255 / max_of_depth)."""
    if image.mode in _INT_MODES_16 or image.mode == "I":
        arr = np.asarray(image).astype(np.int64)
        # "I" is how Pillow opens 16-bit PNGs in some versions; values beyond 16 bits mean 32-bit
        depth_max = 65535 if image.mode in _INT_MODES_16 or arr.max(initial=0) <= 65535 else \
            (1 << 32) - 1
        arr = np.clip(arr, 0, depth_max)
        out = (arr * 255 + depth_max // 2) // depth_max
        return Image.fromarray(out.astype(np.uint8), mode="L")
    if image.mode == "F":
        arr = np.asarray(image, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise BadSampleError(file_name, "float image contains NaN/Inf")
        hi = 1.0 if arr.max(initial=0.0) <= 1.0 else 255.0
        out = np.clip(np.rint(arr / hi * 255.0), 0, 255)
        return Image.fromarray(out.astype(np.uint8), mode="L")
    return image


def _load_pil(file_name: str) -> Image.Image:
    from detectron2.data.detection_utils import _apply_exif_orientation
    from detectron2.utils.file_io import PathManager

    if ImageFile.LOAD_TRUNCATED_IMAGES:
        logger.warning("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set: truncated images are not "
                       "detected and will be used partially grey.")
    try:
        with PathManager.open(file_name, "rb") as f:
            image = Image.open(f)
            image.load()  # decode now, inside the try: truncation errors surface here
    except FileNotFoundError:
        raise BadSampleError(file_name, "file not found") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        # UnidentifiedImageError/"image file is truncated" are OSError; broken PNG chunks
        # raise SyntaxError; some decoders raise ValueError/EOFError.
        raise BadSampleError(file_name, f"unreadable image ({type(e).__name__}: {e})") from None
    return _apply_exif_orientation(image)


def read_image(file_name: str, format: Optional[str] = None) -> np.ndarray:
    """Read an image like Detectron2's ``read_image`` but robustly (see the module docstring).

    Args:
        file_name: path (any PathManager path).
        format: "RGB", "BGR", "L", other PIL modes, or None to keep the stored values (label
            maps: 8/16-bit integers are returned unchanged, e.g. uint16 for 16-bit PNGs).
    Returns:
        HWC uint8 array for a colour format, HW1 for "L", the raw array for None.
    Raises:
        BadSampleError: unreadable, truncated, empty or undecodable file.
    """
    from detectron2.data.detection_utils import convert_PIL_to_numpy

    image = _load_pil(file_name)
    if image.width == 0 or image.height == 0:
        raise BadSampleError(file_name, f"empty image ({image.width}x{image.height})")
    if format is None:
        arr = np.asarray(image)
        if image.mode in _INT_MODES_16:
            arr = arr.astype(np.uint16)
        return arr
    if image.mode in _INT_MODES_16 + ("I", "F"):
        image = _to_8bit(image, file_name)
    elif image.mode in ("P", "PA") and "transparency" in image.info:
        image = image.convert("RGBA")  # palette transparency: avoid Pillow's warning path
    # RGBA/LA: the colour channels are the image; alpha is dropped by the conversion below.
    return convert_PIL_to_numpy(image, format)


def read_label_map(file_name: str, image: np.ndarray, image_file: str,
                   format: Optional[str] = None) -> np.ndarray:
    """Read the label map ``file_name`` (semantic PNG, panoptic PNG) of the image ``image`` (read
    from ``image_file``) with `read_image`, checking that both have the same height and width.

    Raises:
        BadSampleError: an unreadable label file (naming it), or a size that differs from the
            image's (naming the sample's image, with the label file in the reason).
    """
    label = read_image(file_name, format=format)
    if label.shape[:2] != image.shape[:2]:
        raise BadSampleError(
            image_file, f"image is {image.shape[1]}x{image.shape[0]} but its label map "
            f"{file_name} is {label.shape[1]}x{label.shape[0]} (width x height)")
    return label


# ----------------------------------------------------------------------------- annotations
def _polygon_area(poly: np.ndarray) -> float:
    x, y = poly[0::2], poly[1::2]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def sanitize_annotations(annos: Sequence[Dict[str, Any]], height: int, width: int
                         ) -> Tuple[List[Dict[str, Any]], List[str]]:
    """Clean COCO-style instance annotations of one image.

    Returns:
        (annotations to keep (copies when changed), list of human-readable problems).
    """
    kept, problems = [], []
    for i, anno in enumerate(annos):
        anno = dict(anno)
        segm = anno.get("segmentation")
        if isinstance(segm, list):
            polys = []
            for p in segm:
                arr = np.asarray(p, dtype=np.float64).reshape(-1)
                if arr.size < 6 or arr.size % 2:
                    problems.append(f"annotation {i}: polygon with {arr.size} coordinates dropped")
                    continue
                if not np.isfinite(arr).all():
                    problems.append(f"annotation {i}: polygon with NaN/Inf dropped")
                    continue
                clipped = arr.copy()
                clipped[0::2] = np.clip(arr[0::2], 0, width)
                clipped[1::2] = np.clip(arr[1::2], 0, height)
                if not np.array_equal(clipped, arr):
                    problems.append(f"annotation {i}: polygon clipped to the image")
                if _polygon_area(clipped) <= 0:
                    problems.append(f"annotation {i}: zero-area polygon dropped")
                    continue
                polys.append(clipped.tolist())
            if not polys and segm:
                problems.append(f"annotation {i}: no valid polygon left; instance dropped")
                continue
            if segm:
                anno["segmentation"] = polys
        elif isinstance(segm, dict) and "size" in segm:
            if list(segm["size"]) != [height, width]:
                problems.append(f"annotation {i}: RLE of size {segm['size']} for a "
                                f"{height}x{width} image; instance dropped")
                continue
        bbox = anno.get("bbox")
        if bbox is not None and not all(math.isfinite(float(v)) for v in bbox):
            problems.append(f"annotation {i}: non-finite bbox; instance dropped")
            continue
        kept.append(anno)
    return kept, problems


# ----------------------------------------------------------------------------- skip records
_lock = threading.Lock()


def set_skip_log(path: Optional[str]) -> None:
    """Append skip records to ``path`` (JSON lines) from this process and its loader workers."""
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        os.environ[SKIP_LOG_ENV] = path
    else:
        os.environ.pop(SKIP_LOG_ENV, None)


def record_skip(file_name: str, reason: str, split: str = "train") -> None:
    """Append one skip record (a single O_APPEND write, safe across worker processes)."""
    path = os.environ.get(SKIP_LOG_ENV)
    if not path:
        return
    line = json.dumps({"time": time.time(), "pid": os.getpid(), "split": split,
                       "file": file_name, "reason": reason}) + "\n"
    with _lock:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)


def read_skip_log(path: Optional[str] = None, split: Optional[str] = None) -> List[dict]:
    path = path or os.environ.get(SKIP_LOG_ENV)
    if not path or not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill: ignore it
                continue
            if split is None or rec.get("split") == split:
                out.append(rec)
    return out


def summarize_skip_log(path: Optional[str] = None, split: Optional[str] = None,
                       max_files: int = 20) -> str:
    """One paragraph: how many samples were skipped, which files, why."""
    recs = read_skip_log(path, split)
    if not recs:
        return f"No {split + ' ' if split else ''}samples were skipped."
    files = Counter(r["file"] for r in recs)
    reasons = {r["file"]: r["reason"] for r in recs}
    lines = [f"{len(recs)} {split + ' ' if split else ''}sample load(s) skipped, "
             f"{len(files)} distinct file(s):"]
    for f, n in files.most_common(max_files):
        lines.append(f"  {f} (x{n}): {reasons[f]}")
    if len(files) > max_files:
        lines.append(f"  ... and {len(files) - max_files} more")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- mapper wrapper
def _sample_name(d: Dict[str, Any]) -> str:
    """The file that names a sample: its image, or the first frame of a video."""
    if "file_name" in d:
        return str(d["file_name"])
    if d.get("file_names"):
        return str(d["file_names"][0])
    return str(d.get("image_id", d.get("video_id", "<unknown sample>")))


class RobustDatasetMapper:
    """Wrap ``mapper`` so that bad samples are skipped with a warning instead of crashing.

    Args:
        mapper: callable dataset_dict -> dict (a Detectron2 dataset mapper).
        skip: if False, only sanitise annotations and re-raise errors with the file name.
        split: "train" / "test", stored in skip records.
        summary_period: log a summary every this many skips (per process).
        max_consecutive_failures: raise after this many failures in a row.
    """

    def __init__(self, mapper, *, skip: bool = True, split: str = "train",
                 summary_period: int = 100, max_consecutive_failures: int = 50):
        self.mapper = mapper
        self.skip = skip
        self.split = split
        self.summary_period = max(int(summary_period), 1)
        self.max_consecutive_failures = max_consecutive_failures
        self.skipped: Counter = Counter()
        self.n_skipped = 0
        self._consecutive = 0

    def __repr__(self):
        return f"RobustDatasetMapper({self.mapper!r})"

    def __getattr__(self, name):  # expose the wrapped mapper's attributes (e.g. augmentations)
        if name == "mapper":
            raise AttributeError(name)
        return getattr(self.mapper, name)

    def __call__(self, dataset_dict: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        name = _sample_name(dataset_dict)
        if "annotations" in dataset_dict and "height" in dataset_dict and "width" in dataset_dict:
            h, w = dataset_dict["height"], dataset_dict["width"]
            annos = dataset_dict["annotations"]
            if "file_names" in dataset_dict:  # a video: one list of annotations per frame
                cleaned = [sanitize_annotations(frame, h, w) for frame in annos]
                annos = [kept for kept, _ in cleaned]
                problems = [f"frame {t}: {p}" for t, (_, ps) in enumerate(cleaned) for p in ps]
            else:
                annos, problems = sanitize_annotations(annos, h, w)
            if problems:
                logger.warning("%s: %s", name, "; ".join(problems))
                dataset_dict = dict(dataset_dict, annotations=annos)
        try:
            out = self.mapper(dataset_dict)
        except DATA_FAULTS as e:
            self._consecutive += 1
            if isinstance(e, BadSampleError):
                name, reason = e.file_name or name, e.reason
            else:
                reason = f"{type(e).__name__}: {e}"
            if not self.skip:
                raise BadSampleError(name, reason) from e
            if self._consecutive >= self.max_consecutive_failures:
                raise RuntimeError(
                    f"{self._consecutive} samples in a row failed to load (last: {name}: "
                    f"{reason}). This is not a few bad files: check the dataset root "
                    f"($DETECTRON2_DATASETS), INPUT.DATASET_MAPPER_NAME and the dataset format."
                ) from e
            self.n_skipped += 1
            self.skipped[name] += 1
            record_skip(name, reason, self.split)
            # warn once per file and worker; repeats (next epochs) only count in the summaries
            logger.log(logging.WARNING if self.skipped[name] == 1 else logging.DEBUG,
                       "Skipping sample %s: %s", name, reason)
            if self.n_skipped % self.summary_period == 0:
                logger.warning("%d %s samples skipped so far in this worker (%d distinct): %s",
                               self.n_skipped, self.split, len(self.skipped),
                               ", ".join(f for f, _ in self.skipped.most_common(10)))
            return None
        self._consecutive = 0
        return out
