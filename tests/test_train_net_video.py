"""train_net_video.py on a tiny Mask2Former-VIS and the synthetic YouTube-VIS-format videos:
registration -> clip mapper -> training (1 and 2 processes) -> YouTube-VIS evaluation."""

import json
import os
import subprocess
import sys

import pytest

from detectron2.engine import default_argument_parser

from helpers import REPO, TINY_VIDEO_CONFIG, TINY_VIDEO_OPTS, config_path

sys.path.insert(0, REPO)
import train_net_video  # noqa: E402

# 4 thing classes; 2-frame training clips of 64 px; every frame of the test videos at 64 px
VIDEO_OPTS = [*TINY_VIDEO_OPTS, "MODEL.SEM_SEG_HEAD.NUM_CLASSES", "4",
              "DATASETS.TRAIN", "('synthetic_ytvis_train',)", "DATASETS.TEST", "('synthetic_ytvis_val',)",
              "INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MAX_SIZE_TRAIN", "128",
              "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "128", "INPUT.CROP.ENABLED", "False",
              "SOLVER.IMS_PER_BATCH", "2", "SOLVER.BASE_LR", "0.0005", "SOLVER.WARMUP_ITERS", "0",
              "SOLVER.STEPS", "()", "SOLVER.CHECKPOINT_PERIOD", "100", "SOLVER.AMP.ENABLED", "False",
              "DATALOADER.NUM_WORKERS", "0", "TEST.EVAL_PERIOD", "0", "MODEL.DEVICE", "cpu",
              "SEED", "3"]


@pytest.fixture(scope="module")
def video_root(tmp_path_factory):
    from mask2former.data.synthetic_video import generate_synthetic_ytvis

    root = str(tmp_path_factory.mktemp("video_datasets"))
    generate_synthetic_ytvis(root, num_train=4, num_val=2, seed=0, height=64, width=96,
                             min_frames=3, max_frames=4)
    return root


@pytest.mark.slow
def test_train_then_evaluate_one_process(video_root, tmp_path, monkeypatch):
    from mask2former.data.datasets import register_synthetic_ytvis

    monkeypatch.setenv("DETECTRON2_DATASETS", video_root)
    register_synthetic_ytvis(video_root)
    out = str(tmp_path / "run")
    argv = ["--config-file", config_path(TINY_VIDEO_CONFIG), *VIDEO_OPTS, "OUTPUT_DIR", out,
            "SOLVER.MAX_ITER", "4"]
    train_net_video.main(default_argument_parser().parse_args(argv))
    assert os.path.exists(os.path.join(out, "model_final.pth"))
    metrics = [json.loads(line) for line in open(os.path.join(out, "metrics.json"))]
    losses = [m["total_loss"] for m in metrics if "total_loss" in m]
    assert losses and all(v == v for v in losses)  # logged and finite (not NaN)

    evaluated = train_net_video.main(default_argument_parser().parse_args(
        ["--eval-only"] + argv + ["MODEL.WEIGHTS", os.path.join(out, "model_final.pth"),
                                  "OUTPUT_DIR", str(tmp_path / "eval")]))
    segm = evaluated["segm"]
    assert set(segm) >= {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10"}
    assert 0 <= segm["AP"] <= 100
    assert os.path.exists(tmp_path / "eval" / "inference" / "results.json")


@pytest.mark.slow
def test_two_processes(video_root, tmp_path):
    env = dict(os.environ, DETECTRON2_DATASETS=video_root, OMP_NUM_THREADS="1")
    out = tmp_path / "two"
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "train_net_video.py"), "--num-gpus", "2",
         "--config-file", config_path(TINY_VIDEO_CONFIG), *VIDEO_OPTS, "OUTPUT_DIR", str(out),
         "SOLVER.MAX_ITER", "3", "DATASETS.TEST", "()"],
        env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (out / "model_final.pth").exists()
    metrics = [json.loads(line) for line in open(out / "metrics.json")]
    assert max(m.get("iteration", -1) for m in metrics) == 2
