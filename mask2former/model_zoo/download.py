"""Download model-zoo files once into the fvcore/iopath cache, verified, resumable, offline-safe.

:func:`fetch` turns a URL under ``https://dl.fbaipublicfiles.com/`` into a local file:

* the file is cached at ``$FVCORE_CACHE/<path of the URL>`` (``~/.torch/iopath_cache`` when
  ``FVCORE_CACHE`` is unset), the place Detectron2's own URL handler uses, so a file it
  downloaded before is reused;
* released checkpoints (``.../maskformer/.../model_final_<md5[:6]>.pkl``, and every URL of the
  zoo table) are verified against the md5 prefix of their file name; a mismatch is refused with
  a one-line message and the bad file is deleted;
* a cached, verified file is returned without any network access (the verification is
  remembered in ``<file>.md5`` beside it, keyed on size and modification time);
* a transfer that breaks off is resumed with an HTTP ``Range`` request (or restarted when the
  server cannot resume) and retried up to :data:`MAX_ATTEMPTS` times in a row without progress;
* ``MASK2FORMER_ZOO_MIRROR`` (e.g. ``http://localhost:8000``), when set, replaces the
  ``https://dl.fbaipublicfiles.com`` prefix of the URL that is fetched; the cache path stays
  that of the original URL;
* every failure is a :class:`~mask2former.model_zoo.errors.ZooDownloadError` whose message is
  one line: the URL, the cause, and what to do (mirror, where to put the file, local file).
"""
import hashlib
import http.client
import json
import logging
import os
import re
import socket
import time
from typing import Optional
from urllib.error import HTTPError, URLError
from urllib.parse import urlparse
from urllib.request import Request, urlopen

from iopath.common.file_io import file_lock, get_cache_dir
from tqdm import tqdm

from .errors import ChecksumMismatchError, ZooDownloadError
from .table import find_model_by_url

__all__ = [
    "ZOO_HOST",
    "MIRROR_ENV",
    "MAX_ATTEMPTS",
    "RETRY_DELAY",
    "TIMEOUT",
    "fetch",
    "mirror_url",
    "cache_path",
    "expected_md5_prefix",
    "file_md5",
]

logger = logging.getLogger(__name__)

ZOO_HOST = "https://dl.fbaipublicfiles.com"
MIRROR_ENV = "MASK2FORMER_ZOO_MIRROR"
# Released checkpoints of Mask2Former / MaskFormer: the file name carries the md5 prefix.
_CHECKPOINT_URL = re.compile(
    re.escape(ZOO_HOST) + r"/maskformer/.*/model_final_(?P<md5>[0-9a-f]{6})\.pkl$")

MAX_ATTEMPTS = 5  # consecutive attempts without progress before giving up
RETRY_DELAY = 1.0  # seconds before the first retry, doubled after every failed attempt (<= 30)
TIMEOUT = 60.0  # seconds of silence from the server before an attempt fails
_CHUNK = 1 << 20


def mirror_url(url: str) -> str:
    """``url`` with ``https://dl.fbaipublicfiles.com`` replaced by ``$MASK2FORMER_ZOO_MIRROR``."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if mirror and url.startswith(ZOO_HOST + "/"):
        return mirror.rstrip("/") + url[len(ZOO_HOST):]
    return url


def cache_path(url: str, cache_dir: Optional[str] = None) -> str:
    """Where ``url`` is cached: ``<cache dir>/<URL path>``, as Detectron2's URL handler does."""
    return os.path.join(get_cache_dir(cache_dir), urlparse(url).path.lstrip("/"))


def expected_md5_prefix(url: str) -> Optional[str]:
    """The md5 prefix a file must have: the zoo table's, or the one in a checkpoint file name."""
    model = find_model_by_url(url)
    if model is not None:
        return model.md5_prefix
    match = _CHECKPOINT_URL.match(url)
    return match.group("md5") if match else None


def file_md5(path: str) -> str:
    """Hex md5 of a file."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------- verification
def _marker(path: str) -> str:
    return path + ".md5"


def _stat_key(path: str) -> dict:
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _remember_md5(path: str, md5: str) -> None:
    try:
        with open(_marker(path), "w") as f:
            json.dump({"md5": md5, **_stat_key(path)}, f)
    except OSError as e:  # a read-only cache still works, it is just hashed again next time
        logger.warning("Cannot write %s (%s): the file will be hashed again next time.",
                       _marker(path), e)


def _known_md5(path: str) -> Optional[str]:
    try:
        with open(_marker(path)) as f:
            rec = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("size") is None:
        return None
    if {"size": rec.get("size"), "mtime_ns": rec.get("mtime_ns")} != _stat_key(path):
        return None
    return rec.get("md5")


def _cached_md5(path: str) -> str:
    md5 = _known_md5(path)
    if md5 is None:
        logger.info("Verifying the md5 of %s ...", path)
        md5 = file_md5(path)
        _remember_md5(path, md5)
    return md5


def _remove(path: str) -> None:
    for p in (path, _marker(path)):
        try:
            os.remove(p)
        except FileNotFoundError:
            pass


# ----------------------------------------------------------------------------- transfer
class _Retry(Exception):
    """An attempt failed in a way another attempt may fix."""


class _Restart(_Retry):
    """The partial file cannot be resumed: the next attempt starts from the beginning."""


class _Fatal(Exception):
    """An attempt failed in a way retrying will not fix (404, no route to the server...)."""


def _describe(err: BaseException) -> str:
    if isinstance(err, URLError) and not isinstance(err, HTTPError):
        err = err.reason if isinstance(err.reason, BaseException) else Exception(str(err.reason))
    if isinstance(err, (socket.timeout, TimeoutError)):
        return f"no data from the server for {TIMEOUT:g} s"
    if isinstance(err, ConnectionRefusedError):
        return "connection refused (is the server up?)"
    if isinstance(err, socket.gaierror):
        return f"cannot resolve the host name ({err.strerror or err}; offline?)"
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return text.replace("\n", " ")


def _open(source: str, have: int):
    headers = {"User-Agent": "mask2former-model-zoo", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        return urlopen(Request(source, headers=headers), timeout=TIMEOUT)
    except HTTPError as e:
        e.close()
        if e.code == 416 and have:
            raise _Restart("the server refused to resume the transfer (HTTP 416)")
        if e.code in (408, 429) or e.code >= 500:
            raise _Retry(f"HTTP {e.code} {e.reason}")
        raise _Fatal(f"HTTP {e.code} {e.reason}")
    except URLError as e:
        reason = e.reason
        if isinstance(reason, (ConnectionRefusedError, socket.gaierror)):
            raise _Fatal(_describe(reason))
        raise _Retry(_describe(e))
    except (OSError, http.client.HTTPException) as e:
        raise _Retry(_describe(e))


def _attempt(source: str, part: str, desc: str) -> None:
    """One HTTP request appending to (or restarting) ``part``; raises _Retry/_Fatal."""
    have = os.path.getsize(part) if os.path.exists(part) else 0
    try:
        resp = _open(source, have)
    except _Restart:
        os.remove(part)
        raise
    with resp:
        status = getattr(resp, "status", 200)
        if have and status == 206:
            content_range = resp.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {have}-"):
                os.remove(part)  # the server answered another range: start over next time
                raise _Restart(f"the server resumed at the wrong offset ({content_range!r})")
            mode = "ab"
        elif status == 200:
            have, mode = 0, "wb"  # no resume support (or nothing to resume): from the start
        else:
            raise _Retry(f"unexpected HTTP status {status}")
        length = resp.headers.get("Content-Length")
        remaining = int(length) if length and length.isdigit() else None
        total = have + remaining if remaining is not None else None
        got = 0
        with open(part, mode) as f, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                         unit_divisor=1024, desc=desc, disable=None,
                                         leave=False) as bar:
            while True:
                try:
                    chunk = resp.read(_CHUNK)
                except (OSError, http.client.HTTPException) as e:
                    raise _Retry(f"the transfer broke off after {have + got} bytes "
                                 f"({_describe(e)})")
                if not chunk:
                    break
                f.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
    if remaining is not None and got < remaining:
        raise _Retry(f"the server closed the connection after {have + got} of {total} bytes")


def _download(url: str, dest: str, md5_prefix: Optional[str]) -> None:
    source = mirror_url(url)
    part = dest + ".part"
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    where = f"{source} (mirror of {url})" if source != url else url
    logger.info("Downloading %s to %s", where, dest)
    failures, delay = 0, RETRY_DELAY
    while True:
        before = os.path.getsize(part) if os.path.exists(part) else 0
        try:
            _attempt(source, part, os.path.basename(dest))
            break
        except _Fatal as e:
            raise ZooDownloadError(_download_failure(url, source, str(e), dest)) from None
        except _Retry as e:
            cause = str(e)
        after = os.path.getsize(part) if os.path.exists(part) else 0
        failures = 0 if after > before else failures + 1
        if failures >= MAX_ATTEMPTS:
            raise ZooDownloadError(_download_failure(
                url, source, f"{cause} ({MAX_ATTEMPTS} attempts in a row without progress)",
                dest)) from None
        logger.warning("Download of %s interrupted: %s; %s in %.0f s.", source, cause,
                       "resuming" if after else "retrying", delay)
        time.sleep(delay)
        delay = min(2 * delay, 30.0)

    md5 = file_md5(part)
    if md5_prefix is not None and not md5.startswith(md5_prefix):
        os.remove(part)
        raise ChecksumMismatchError(
            f"Refusing {where}: its md5 is {md5}, but the file name promises {md5_prefix}... "
            f"(corrupted transfer, or not the released file); the download was deleted. "
            f"Try again, check the server{' (' + MIRROR_ENV + ')' if source != url else ''}, "
            f"or put the correct file at {dest}.")
    os.replace(part, dest)
    if md5_prefix is not None:
        _remember_md5(dest, md5)
    logger.info("Downloaded %s (md5 %s%s).", dest, md5,
                ", verified" if md5_prefix is not None else "")


def _download_failure(url: str, source: str, cause: str, dest: str) -> str:
    if source != url:
        mirror = f"check the mirror {MIRROR_ENV}={os.environ.get(MIRROR_ENV)}"
        what = f"{source} (mirror of {url})"
    else:
        mirror = f"set {MIRROR_ENV} to a server that mirrors {ZOO_HOST}"
        what = url
    return (f"Cannot download {what}: {cause}. To fix: {mirror}, or put the file at {dest}, "
            f"or pass a local file as MODEL.WEIGHTS.")


def fetch(url: str, *, cache_dir: Optional[str] = None, force: bool = False) -> str:
    """Local path of ``url``, downloading and verifying it once (see the module docstring).

    Args:
        url: a URL under ``https://dl.fbaipublicfiles.com/``.
        cache_dir: the cache root (default: ``$FVCORE_CACHE`` or ``~/.torch/iopath_cache``).
        force: download again even if the file is cached.

    Raises:
        ZooDownloadError: the file could not be downloaded (one-line message).
        ChecksumMismatchError: the downloaded file does not have the expected md5 prefix.
    """
    dest = cache_path(url, cache_dir)
    md5_prefix = expected_md5_prefix(url)
    with file_lock(dest):
        if os.path.isfile(dest) and not force:
            if md5_prefix is None:
                return dest
            md5 = _cached_md5(dest)
            if md5.startswith(md5_prefix):
                logger.info("Using %s (cached, md5 verified).", dest)
                return dest
            logger.warning("The cached %s has md5 %s, not %s... as its name promises: deleted, "
                           "downloading it again.", dest, md5, md5_prefix)
            _remove(dest)
        _download(url, dest, md5_prefix)
    return dest
