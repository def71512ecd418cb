"""Which reduced precisions this machine's CPU runs natively.

bf16 on CPU is fast only where the processor has bf16 instructions (AVX-512 BF16, or AMX on recent
Intel Xeons): oneDNN then runs bf16 matrix products and convolutions several times faster than
fp32. Elsewhere PyTorch emulates bf16 and it is slower than fp32, so callers fall back to fp32.
"""

import functools
import logging
from typing import Optional, Tuple

import torch

__all__ = ["cpu_bf16_support", "inference_dtype", "PRECISIONS"]

logger = logging.getLogger(__name__)

# TEST.PRECISION values -> the autocast dtype (None: plain fp32)
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

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


def inference_dtype(precision: str, device: str) -> Optional[torch.dtype]:
    """The autocast dtype of inference for TEST.PRECISION ``precision`` on ``device`` ("cpu",
    "cuda", "cuda:1", ...), or None for fp32.

    "bf16" on a CPU without bf16 instructions (or a GPU without bf16) runs fp32 and logs why;
    "fp16" is for CUDA only; anything else is a ValueError naming the choices.
    """
    key = str(precision).lower()
    if key not in PRECISIONS:
        raise ValueError(f"TEST.PRECISION must be one of {sorted(PRECISIONS)}, got {precision!r}")
    dtype = PRECISIONS[key]
    on_cuda = str(device).startswith("cuda")
    if dtype is None:
        return None
    if dtype == torch.float16 and not on_cuda:
        raise ValueError("TEST.PRECISION fp16 is for CUDA devices; on the CPU use bf16 (or fp32)")
    if dtype == torch.bfloat16:
        if on_cuda:
            if not torch.cuda.is_bf16_supported():
                logger.warning("TEST.PRECISION bf16: this GPU has no bf16 support; running fp32.")
                return None
        else:
            supported, why = cpu_bf16_support()
            if not supported:
                logger.warning("TEST.PRECISION bf16: running fp32, because %s.", why)
                return None
    return dtype
