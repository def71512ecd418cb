"""Crash-safe file writes.

A file written with :func:`atomic_write` is either absent, or its previous version, or the
complete new version: never a truncated mix. The data goes to a temporary file in the same
directory (same file system, so the final rename is atomic), is flushed and fsync'ed, then
``os.replace`` moves it over the destination and the directory entry is fsync'ed as well.
A process killed at any moment (SIGKILL included) leaves at worst a stray temporary file,
named ``.<basename>.tmp-<pid>-<random>``; :func:`remove_stale_temp_files` deletes those.
"""
import contextlib
import logging
import os
import re
import tempfile
from typing import IO, Callable, Iterator, List

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_open", "remove_stale_temp_files"]

logger = logging.getLogger(__name__)

_TMP_RE = re.compile(r"^\.(?P<base>.+)\.tmp-(?P<pid>\d+)-[A-Za-z0-9_]+$")


def _fsync_dir(dirname: str) -> None:
    """Persist a rename: fsync the directory (no-op where directories cannot be opened)."""
    try:
        fd = os.open(dirname, os.O_RDONLY)
    except OSError:  # e.g. Windows, or a file system that refuses it
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    """The process umask, read without changing it where possible (Linux /proc)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: the classic set-and-restore
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on clean exit it atomically becomes ``path``.

    If the body raises, the temporary file is removed and ``path`` is left untouched.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open supports modes 'wb' and 'w', got {mode!r}")
    path = os.path.abspath(path)
    dirname, basename = os.path.split(path)
    os.makedirs(dirname, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{basename}.tmp-{os.getpid()}-", dir=dirname)
    try:
        # mkstemp creates 0600 files; give the result the permissions open() would have
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    _fsync_dir(dirname)


def atomic_write(path: str, write_fn: Callable[[IO[bytes]], None]) -> None:
    """Call ``write_fn(f)`` on a binary temporary file, then atomically move it to ``path``."""
    with atomic_open(path, "wb") as f:
        write_fn(f)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``."""
    atomic_write(path, lambda f: f.write(data))


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temp_files(dirname: str) -> List[str]:
    """Delete temporary files left in ``dirname`` by killed writers (not by live processes).

    Returns the removed paths.
    """
    removed = []
    if not os.path.isdir(dirname):
        return removed
    for name in sorted(os.listdir(dirname)):
        m = _TMP_RE.match(name)
        if m is None or _pid_alive(int(m.group("pid"))):
            continue
        full = os.path.join(dirname, name)
        with contextlib.suppress(FileNotFoundError):
            os.remove(full)
            removed.append(full)
    if removed:
        logger.warning(
            "Removed %d incomplete temporary file(s) left by an interrupted save: %s",
            len(removed),
            ", ".join(os.path.basename(p) for p in removed),
        )
    return removed
