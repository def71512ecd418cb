"""tools/quickstart.py end to end, shrunk: 6 training images, 3 iterations, 2 demo images
(the video quick start: 3 clips, 2 iterations, 1 clip drawn).

It checks the plumbing of `make quickstart` / `make quickstart-video` (dataset -> timed warm-up
and schedule -> train_net(_video) -> Detectron2 evaluation -> pictures -> plots -> summary), not
the accuracy: a few iterations learn nothing.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from helpers import REPO as ROOT
from helpers import build_on_meta, make_cfg

sys.path.insert(0, os.path.join(ROOT, "tools"))
import quickstart  # noqa: E402


@pytest.mark.parametrize("rel, video, arch, decoder, pixel_decoder", [
    ("quickstart/synthetic_panoptic.yaml", False, "MaskFormer",
     "MultiScaleMaskedTransformerDecoder", "MSDeformAttnPixelDecoder"),
    ("quickstart/synthetic_video.yaml", True, "VideoMaskFormer",
     "VideoMultiScaleMaskedTransformerDecoder", "MSDeformAttnPixelDecoder"),
    ("quickstart/synthetic_panoptic_maskformer.yaml", False, "MaskFormer",
     "TransformerPredictor", "BasePixelDecoder"),
])
def test_quickstart_configs_build_their_variant(rel, video, arch, decoder, pixel_decoder):
    """The three quick-start models on the meta device: same backbone and width, their variant's
    meta-architecture, pixel decoder and transformer decoder."""
    model = build_on_meta(rel)
    head = model.sem_seg_head
    assert type(model).__name__ == arch
    assert type(head.predictor).__name__ == decoder
    assert type(head.pixel_decoder).__name__ == pixel_decoder
    assert type(model.backbone).__name__ == "ResNet" and len(model.backbone.res2) == 2  # R18
    assert head.predictor.query_embed.weight.shape[1] == 128
    cfg = make_cfg(rel)
    assert cfg.MODEL.DEVICE == "cpu" and cfg.SOLVER.AMP.ENABLED is False
    assert quickstart.config_schedule(os.path.join("configs", rel), video)[0] == cfg.SOLVER.MAX_ITER


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
    targets = {"PQ": 60, "PQ things": 45}
    assert quickstart.missed_targets({"PQ": 82.7, "PQ things": 71.4}, targets) is None
    msg = quickstart.missed_targets({"PQ": 59.9, "PQ things": 71.4}, targets)
    assert msg and "PQ 59.9 < 60" in msg and "things" not in msg
    assert "PQ things missing" in quickstart.missed_targets({"PQ": 70.0}, targets)
    assert "AP 49.0 < 50" in quickstart.missed_targets({"AP": 49.0}, {"AP": 50})


def test_plan_keeps_the_schedule_when_it_fits_and_shortens_it_when_not():
    # 0.9 s/iteration, 20 s start-up, 75 iterations after training: 400 iterations need 447.5 s
    fits = quickstart.plan_iterations(400, 50, 0.9, 500.0, 20.0, 75)
    assert fits["iterations"] == 400 and fits["warmup_iters"] == 50 and not fits["shortened"]
    # twice as slow, same time left: (500 - 40) / 1.8 - 75 = 180.5 -> 180, warm-up scaled alike
    slow = quickstart.plan_iterations(400, 50, 1.8, 500.0, 40.0, 75)
    assert slow["iterations"] == 180 and slow["warmup_iters"] == 22 and slow["shortened"]
    # never fewer than the shortest schedule that reaches the minimum: over budget, said so
    slower = quickstart.plan_iterations(400, 50, 7.7, 500.0, 40.0, 75, min_iters=150)
    assert slower["iterations"] == 150 and slower["over_budget"] and slower["shortened"]
    assert not slow["over_budget"] and not fits["over_budget"]
    assert quickstart.plan_iterations(400, 50, 2.0, 10.0, 40.0, 75)["iterations"] == 1
    # 8 iterations already trained (the timed ones): the time left is for those after them,
    # and the plan never goes below them
    after = quickstart.plan_iterations(400, 50, 1.8, 500.0, 40.0, 75, done_iters=8)
    assert after["iterations"] == 188 and after["warmup_iters"] == 24
    assert quickstart.plan_iterations(400, 50, 2.0, 10.0, 40.0, 75, done_iters=8)["iterations"] == 8


def test_make_start_time(monkeypatch):
    monkeypatch.setenv("QUICKSTART_T0", "1000")
    assert quickstart.make_start_time(1100.0, 570) == 1000.0  # make began 100 s ago
    assert quickstart.make_start_time(2000.0, 570) == 2000.0  # stale value: ignored
    assert quickstart.make_start_time(900.0, 570) == 900.0  # in the future: ignored
    monkeypatch.setenv("QUICKSTART_T0", "soon")
    assert quickstart.make_start_time(1100.0, 570) == 1100.0
    monkeypatch.delenv("QUICKSTART_T0")
    assert quickstart.make_start_time(1100.0, 570) == 1100.0


def test_seconds_per_iteration_reads_the_last_logged_time(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"iteration": 19, "time": 1.5}) + "\n"
                    + json.dumps({"iteration": 39, "time": 0.9, "data_time": 0.01}) + "\n"
                    + json.dumps({"iteration": 39, "segm/AP": 3.0}) + "\n")
    assert quickstart.seconds_per_iteration(str(path)) == 0.9
    assert quickstart.seconds_per_iteration(str(tmp_path / "none.json")) is None


def test_gt_tracks_drawn_like_predictions():
    import pycocotools.mask as mask_util

    mask = np.zeros((4, 6), np.uint8)
    mask[1:3, 2:5] = 1
    rle = mask_util.encode(np.asfortranarray(mask))
    record = {"height": 4, "width": 6, "length": 3, "annotations": [
        [{"id": 7, "category_id": 2, "segmentation": rle}],
        [],
        [{"id": 7, "category_id": 2, "segmentation": rle},
         {"id": 3, "category_id": 0, "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]]}],
    ]}
    out = quickstart.gt_tracks_as_predictions(record)
    assert out["pred_labels"] == [0, 2] and out["pred_scores"] == [1.0, 1.0]
    track3, track7 = out["pred_masks"]
    assert [m.sum() for m in track7] == [6, 0, 6] and (track7[0] == mask.astype(bool)).all()
    assert track3[0].sum() == 0 and track3[1].sum() == 0 and track3[2].sum() > 0


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
    # no --iters: the first 5 iterations, timed, plan the schedule, which here is the config's,
    # made 7 iterations long by --opts; the training resumes after them
    argv = [sys.executable, os.path.join(ROOT, "tools", "quickstart.py"), "--output", str(out),
            "--num-train", "6", "--num-val", "2", "--batch", "2", "--warmup-iters", "5",
            "--demo-images", "2", "--min-pq", "0", "--min-pq-things", "0",
            "--opts", "INPUT.MIN_SIZE_TEST", "128", "SOLVER.MAX_ITER", "7"]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    # Detectron2's evaluators ran: all headline metrics are numbers
    for label in ("PQ", "mask AP", "mIoU"):
        assert isinstance(summary["metrics"][label], float), summary["metrics"]
    assert "Mask2Former quick start (image): summary" in res.stdout
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
    assert set(summary["seconds"]) >= {"dataset", "timed first iterations", "train+evaluate",
                                       "demo", "plots", "total"}
    plan = summary["plan"]
    assert plan["iterations"] == 7 and plan["config_iterations"] == 7 and not plan["shortened"]
    assert plan["seconds_per_iteration"] > 0 and plan["timed_iters"] == 5
    # one training: iterations 0-4 (timed), then 5-6 resumed from their checkpoint, not redone
    records = quickstart.metrics_records(str(out / "train" / "metrics.json"))
    assert [r["iteration"] for r in records if "total_loss" in r] == [4, 6]
    assert "Starting training from iteration 5" in res.stdout + res.stderr

    stamp = json.loads((out / "datasets" / "synthetic" / "quickstart_stamp.json").read_text())
    assert quickstart.dataset_is_current(str(out / "datasets"), stamp)  # a re-run reuses it
    assert not quickstart.dataset_is_current(str(out / "datasets"), dict(stamp, seed=1))


def test_video_quickstart_smoke(tmp_path):
    """`make quickstart-video`, shrunk: synthetic clips -> train_net_video -> YouTube-VIS AP ->
    demo_video -> ground truth | prediction pictures; AP 100 is unreachable in 2 iterations, so
    the minimum check fails it with exit status 1 after everything was written."""
    out = tmp_path / "qsv"
    argv = [sys.executable, os.path.join(ROOT, "tools", "quickstart.py"), "--video",
            "--output", str(out), "--num-train", "3", "--num-val", "2", "--iters", "2",
            "--batch", "1", "--demo-images", "1", "--min-ap", "100",
            "--opts", "INPUT.MIN_SIZE_TEST", "96", "MODEL.MASK_FORMER.TRAIN_NUM_POINTS", "256"]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-3000:]
    assert "missed its documented minimum: AP" in res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "video" and isinstance(summary["metrics"]["AP"], float)
    assert set(summary["metrics"]) == {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10"}
    assert "plan" not in summary  # --iters: nothing timed or planned
    frames_root = out / "datasets" / "synthetic_ytvis" / "valid" / "JPEGImages"
    clips = sorted(os.listdir(frames_root))
    clip = clips[0]
    frames = sorted(os.listdir(frames_root / clip))
    assert len(os.listdir(out / "predictions" / clip / "frames")) == len(frames)
    assert (out / "predictions" / clip / "video.mp4").is_file()
    assert os.listdir(out / "ground_truth" / clip)
    side = np.asarray(Image.open(out / "side_by_side" / (clip + ".png")))
    frame = np.asarray(Image.open(frames_root / clip / frames[0]))
    assert side.shape[1] == 2 * frame.shape[1] + 4  # ground truth | prediction
    assert side.shape[0] == 18 + min(4, len(frames)) * frame.shape[0]  # title + 4 frames
    assert not (out / "side_by_side" / (clips[1] + ".png")).exists()  # --demo-images 1
