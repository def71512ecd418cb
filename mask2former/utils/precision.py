"""Which reduced precisions this machine's CPU runs natively.

bf16 on CPU is fast only where the processor has bf16 instructions (AVX-512 BF16, or AMX on recent
Intel Xeons): oneDNN then runs bf16 matrix products and convolutions several times faster than
fp32. Elsewhere PyTorch emulates bf16 and it is slower than fp32, so callers fall back to fp32.
"""

import functools
from typing import Tuple

import torch

__all__ = ["cpu_bf16_support"]

_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def _cpu_flags() -> set:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@functools.lru_cache(maxsize=None)
def cpu_bf16_support() -> Tuple[bool, str]:
    """(supported, why): whether bf16 runs natively on this CPU, and a sentence saying why not."""
    if not torch.backends.mkldnn.is_available():
        return False, "this PyTorch build has no oneDNN (mkldnn) CPU kernels"
    flags = _cpu_flags()
    found = [f for f in _BF16_FLAGS if f in flags]
    if not found:
        return False, (f"this CPU has no bf16 instructions ({' / '.join(_BF16_FLAGS)} not in "
                       "/proc/cpuinfo), so bf16 would be emulated and slower than fp32")
    return True, f"this CPU has {', '.join(found)}"
