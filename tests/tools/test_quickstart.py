"""tools/quickstart.py end to end, shrunk: 6 training images, 3 iterations, 2 demo images.

It checks the plumbing of `make quickstart` (dataset -> train_net -> Detectron2 evaluation ->
visualize_data + demo -> plots -> summary), not the accuracy: three iterations learn nothing.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from helpers import REPO as ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))
import quickstart  # noqa: E402


def test_choose_threads(monkeypatch):
    env = {"OMP_NUM_THREADS": "4"}
    assert quickstart.choose_threads(env, busy=8.0) is None and env["OMP_NUM_THREADS"] == "4"
    monkeypatch.setattr(quickstart.os, "cpu_count", lambda: 2)
    env = {}
    assert quickstart.choose_threads(env, busy=0.3) is None and env == {}
    message = quickstart.choose_threads(env, busy=1.6)
    assert env == {"OMP_NUM_THREADS": "1"} and "1.6 of 2 cores" in message


def test_busy_cores_sees_a_busy_loop():
    idle = quickstart.busy_cores(0.5)
    if idle is None:
        pytest.skip("no /proc/stat here")
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        busy = quickstart.busy_cores(1.0)
    finally:
        proc.kill()
        proc.wait()
    assert 0.0 <= idle <= (os.cpu_count() or 1)
    assert busy >= 0.7  # the loop keeps one core busy (plus whatever else runs)


def test_read_eval_metrics_keeps_last_values(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(
        json.dumps({"iteration": 9, "total_loss": 3.0}) + "\n"
        + json.dumps({"iteration": 10, "panoptic_seg/PQ": 10.0, "sem_seg/mIoU": 5.0}) + "\n"
        + json.dumps({"iteration": 20, "panoptic_seg/PQ": 60.5}) + "\n{broken"
    )
    assert quickstart.read_eval_metrics(str(path)) == {"panoptic_seg/PQ": 60.5, "sem_seg/mIoU": 5.0}
    assert quickstart.read_eval_metrics(str(tmp_path / "none.json")) == {}


def test_missed_targets_fail_the_quick_start():
    assert quickstart.missed_targets({"PQ": 82.7, "PQ things": 71.4}, 60, 45) is None
    msg = quickstart.missed_targets({"PQ": 59.9, "PQ things": 71.4}, 60, 45)
    assert msg and "PQ 59.9 < 60" in msg and "things" not in msg
    assert "PQ things missing" in quickstart.missed_targets({"PQ": 70.0}, 60, 45)


def test_quickstart_fails_when_the_model_misses_its_minimum(tmp_path):
    """3 iterations cannot reach PQ 60: the script says so and exits non-zero (after writing the
    pictures and summary)."""
    out = tmp_path / "qs"
    argv = [sys.executable, os.path.join(ROOT, "tools", "quickstart.py"), "--output", str(out),
            "--num-train", "4", "--num-val", "2", "--iters", "2", "--batch", "2",
            "--demo-images", "1", "--opts", "INPUT.MIN_SIZE_TEST", "128"]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert res.returncode == 1, res.stdout[-2000:] + res.stderr[-2000:]
    assert "missed its documented minimum" in res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert "missed its documented minimum" in summary["error"] and summary["metrics"]["PQ"] < 60


def test_quickstart_smoke(tmp_path):
    out = tmp_path / "qs"
    argv = [sys.executable, os.path.join(ROOT, "tools", "quickstart.py"), "--output", str(out),
            "--num-train", "6", "--num-val", "2", "--iters", "3", "--batch", "2",
            "--demo-images", "2", "--min-pq", "0", "--min-pq-things", "0",
            "--opts", "INPUT.MIN_SIZE_TEST", "128"]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    # Detectron2's evaluators ran: all headline metrics are numbers
    for label in ("PQ", "mask AP", "mIoU"):
        assert isinstance(summary["metrics"][label], float), summary["metrics"]
    assert "Mask2Former quick start: summary" in res.stdout
    assert "eta:" in res.stdout + res.stderr  # Detectron2's training log reached the user
    # pictures: ground truth, predictions (same size as the images), side by side, plots
    names = sorted(os.listdir(out / "datasets" / "synthetic" / "images" / "val"))
    assert sorted(os.listdir(out / "predictions")) == names
    for name in names:
        image = Image.open(out / "datasets" / "synthetic" / "images" / "val" / name)
        drawn = Image.open(out / "predictions" / name)
        assert drawn.size == image.size
        assert (out / "ground_truth" / name.replace(".jpg", ".png")).is_file()
        side = np.asarray(Image.open(out / "side_by_side" / name.replace(".jpg", ".png")))
        assert side.shape[1] == 2 * image.size[0] + 4
    assert {os.path.basename(p) for p in summary["pictures"]["plots"]} >= {"losses.png", "lr.png"}
    assert set(summary["seconds"]) >= {"dataset", "train+evaluate", "demo", "plots", "total"}

    stamp = json.loads((out / "datasets" / "synthetic" / "quickstart_stamp.json").read_text())
    assert quickstart.dataset_is_current(str(out / "datasets"), stamp)  # a re-run reuses it
    assert not quickstart.dataset_is_current(str(out / "datasets"), dict(stamp, seed=1))
