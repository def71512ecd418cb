#!/usr/bin/env bash
# Compile the CUDA kernels of mask2former's op with nvcc for sm_80 and sm_90 -- no GPU needed --
# and fail loudly (non-zero exit) on any compile or link error.
#
# The project's pinned torch 2.3.1 is a CUDA 12.1 build and no CUDA 12 nvcc exists here, so the op
# sources (they need torch only, not Detectron2) are built through the project's setup.py
# (FORCE_CUDA=1) in a throwaway environment: CPython 3.11 + torch==2.14.1 (a CUDA 13.0 build)
# + the machine's nvcc. That also keeps the kernels building on the newest torch.
#
#   tools/cuda_check.sh            build and check (skipped when the op's C++/CUDA/Python sources,
#                                  setup.py and this script are unchanged since the last success)
#   FORCE=1 tools/cuda_check.sh    check again anyway (ninja recompiles only what changed;
#                                  rm -rf .cuda-check-venv/build for a clean compile)
# Env: CUDA_HOME (default /usr/local/cuda), TORCH_CUDA_ARCH_LIST (default "8.0;9.0"),
#      CHECK_VENV (default .cuda-check-venv), CHECK_TORCH (default 2.14.1).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

TORCH_PIN=${CHECK_TORCH:-2.14.1}
VENV=${CHECK_VENV:-$ROOT/.cuda-check-venv}
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-8.0;9.0}
export FORCE_CUDA=1
export PYTHONWARNINGS="ignore:Failed to initialize NumPy"  # torch's notice; numpy is not needed here
start=$(date +%s)

die() { echo "cuda-check: FAILED: $*" >&2; exit 1; }

NVCC="$CUDA_HOME/bin/nvcc"
[ -x "$NVCC" ] || die "nvcc not found at $NVCC (set CUDA_HOME to your CUDA toolkit)"

# 1. The throwaway environment (reused when it already has the pinned torch).
VENV_STAMP="$VENV/.stamp-torch-$TORCH_PIN"
if [ ! -f "$VENV_STAMP" ]; then
  py311=""
  if command -v pyenv >/dev/null 2>&1; then
    py311=$(ls -d "$(pyenv root)"/versions/3.11.*/bin/python3.11 2>/dev/null | sort -V | tail -n 1 || true)
  fi
  [ -n "$py311" ] || py311=$(command -v python3.11 || true)
  [ -n "$py311" ] || die "CPython 3.11 not found (install it with pyenv: pyenv install 3.11)"
  echo "cuda-check: creating $VENV with $py311 and torch==$TORCH_PIN"
  [ -x "$VENV/bin/python" ] || "$py311" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "torch==$TORCH_PIN" setuptools ninja \
    || die "could not install torch==$TORCH_PIN into $VENV"
  touch "$VENV_STAMP"
fi
PY="$VENV/bin/python"
SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
CU_INC="$SITE/nvidia/cu13/include"
CU_LIB="$SITE/nvidia/cu13/lib"
[ -d "$CU_INC" ] || die "$CU_INC missing: torch==$TORCH_PIN should have installed nvidia CUDA 13 wheels"

# 2. Skip when nothing changed since the last successful check.
SOURCES=$(find mask2former/layers/csrc mask2former/utils/csrc -type f \( -name '*.cpp' -o -name '*.cu' -o -name '*.h' \) | sort)
KEY=$( (cat $SOURCES mask2former/layers/*.py mask2former/utils/allocator.py setup.py "$0"; echo "$TORCH_CUDA_ARCH_LIST $TORCH_PIN") | sha1sum | cut -c1-16)
BUILD="$VENV/build"
OK_STAMP="$BUILD/.ok-$KEY"
if [ -f "$OK_STAMP" ] && [ "${FORCE:-0}" != "1" ]; then
  echo "cuda-check: up to date (sources unchanged since the last successful check; FORCE=1 re-checks)"
  cat "$OK_STAMP"
  exit 0
fi

# 3. Build through the project's setup.py into a private build dir (the tree is not touched).
echo "cuda-check: torch $("$PY" -c 'import torch; print(torch.__version__, "(CUDA", torch.version.cuda + ")")')"
echo "cuda-check: $("$NVCC" --version | tail -n 2 | head -n 1)"
echo "cuda-check: archs TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST"
echo "cuda-check: sources:"; printf '  %s\n' $SOURCES
mkdir -p "$BUILD"
rm -f "$BUILD"/.ok-*
export CPATH="$CU_INC${CPATH:+:$CPATH}"                     # C++ sources (cusparse.h, ...)
export NVCC_APPEND_FLAGS="-I$CU_INC ${NVCC_APPEND_FLAGS:-}"  # .cu sources
export LDFLAGS="-L$CU_LIB -Wl,-rpath,$CU_LIB ${LDFLAGS:-}"   # libcudart.so.13 of the wheel
export MAX_JOBS=${MAX_JOBS:-2}
"$PY" setup.py build_ext --build-temp "$BUILD/temp" --build-lib "$BUILD/lib" \
  > "$BUILD/build.log" 2>&1 || { tail -n 60 "$BUILD/build.log" >&2; die "compilation failed (full log: $BUILD/build.log)"; }
grep -E "error|warning" "$BUILD/build.log" | grep -v -E "^\s*$" | head -n 20 || true

SO=$(ls "$BUILD"/lib/mask2former/_C*.so 2>/dev/null | head -n 1)
[ -n "$SO" ] || die "no mask2former/_C*.so produced (see $BUILD/build.log)"
grep -q "ms_deform_attn_cuda" "$BUILD/build.log" || die "the .cu sources were not compiled (see $BUILD/build.log)"

# 4. Inspect the result: embedded GPU code, and the library loads into torch with its
#    CUDA kernels registered.
# GPU code embedded in the library: walk its fatbin entries (cuobjdump is not always installed).
ARCHS=$("$PY" - "$SO" <<'PYEOF'
import struct, sys
data = open(sys.argv[1], "rb").read()
magic = struct.pack("<I", 0xBA55ED50)  # fatbin container header
found, pos = set(), data.find(magic)
while pos != -1:
    _, _, header_size, fat_size = struct.unpack_from("<IHHQ", data, pos)
    p, end = pos + header_size, pos + header_size + fat_size
    while p < end:  # entries: kind (1 PTX, 2 ELF), header size, payload size, ..., arch at +28
        kind, _, entry_header, payload = struct.unpack_from("<HHIQ", data, p)
        arch = struct.unpack_from("<I", data, p + 28)[0]
        found.add(f"sm_{arch}" if kind == 2 else f"compute_{arch}(ptx)")
        p += entry_header + payload
    pos = data.find(magic, end)
print(" ".join(sorted(found)))
PYEOF
)
for want in $(echo "$TORCH_CUDA_ARCH_LIST" | tr ';' ' ' | sed 's/+PTX//g; s/\.//g'); do
  case " $ARCHS " in *" sm_$want "*) ;; *) die "no sm_$want code in $SO (found: ${ARCHS:-none})";; esac
done
"$PY" - "$SO" <<'PYEOF' || die "the built library does not load into torch or lacks kernels"
import sys
import torch

torch.ops.load_library(sys.argv[1])
assert torch.ops.mask2former.compiled_with_cuda(), "compiled_with_cuda() is False: CUDA kernels missing"
for op in ("ms_deform_attn_forward", "ms_deform_attn_backward"):
    for key in ("CPU", "CUDA", "Autograd"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"mask2former::{op}", key), (op, key)
for key in ("AutocastCPU", "AutocastCUDA"):  # the op's autocast policy (forward only)
    assert torch._C._dispatch_has_kernel_for_dispatch_key(
        "mask2former::ms_deform_attn_forward", key), key
print(f"cuda-check: loaded into torch {torch.__version__}: compiled_with_cuda=True, "
      "CPU/CUDA/Autograd kernels registered for forward and backward, Autocast for forward")
PYEOF

# 5. The Python side on this torch too (register_fake, autograd through the C++ kernel,
#    torch.compile): import mask2former.layers without mask2former/__init__ (needs Detectron2).
"$PY" - "$ROOT" "$BUILD/lib" <<'PYEOF' || die "mask2former.layers misbehaves with torch $TORCH_PIN"
import sys, types, os
import torch
root, build = sys.argv[1], sys.argv[2]
pkg = types.ModuleType("mask2former")  # without mask2former/__init__ (needs Detectron2)
pkg.__path__ = [os.path.join(root, "mask2former"), os.path.join(build, "mask2former")]
sys.modules["mask2former"] = pkg
from mask2former.layers import available_backends, ms_deform_attn
assert available_backends() == ["pytorch", "native-cpu", "native-cuda"], available_backends()
g = torch.Generator().manual_seed(0)
ss = torch.tensor([[5, 7], [3, 4]]); lsi = torch.tensor([0, 35])
v = torch.randn(2, 47, 2, 3, generator=g, requires_grad=True)
loc = (torch.rand(2, 6, 2, 2, 3, 2, generator=g) * 1.2 - 0.1).requires_grad_()
w = torch.rand(2, 6, 2, 2, 3, generator=g, requires_grad=True)
def f(v, loc, w, backend):
    return (ms_deform_attn(v, ss, lsi, loc, w, backend=backend) ** 2).sum()
res = {}
for b in ("native", "pytorch"):
    out = f(v, loc, w, b)
    res[b] = [out] + list(torch.autograd.grad(out, (v, loc, w)))
for a, r in zip(res["native"], res["pytorch"]):
    torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-5)
cf = torch.compile(lambda v, loc, w: f(v, loc, w, "native"), backend="aot_eager", fullgraph=True)
out = cf(v, loc, w)
grads = torch.autograd.grad(out, (v, loc, w))
for a, r in zip([out, *grads], res["native"]):
    torch.testing.assert_close(a, r)
print(f"cuda-check: mask2former.layers on torch {torch.__version__}: native == pytorch (forward + 3 grads), torch.compile(fullgraph) OK")
# bf16 (the CPU kernels; the CUDA ones cannot run here) and the autocast policy on this torch
def g16(backend, autocast):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = ms_deform_attn(v if autocast else v.bfloat16(), ss, lsi, loc, w, backend=backend)
    assert out.dtype == torch.bfloat16, (backend, autocast, out.dtype)
    return [out] + list(torch.autograd.grad(out.float().square().sum(), (v, loc, w)))
for b in ("native", "pytorch"):
    for a, r in zip(g16(b, True), g16(b, False)):  # autocast == explicit bf16 value
        assert torch.equal(a, r), b
for a, r in zip(g16("native", True), g16("pytorch", True)):
    torch.testing.assert_close(a.float(), r.float(), rtol=2**-7, atol=1e-4)
print(f"cuda-check: bf16 under torch.autocast on torch {torch.__version__}: native == explicit bf16 call, == pytorch within bf16 rounding")
# the CPU caching allocator (its own extension, mask2former._allocator) on this torch
from mask2former.utils.allocator import cpu_caching_allocator, cpu_caching_allocator_stats
x, k = torch.randn(1, 16, 256, 256, generator=g), torch.randn(16, 16, 3, 3, generator=g)
want = torch.nn.functional.conv2d(x, k, padding=1)
with cpu_caching_allocator(min_block_bytes=2**16) as on:
    assert on, "the caching allocator did not install"
    for _ in range(3):
        assert torch.equal(torch.nn.functional.conv2d(x, k, padding=1), want)
    hits = cpu_caching_allocator_stats()["hits"]
assert hits > 0 and not cpu_caching_allocator_stats()["enabled"], (hits, cpu_caching_allocator_stats())
print(f"cuda-check: CPU caching allocator on torch {torch.__version__}: {hits} blocks reused, results unchanged")
PYEOF

summary="cuda-check: OK: $SO ($(du -h "$SO" | cut -f1)) has GPU code for: $ARCHS (torch $TORCH_PIN, $("$NVCC" --version | grep -o 'release [0-9.]*'), $(( $(date +%s) - start )) s)"
echo "$summary" | tee "$OK_STAMP"
