"""The environment report users paste into bug reports, and the set-up's Python finder."""
import os
import subprocess
import sys

from helpers import REPO as ROOT



def test_collect_env_reports_versions_and_backends():
    out = subprocess.run([sys.executable, "-m", "mask2former.collect_env"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    import detectron2
    import torch

    from mask2former.layers import available_backends

    assert torch.__version__ in out
    assert detectron2.__version__ in out
    assert "mask2former._C" in out
    backends_line = [line for line in out.splitlines() if line.startswith("ms_deform_attn backends")]
    assert backends_line and backends_line[0].split(None, 2)[2].strip() == ", ".join(available_backends())


def test_find_python_rejects_a_wrong_interpreter():
    env = dict(os.environ, PYTHON="/nonexistent/python3.10")
    proc = subprocess.run(["bash", os.path.join(ROOT, "tools", "find_python.sh")], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "PYTHON=/nonexistent/python3.10 is not a working CPython 3.10" in proc.stderr


def test_find_python_finds_python310():
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"}
    proc = subprocess.run(["bash", os.path.join(ROOT, "tools", "find_python.sh")], env=env,
                          capture_output=True, text=True)
    if proc.returncode == 0:
        found = proc.stdout.strip()
        ver = subprocess.run([found, "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
        assert ver == "(3, 10)"
    else:  # no 3.10 on this machine: the error must name what to install
        assert "no CPython 3.10 found" in proc.stderr
