import logging
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from mask2former.checkpoint import (
    CheckpointKeysError,
    CheckpointShapeError,
    Mask2FormerCheckpointer,
    NonFiniteWeightsError,
    is_intact_checkpoint,
)
from mask2former.checkpoint.weights import UnsafeCheckpointError, save_safetensors_weights


class Head(torch.nn.Module):
    def __init__(self, num_classes=4, queries=3):
        super().__init__()
        self.query_feat = torch.nn.Embedding(queries, 8)
        self.class_embed = torch.nn.Linear(8, num_classes + 1)
        self.mask_embed = torch.nn.Linear(8, 8)


class Net(torch.nn.Module):
    def __init__(self, num_classes=4, queries=3):
        super().__init__()
        self.predictor = Head(num_classes, queries)
        self.register_buffer("empty_weight", torch.ones(num_classes + 1))


def _ckpt(tmp_path, model=None, **kw):
    model = model or Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return Mask2FormerCheckpointer(model, str(tmp_path), save_to_disk=True, optimizer=opt, **kw)


def test_save_is_atomic_when_interrupted(tmp_path, monkeypatch):
    ck = _ckpt(tmp_path)
    ck.save("model_0000001", iteration=1)
    good = (tmp_path / "model_0000001.pth").read_bytes()

    real_save = torch.save

    def half_then_die(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        f.truncate(100)
        raise KeyboardInterrupt("killed mid-save")

    monkeypatch.setattr(torch, "save", half_then_die)
    with pytest.raises(KeyboardInterrupt):
        ck.save("model_0000001", iteration=2)  # overwrite attempt of the same name
    with pytest.raises(KeyboardInterrupt):
        ck.save("model_0000002", iteration=2)
    monkeypatch.undo()
    assert (tmp_path / "model_0000001.pth").read_bytes() == good
    assert not (tmp_path / "model_0000002.pth").exists()
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000001.pth"]
    assert ck.resume_or_load("", resume=True)["iteration"] == 1


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".model_0000005.pth.tmp-{dead.pid}-abc123"
    live = tmp_path / f".model_0000006.pth.tmp-{os.getpid()}-abc123"
    stale.write_bytes(b"partial")
    live.write_bytes(b"partial")
    ck = _ckpt(tmp_path)
    ck.save("model_0000001", iteration=1)
    ck.resume_or_load("", resume=True)
    assert not stale.exists() and live.exists()


def test_resume_falls_back_to_newest_intact_checkpoint(tmp_path, caplog):
    ck = _ckpt(tmp_path)
    ck.save("model_0000001", iteration=1)
    os.utime(tmp_path / "model_0000001.pth", (1, 1))
    ck.save("model_0000003", iteration=3)
    os.utime(tmp_path / "model_0000003.pth", (2, 2))
    ck.save("model_0000005", iteration=5)
    data = (tmp_path / "model_0000005.pth").read_bytes()
    (tmp_path / "model_0000005.pth").write_bytes(data[: len(data) // 2])  # e.g. old writer died
    assert not is_intact_checkpoint(str(tmp_path / "model_0000005.pth"))
    with caplog.at_level(logging.WARNING):
        extra = _ckpt(tmp_path).resume_or_load("", resume=True)
    assert extra["iteration"] == 3
    assert "newest intact checkpoint" in caplog.text
    # A flipped byte inside the data (same size) is caught by the CRC check too.
    raw = bytearray((tmp_path / "model_0000003.pth").read_bytes())
    raw[len(raw) // 3] ^= 0xFF
    (tmp_path / "model_0000003.pth").write_bytes(bytes(raw))
    assert _ckpt(tmp_path).resume_or_load("", resume=True)["iteration"] == 1
    os.remove(tmp_path / "model_0000001.pth")
    with pytest.raises(RuntimeError, match="no other intact"):
        _ckpt(tmp_path).resume_or_load("", resume=True)


def test_refuses_to_save_non_finite_weights(tmp_path):
    model = Net()
    ck = _ckpt(tmp_path, model)
    ck.save("model_0000001", iteration=1)
    with torch.no_grad():
        model.predictor.mask_embed.weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteWeightsError, match="predictor.mask_embed.weight"):
        ck.save("model_0000002", iteration=2)
    ck.save("model_final")  # blocked from now on: logged, not written
    assert sorted(p for p in os.listdir(tmp_path) if p.endswith(".pth")) == ["model_0000001.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"


def test_block_saves(tmp_path):
    ck = _ckpt(tmp_path)
    ck.block_saves("test reason")
    ck.save("model_0000001")
    assert os.listdir(tmp_path) == []


def _state(num_classes=4, queries=3, seed=1):
    torch.manual_seed(seed)
    return Net(num_classes, queries).state_dict()


def test_load_safetensors_pth_and_numpy_pkl(tmp_path):
    sd = _state(seed=3)
    save_safetensors_weights(sd, str(tmp_path / "w.safetensors"), author="test",
                             extra={"note": "x"})
    torch.save({"model": sd}, tmp_path / "w.pth")
    with open(tmp_path / "w.pkl", "wb") as f:
        pickle.dump({"model": {k: v.numpy() for k, v in sd.items()}, "__author__": "zoo"}, f)
    for name in ["w.safetensors", "w.pth", "w.pkl"]:
        model = Net()
        out = Mask2FormerCheckpointer(model).load(str(tmp_path / name))
        for k, v in sd.items():
            assert torch.equal(model.state_dict()[k], v), (name, k)
        if name == "w.safetensors":
            assert out["__author__"] == "test" and out["note"] == "x"


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_malicious_pickles_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MASK2FORMER_ALLOW_UNSAFE_PICKLE", raising=False)
    with open("evil.pkl", "wb") as f:
        pickle.dump({"model": {"w": np.zeros(2)}, "__author__": _Evil()}, f)
    with pytest.raises(UnsafeCheckpointError, match="posix.system|os.system"):
        Mask2FormerCheckpointer(Net()).load(str(tmp_path / "evil.pkl"))
    torch.save({"model": {"w": torch.zeros(2)}, "x": _Evil()}, "evil.pth")
    with pytest.raises(UnsafeCheckpointError, match="weights_only"):
        Mask2FormerCheckpointer(Net()).load(str(tmp_path / "evil.pth"))
    assert not (tmp_path / "PWNED").exists()


def test_shape_mismatch_is_explained_and_strict_when_resuming(tmp_path, caplog):
    torch.save({"model": _state(num_classes=7, queries=5)}, tmp_path / "other.pth")
    model = Net(num_classes=4, queries=3)
    with caplog.at_level(logging.WARNING):
        Mask2FormerCheckpointer(model).load(str(tmp_path / "other.pth"))
    text = caplog.text
    assert "Partial load: 4 tensor(s) skipped for shape mismatch" in text
    assert "MODEL.SEM_SEG_HEAD.NUM_CLASSES = 7 but the config has 4" in text
    assert "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES = 5 but the config has 3" in text
    # mask_embed fits and was loaded
    ref = _state(7, 5)["predictor.mask_embed.weight"]
    assert torch.equal(model.predictor.mask_embed.weight, ref)
    with pytest.raises(CheckpointShapeError, match="(?i)set MODEL.SEM_SEG_HEAD.NUM_CLASSES 7 "):
        Mask2FormerCheckpointer(Net(), strict_shapes=True).load(str(tmp_path / "other.pth"))
    # resuming a run whose directory holds a checkpoint of another model is an error
    run = tmp_path / "run"
    _ckpt(run, Net(num_classes=7)).save("model_0000001", iteration=1)
    with pytest.raises(CheckpointShapeError, match="resuming"):
        _ckpt(run, Net(num_classes=4)).resume_or_load("", resume=True)


def test_key_mismatch_is_an_error_only_when_loading_strictly(tmp_path, caplog):
    sd = _state(seed=5)
    sd["predictor.mask_embed.renamed"] = sd.pop("predictor.mask_embed.weight")
    torch.save({"model": sd}, tmp_path / "renamed.pth")
    path = str(tmp_path / "renamed.pth")
    # fine-tuning: a partial load, reported
    model = Net()
    with caplog.at_level(logging.WARNING):
        Mask2FormerCheckpointer(model).load(path)
    assert "1 model tensor(s) not in the checkpoint" in caplog.text
    assert torch.equal(model.predictor.class_embed.weight, sd["predictor.class_embed.weight"])
    # inference (strict_shapes=True, as train_net --eval-only and the demo load): an error
    with pytest.raises(CheckpointKeysError, match=r"mask_embed\.weight.*mask_embed\.renamed"):
        Mask2FormerCheckpointer(Net(), strict_shapes=True).load(path)
    # strict shapes with partial loads allowed explicitly
    Mask2FormerCheckpointer(Net(), strict_shapes=True, strict_keys=False).load(path)


def test_legacy_format_checkpoints_count_as_intact(tmp_path):
    path = tmp_path / "legacy.pth"
    torch.save({"model": {"w": torch.ones(3)}, "iteration": 1}, path,
               _use_new_zipfile_serialization=False)
    assert is_intact_checkpoint(str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert not is_intact_checkpoint(str(path))
