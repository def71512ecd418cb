"""Print the environment facts a bug report needs: `python -m mask2former.collect_env`.

Versions of Python, torch, torchvision, Detectron2 (and whether its compiled ops load), this
package, its compiled op `mask2former._C` and the deformable-attention backends it provides,
plus CUDA / compiler facts. Pass `--full` to append Detectron2's own, longer report.
"""
import argparse
import importlib
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys

from tabulate import tabulate


def _version(module_name, dist_name=None):
    """`module.__version__`, else the installed distribution's version."""
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        return f"not importable ({e})"
    version = getattr(module, "__version__", None)
    if version is None:
        try:
            version = importlib.metadata.version(dist_name or module_name)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown version"
    return version


def _detectron2_ops():
    try:
        from detectron2 import _C  # noqa: F401
    except ImportError as e:
        return f"failed to load: {e}"
    return "loaded"


def _nvcc_version():
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return "not found"
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, check=False).stdout
    lines = [line for line in out.splitlines() if "release" in line]
    return f"{nvcc}: {lines[-1].strip() if lines else out.strip()}"


def collect_env_info():
    """Return the report as a list of (name, value) rows."""
    import torch

    import mask2former
    from mask2former import layers

    rows = [
        ("sys.platform", sys.platform),
        ("Python", sys.version.replace("\n", " ")),
        ("CPU", f"{platform.machine()}, {os.cpu_count()} logical cores"),
        ("numpy", _version("numpy")),
        ("torch", f"{torch.__version__} @ {os.path.dirname(torch.__file__)}"),
        ("torch CUDA build", str(torch.version.cuda)),
        ("torch threads", str(torch.get_num_threads())),
        ("CUDA available", str(torch.cuda.is_available())),
    ]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            rows.append((f"GPU {i}", torch.cuda.get_device_name(i)))
    rows += [
        ("CUDA_HOME", str(os.environ.get("CUDA_HOME"))),
        ("nvcc", _nvcc_version()),
        ("torchvision", _version("torchvision")),
        ("detectron2", f"{_version('detectron2')} @ {os.path.dirname(importlib.import_module('detectron2').__file__)}"),
        ("detectron2._C", _detectron2_ops()),
        ("mask2former", f"{mask2former.__version__} @ {os.path.dirname(mask2former.__file__)}"),
        ("mask2former._C", layers.extension_status() if hasattr(layers, "extension_status")
         else ("loaded" if "native-cpu" in layers.available_backends() else "not built")),
        ("ms_deform_attn backends", ", ".join(layers.available_backends())),
        ("fvcore", _version("fvcore")),
        ("iopath", _version("iopath")),
        ("pycocotools", _version("pycocotools")),
        ("panopticapi", _version("panopticapi", "panopticapi-lite")),
        ("cv2", _version("cv2")),
    ]
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="append Detectron2's collect_env report")
    args = parser.parse_args(argv)
    print(tabulate(collect_env_info(), tablefmt="plain"))
    if args.full:
        from detectron2.utils.collect_env import collect_env_info as d2_info

        print()
        print(d2_info())


if __name__ == "__main__":
    main()
