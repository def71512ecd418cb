"""A caching allocator for CPU tensors (process-wide; used by the entry points on CPU).

Inference on CPU makes several temporaries of 100+ MB per image (100 mask logits upsampled to
512x512 are 105 MB; 133 semantic score maps are 139 MB). The C library serves blocks that large
with fresh ``mmap`` calls and unmaps them on ``free``, so every such block is page-faulted in
again, zero-filled, for every image: about a quarter of a millisecond per MB, which was most of
the post-processing time at 512x512 on a 2-core machine.

`enable_cpu_caching_allocator` installs the compiled allocator, its own small extension
``mask2former._allocator`` (``mask2former/utils/csrc/cpu_caching_allocator.cpp``): freed CPU blocks of at least
``min_block_bytes`` are kept (up to ``max_cached_bytes``) and reused for later requests of
about the same size; smaller requests go to torch's allocator as before. The cost is that the
process keeps up to ``max_cached_bytes`` of freed memory. It is process-wide, so the library
never enables it on import; the entry points do on CPU: ``train_net.py`` and ``demo/demo.py``
(config key ``CPU_CACHING_ALLOCATOR``, default True), ``tools/benchmark_inference.py`` and
``tools/benchmark_postprocessing.py`` (``--allocator``).

Without the compiled extension nothing changes (the functions say so). Alternatives for any
process: preload jemalloc or tcmalloc, or ``GLIBC_TUNABLES=glibc.malloc.mmap_max=0``.
"""

import contextlib
import importlib.util
import logging
import os
from typing import Dict, Iterator

import torch

__all__ = [
    "cpu_caching_allocator",
    "is_available",
    "enable_cpu_caching_allocator",
    "disable_cpu_caching_allocator",
    "cpu_caching_allocator_stats",
    "empty_cpu_cache",
]

logger = logging.getLogger(__name__)

_STATS = ("enabled", "cached_bytes", "in_use_bytes", "hits", "misses", "cached_blocks")


def _load_ops():
    """The allocator's operators, or None when mask2former._allocator is not built/loadable (or
    MASK2FORMER_DISABLE_EXT=1 disables the compiled extensions)."""
    if os.environ.get("MASK2FORMER_DISABLE_EXT", "0") == "1":
        return None
    if importlib.util.find_spec("mask2former._allocator") is None:
        return None
    try:
        from mask2former import _allocator  # noqa: F401  (registers torch.ops.mask2former_allocator)
    except ImportError as e:  # built against another torch, say
        logger.warning("mask2former._allocator exists but cannot be loaded (%s); rebuild it with "
                       "`make build`. The CPU allocator stays torch's.", e)
        return None
    return torch.ops.mask2former_allocator


_OPS = _load_ops()


def _ops():
    """The allocator's operators, or None when the extension is not built."""
    return _OPS


def is_available() -> bool:
    """Whether the compiled allocator (``mask2former._allocator``) is built and loaded."""
    return _OPS is not None


def enable_cpu_caching_allocator(
    max_cached_bytes: int = 4 * 2**30, min_block_bytes: int = 2**20
) -> bool:
    """Install the caching allocator for CPU tensors (see the module docstring).

    Args:
        max_cached_bytes: most freed memory kept for reuse (default 4 GiB).
        min_block_bytes: smaller requests are not cached (default 1 MiB).
    Returns:
        True when installed; False without the compiled extension (logged, nothing changed).
    """
    if max_cached_bytes < 0 or min_block_bytes < 1:
        raise ValueError(
            f"max_cached_bytes must be >= 0 and min_block_bytes >= 1, got {max_cached_bytes}, "
            f"{min_block_bytes}"
        )
    ops = _ops()
    if ops is None:
        logger.info("CPU caching allocator: mask2former._allocator is not built; allocator unchanged")
        return False
    return bool(ops.set_cpu_caching_allocator(True, int(max_cached_bytes), int(min_block_bytes)))


def disable_cpu_caching_allocator() -> None:
    """Restore the previous CPU allocator and free the cached blocks. Tensors allocated while
    caching was on stay valid; their memory is freed when they are."""
    ops = _ops()
    if ops is not None:
        ops.set_cpu_caching_allocator(False, 0, 2**20)


def empty_cpu_cache() -> None:
    """Free the cached (unused) blocks; caching stays on."""
    ops = _ops()
    if ops is not None:
        ops.cpu_caching_allocator_empty_cache()


def cpu_caching_allocator_stats() -> Dict[str, int]:
    """{"enabled", "cached_bytes", "in_use_bytes", "hits", "misses", "cached_blocks"};
    all zeros without the compiled extension."""
    ops = _ops()
    if ops is None:
        return dict.fromkeys(_STATS, 0)
    return dict(zip(_STATS, (int(v) for v in ops.cpu_caching_allocator_stats())))


@contextlib.contextmanager
def cpu_caching_allocator(enabled: bool = True, **kwargs) -> Iterator[bool]:
    """Context manager: the caching allocator is on inside when ``enabled`` (keyword arguments
    as `enable_cpu_caching_allocator`); on exit it is turned off again if it was off on entry
    (also when the body turned it on). Yields whether it is on."""
    was_on = bool(cpu_caching_allocator_stats()["enabled"])
    on = enable_cpu_caching_allocator(**kwargs) if enabled else was_on
    try:
        yield on
    finally:
        if not was_on and cpu_caching_allocator_stats()["enabled"]:
            disable_cpu_caching_allocator()
