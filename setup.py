"""Package `mask2former` and build its two compiled extensions.

- `mask2former._C`: the multi-scale deformable-attention op (mask2former/layers/csrc): C++ CPU
  kernels always, CUDA kernels when FORCE_CUDA=1, or when a GPU is visible and CUDA_HOME is set;
- `mask2former._allocator`: the CPU caching allocator (mask2former/utils/csrc), C++ only.

TORCH_CUDA_ARCH_LIST selects the GPU architectures (torch's default otherwise).
MASK2FORMER_BUILD_EXT=0 packages without compiling them: `make build` installs the package
editable that way, then compiles them once in place (`setup.py build_ext --inplace`, incremental),
instead of compiling them twice (pip's editable build compiles in a throwaway directory).
The build needs torch at build time: install with `pip install --no-build-isolation -e .`.
"""
import glob
import os

from setuptools import find_packages, setup

try:
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
except ImportError as e:  # pragma: no cover - a build-environment error
    raise RuntimeError(
        "building mask2former needs torch installed first; use `make build` or "
        "`pip install --no-build-isolation -e .` inside an environment that has torch"
    ) from e

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join("mask2former", "layers", "csrc")  # the op; also its include directory
ALLOCATOR_CSRC = os.path.join("mask2former", "utils", "csrc")


def want_cuda():
    if os.environ.get("FORCE_CUDA", "0") == "1":
        return True
    return torch.cuda.is_available() and CUDA_HOME is not None


def get_extensions():
    if os.environ.get("MASK2FORMER_BUILD_EXT", "1") == "0":
        return []
    cpp = sorted(glob.glob(os.path.join(CSRC, "**", "*.cpp"), recursive=True))
    cu = sorted(glob.glob(os.path.join(CSRC, "**", "*.cu"), recursive=True))
    if not cpp:
        print(f"warning: no C++ sources under {CSRC}; building without mask2former._C")
        return []
    # No -std flag: torch's BuildExtension adds the standard its headers need (C++17 for
    # torch 2.3, C++20 for newer releases such as 2.14).
    define_macros, extra = [], {"cxx": ["-O3"]}
    if os.environ.get("MASK2FORMER_NO_OPENMP", "0") != "1":
        extra["cxx"].append("-fopenmp")
    ext_cls = CppExtension
    sources = cpp
    if want_cuda():
        if CUDA_HOME is None:
            raise RuntimeError("FORCE_CUDA=1 but CUDA_HOME is not set and nvcc was not found")
        ext_cls = CUDAExtension
        sources = cpp + cu
        define_macros.append(("WITH_CUDA", None))
        extra["nvcc"] = [
            "-O3",
            "--expt-relaxed-constexpr",
            "-D__CUDA_NO_HALF_OPERATORS__",
            "-D__CUDA_NO_HALF_CONVERSIONS__",
            "-D__CUDA_NO_HALF2_OPERATORS__",
            "-D__CUDA_NO_BFLOAT16_CONVERSIONS__",
        ]
    openmp_link = ["-fopenmp"] if "-fopenmp" in extra["cxx"] else []
    return [
        ext_cls(
            "mask2former._C",
            sources,
            include_dirs=[os.path.join(HERE, CSRC)],
            define_macros=define_macros,
            extra_compile_args=extra,
            extra_link_args=openmp_link,
        ),
        CppExtension(
            "mask2former._allocator",
            sorted(glob.glob(os.path.join(ALLOCATOR_CSRC, "*.cpp"))),
            extra_compile_args={"cxx": ["-O3"]},
        ),
    ]


setup(
    name="mask2former",
    version="0.1.0",
    description="Mask2Former (masked-attention mask transformer) as a Detectron2 project",
    python_requires=">=3.10",
    packages=find_packages(exclude=("configs", "tests*", "tools", "demo", "datasets")),
    package_data={
        "mask2former": [
            "layers/csrc/**/*", "utils/csrc/**/*", "model_zoo/*.json", "data/datasets/*.json"
        ]
    },
    ext_modules=get_extensions(),
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    zip_safe=False,
)
