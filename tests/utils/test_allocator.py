"""mask2former.utils.allocator: the compiled CPU caching allocator.

Reuse is checked with counters and minor page faults (``ru_minflt``), which do not depend on
the machine's load. Every test leaves the allocator as it found it (it is process-wide).
"""

import resource

import pytest
import torch
import torch.nn.functional as F

from mask2former.utils import allocator
from mask2former.utils.allocator import (
    cpu_caching_allocator,
    cpu_caching_allocator_stats,
    empty_cpu_cache,
)

MiB = 2**20


def _faults_of(fn):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    fn()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def _big_temporary():
    torch.empty(64 * MiB // 4).fill_(1.0)  # a 64 MiB temporary, filled and freed


def test_freed_large_blocks_are_reused_without_page_faults():
    pages = 64 * MiB // 4096
    assert not cpu_caching_allocator_stats()["enabled"]
    with cpu_caching_allocator() as on:
        assert on
        start = cpu_caching_allocator_stats()
        _big_temporary()  # the first one is new memory
        reused = min(_faults_of(_big_temporary) for _ in range(3))
        stats = cpu_caching_allocator_stats()
        assert stats["hits"] - start["hits"] >= 3
        assert reused < pages // 20
        assert stats["cached_bytes"] >= 64 * MiB and stats["in_use_bytes"] == start["in_use_bytes"]
    after = cpu_caching_allocator_stats()
    assert not after["enabled"] and after["cached_bytes"] == 0  # restored, cache released
    _big_temporary()  # torch's allocator again
    assert cpu_caching_allocator_stats()["misses"] == after["misses"]


def test_small_blocks_bypass_the_cache_and_the_limit_is_kept():
    with cpu_caching_allocator(max_cached_bytes=40 * MiB, min_block_bytes=MiB):
        start = cpu_caching_allocator_stats()
        small = torch.ones(1000)  # 4 KB: torch's allocator
        assert cpu_caching_allocator_stats()["misses"] == start["misses"]
        a, b = torch.empty(30 * MiB // 4), torch.empty(30 * MiB // 4)
        del a, b  # only one 30 MiB block fits under the 40 MiB limit
        stats = cpu_caching_allocator_stats()
        assert stats["cached_blocks"] - start["cached_blocks"] == 1
        assert stats["cached_bytes"] <= 40 * MiB
        empty_cpu_cache()
        assert cpu_caching_allocator_stats()["cached_bytes"] == 0
        assert small.sum().item() == 1000


def test_results_are_unchanged_including_onednn_scratch_memory():
    """oneDNN convolutions allocate their scratch memory through the raw allocator interface."""
    torch.manual_seed(0)
    x, w = torch.randn(1, 64, 96, 96), torch.randn(64, 64, 3, 3)
    want = F.conv2d(x, w, padding=1)
    with cpu_caching_allocator():
        got = [F.conv2d(x, w, padding=1) for _ in range(3)]
        tensor_kept = got[0]
    for g in got:
        assert torch.equal(g, want)
    assert torch.equal(tensor_kept, want)  # still valid after the allocator was removed


def test_bad_arguments_and_missing_extension(monkeypatch):
    with pytest.raises(ValueError):
        allocator.enable_cpu_caching_allocator(max_cached_bytes=-1)
    monkeypatch.setattr(allocator, "_ops", lambda: None)
    assert allocator.enable_cpu_caching_allocator() is False
    assert allocator.cpu_caching_allocator_stats()["enabled"] == 0
    with cpu_caching_allocator() as on:
        assert on is False
