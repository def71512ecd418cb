"""Numerical parity with the original implementation (../shared/tools/parity_check.py)."""

import os

import pytest
import torch

from helpers import REPO, config_path, load_script

FIXTURES = os.path.join(REPO, "..", "shared", "fixtures")
SHARED_TOOLS = os.path.join(REPO, "..", "shared", "tools")


def _parity_main():
    return load_script(os.path.join(SHARED_TOOLS, "parity_check.py"), "m2f_parity_check").main


@pytest.mark.slow
@pytest.mark.parametrize(
    "fixture,config",
    [
        ("parity_coco_panoptic_r50.pt", "coco/panoptic/r50.yaml"),
        ("parity_coco_panoptic_swin_t.pt", "coco/panoptic/swin_t.yaml"),
    ],
)
def test_parity_with_original(fixture, config, capsys):
    grad_mode = torch.is_grad_enabled()
    try:
        status = _parity_main()(os.path.join(FIXTURES, fixture), config_path(config))
    finally:
        torch.set_grad_enabled(grad_mode)  # parity_check disables autograd globally
    out = capsys.readouterr().out
    print(out)
    lines = [line for line in out.splitlines() if line.strip()]
    assert status == 0, out
    assert lines[-1].startswith("parity ") and "differ" not in lines[-1], out
    assert not any(line.startswith("FAIL") for line in lines), out
