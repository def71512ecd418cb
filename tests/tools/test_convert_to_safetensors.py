import contextlib
import io
import os
import pickle
import subprocess
import sys

import numpy as np
import torch

from helpers import REPO as ROOT
from helpers import load_script

from mask2former.checkpoint import Mask2FormerCheckpointer
from mask2former.checkpoint.weights import load_safetensors_weights

TOOL = os.path.join(ROOT, "tools", "convert_to_safetensors.py")


def _load_tool():
    return load_script("tools/convert_to_safetensors.py", "convert_to_safetensors")


_tool = _load_tool()


class _Result:
    def __init__(self, returncode, stderr):
        self.returncode, self.stderr = returncode, stderr


def _run(*args, env=None):
    """Run the tool's main() in-process (a subprocess costs seconds of torch import)."""
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            try:
                code = _tool.main(list(args))
            except SystemExit as e:  # argparse errors
                code = e.code
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return _Result(code, err.getvalue())


def test_cli_runs_as_script(tmp_path):
    torch.save({"w": torch.arange(3.0)}, tmp_path / "w.pth")
    r = subprocess.run([sys.executable, TOOL, str(tmp_path / "w.pth")], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert torch.equal(load_safetensors_weights(str(tmp_path / "w.safetensors"))["model"]["w"],
                       torch.arange(3.0))


def test_pkl_to_safetensors_roundtrip_and_load(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    sd = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    sd["0.weight"] = np.asfortranarray(sd["0.weight"])  # non-contiguous input is handled
    src = tmp_path / "model_final_abc.pkl"
    with open(src, "wb") as f:
        pickle.dump({"model": sd, "__author__": "Detectron2 Model Zoo"}, f, protocol=2)
    r = _run(str(src))
    assert r.returncode == 0, r.stderr
    dst = tmp_path / "model_final_abc.safetensors"
    out = load_safetensors_weights(str(dst))
    assert out["__author__"] == "Detectron2 Model Zoo"
    assert out["source_file"] == "model_final_abc.pkl" and out["source_format"] == "pkl"
    for k, v in sd.items():
        assert np.array_equal(out["model"][k].numpy(), v), k
    # loads through MODEL.WEIGHTS-style path into a fresh model
    fresh = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    Mask2FormerCheckpointer(fresh).load(str(dst))
    assert torch.equal(fresh[0].weight, torch.from_numpy(np.ascontiguousarray(sd["0.weight"])))
    # refuses to overwrite without --force
    assert _run(str(src)).returncode != 0
    assert _run(str(src), "--force").returncode == 0


def test_training_checkpoint_keeps_weights_only(tmp_path):
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 2)).sum().backward()
    opt.step()
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "iteration": 41},
               tmp_path / "model_0000041.pth")
    r = _run(str(tmp_path / "model_0000041.pth"), "-o", str(tmp_path / "w.safetensors"))
    assert r.returncode == 0, r.stderr
    out = load_safetensors_weights(str(tmp_path / "w.safetensors"))
    assert set(out["model"]) == {"weight", "bias"} and out["iteration"] == 41


def test_unsafe_pickle_needs_opt_in(tmp_path):
    class_path = tmp_path / "evil.pkl"
    # A pickle that would call os.system at load time (never executed by the tool).
    payload = b"cos\nsystem\n(S'touch " + str(tmp_path / "PWNED").encode() + b"'\ntR."
    class_path.write_bytes(payload)
    r = _run(str(class_path), env={"MASK2FORMER_ALLOW_UNSAFE_PICKLE": ""})
    assert r.returncode == 2
    assert "MASK2FORMER_ALLOW_UNSAFE_PICKLE" in r.stderr
    assert not (tmp_path / "PWNED").exists()
    assert not (tmp_path / "evil.safetensors").exists()


def test_bad_output_name(tmp_path):
    src = tmp_path / "w.pth"
    torch.save({"a": torch.zeros(1)}, src)
    r = _run(str(src), "-o", str(tmp_path / "w.bin"))
    assert r.returncode != 0 and "must end in .safetensors" in r.stderr
