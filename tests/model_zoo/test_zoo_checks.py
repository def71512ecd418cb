"""Runs without trained weights name the config's zoo entry instead of downloading the backbone
initialisation (explain_missing_weights / check_trained_weights, demo/demo.py, train_net.py
--eval-only), and failed downloads reach the user as one line."""
import os
import subprocess
import sys

import pytest

from detectron2.engine import default_argument_parser
from helpers import COCO_IMAGE_FILES, REPO, config_path, load_script, make_cfg
from mask2former.model_zoo import (
    MissingTrainedWeightsError,
    ZooDownloadError,
    backbone_initialisation,
    check_trained_weights,
    exit_on_model_zoo_error,
    explain_missing_weights,
    zoo_model_for_config,
)

R50 = config_path("coco/panoptic/r50.yaml")
SWIN_L = config_path("ade20k/semantic/swin_l.yaml")
QUICKSTART = config_path("quickstart/synthetic_panoptic.yaml")


@pytest.mark.parametrize("weights", [
    "detectron2://ImageNetPretrained/torchvision/R-50.pkl",
    "https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/torchvision/R-50.pkl",
    "R-101.pkl", "/data/weights/swin_large_patch4_window12_384_22k.pkl",
    "detectron2://ImageNetPretrained/MSRA/R-50.pkl",
])
def test_backbone_initialisations_are_recognised(weights):
    assert backbone_initialisation(weights) is not None


@pytest.mark.parametrize("weights", ["", "model_final.pth", "mask2former://coco/panoptic/r50",
                                     "https://dl.fbaipublicfiles.com/maskformer/mask2former/coco/"
                                     "panoptic/maskformer2_R50_bs16_50ep/model_final_94dc52.pkl"])
def test_trained_or_empty_weights_are_not_backbone_initialisations(weights):
    assert backbone_initialisation(weights) is None


def test_config_as_is_names_its_zoo_entry():
    msg = explain_missing_weights(make_cfg("coco/panoptic/r50.yaml"), R50, opts_flag="--opts ")
    assert "detectron2://ImageNetPretrained/torchvision/R-50.pkl" in msg
    assert "`--opts MODEL.WEIGHTS mask2former://coco/panoptic/r50`" in msg
    assert "PQ 51.9" in msg and "\n" not in msg
    msg = explain_missing_weights(make_cfg("ade20k/semantic/swin_l.yaml"), SWIN_L)
    assert "swin_large_patch4_window12_384_22k.pkl" in msg
    assert "`MODEL.WEIGHTS mask2former://ade20k/semantic/swin_l`" in msg
    msg = explain_missing_weights(make_cfg("coco/panoptic/r50.yaml", "MODEL.WEIGHTS", ""), R50)
    assert "MODEL.WEIGHTS is empty" in msg and "mask2former://coco/panoptic/r50" in msg


def test_video_config_started_from_the_coco_instance_model_names_its_own_entry(
        tmp_path, monkeypatch):
    import dataclasses

    from mask2former.model_zoo import table

    video = tmp_path / "video_r50.yaml"
    video.write_text(f"_BASE_: {R50}\n")
    entry = dataclasses.replace(table.find_model("youtubevis_2019/r50"), config=str(video))
    others = tuple(m for m in table._models() if m.name != entry.name)
    monkeypatch.setattr(table, "_models", lambda: others + (entry,))
    for start in ("model_final_3c8ec9.pkl", "mask2former://coco/instance/r50"):
        cfg = make_cfg("coco/instance/r50.yaml", "MODEL.WEIGHTS", start)
        msg = explain_missing_weights(cfg, str(video))
        assert "the released coco/instance/r50 model that training of this config starts" in msg
        assert "`MODEL.WEIGHTS mask2former://youtubevis_2019/r50`" in msg
    # an image config given another image model's checkpoint is the user's choice
    cfg = make_cfg("coco/panoptic/r50.yaml", "MODEL.WEIGHTS", "mask2former://coco/instance/r50")
    assert explain_missing_weights(cfg, R50) is None


def test_config_derived_from_a_zoo_config_names_that_entry(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text(f"_BASE_: {SWIN_L}\nSOLVER:\n  MAX_ITER: 10\n")
    assert zoo_model_for_config(str(mine)).name == "ade20k/semantic/swin_l"
    assert zoo_model_for_config(QUICKSTART) is None


def test_config_without_zoo_entry_says_so():
    msg = explain_missing_weights(make_cfg("quickstart/synthetic_panoptic.yaml"), QUICKSTART)
    assert "no released model for this config" in msg and "mask2former://" not in msg


def test_trained_weights_pass(tmp_path):
    cfg = make_cfg("coco/panoptic/r50.yaml", "MODEL.WEIGHTS", "mask2former://coco/panoptic/r50")
    assert explain_missing_weights(cfg, R50) is None
    check_trained_weights(cfg, R50)
    # --resume with a checkpoint in OUTPUT_DIR: Detectron2 loads that one, not MODEL.WEIGHTS
    cfg = make_cfg("coco/panoptic/r50.yaml", "OUTPUT_DIR", str(tmp_path))
    with pytest.raises(MissingTrainedWeightsError):
        check_trained_weights(cfg, R50, resume=True)
    (tmp_path / "last_checkpoint").write_text("model_0000009.pth")
    check_trained_weights(cfg, R50, resume=True)


def test_exit_on_model_zoo_error_is_one_line():
    with pytest.raises(SystemExit) as e:
        with exit_on_model_zoo_error("prog.py"):
            raise ZooDownloadError("Cannot download X: Y.")
    assert e.value.code == "prog.py: error: Cannot download X: Y."
    with pytest.raises(ValueError):  # other errors pass through
        with exit_on_model_zoo_error("prog.py"):
            raise ValueError("not ours")


def test_demo_without_weights_names_the_zoo_entry(closed_port_mirror, zoo_env, tmp_path):
    demo = load_script("demo/demo.py", "m2f_demo_script", register=True)
    with pytest.raises(MissingTrainedWeightsError,
                       match="--opts MODEL.WEIGHTS mask2former://coco/panoptic/r50"):
        demo.main(["--config-file", R50, "--input", COCO_IMAGE_FILES[0],
                   "--output", str(tmp_path / "out")])
    assert not os.path.exists(zoo_env) or os.listdir(zoo_env) == []  # nothing was downloaded


def test_eval_only_without_weights_names_the_zoo_entry(closed_port_mirror, zoo_env, tmp_path):
    train_net = load_script("train_net.py", "train_net", register=True)
    args = default_argument_parser().parse_args(
        ["--config-file", R50, "--eval-only", "OUTPUT_DIR", str(tmp_path / "eval")])
    with pytest.raises(MissingTrainedWeightsError,
                       match="`MODEL.WEIGHTS mask2former://coco/panoptic/r50`"):
        train_net.main(args)
    assert not os.path.exists(zoo_env) or os.listdir(zoo_env) == []


def _run_demo(env_extra, *opts):
    env = dict(os.environ, PYTHONPATH=REPO, **env_extra)
    return subprocess.run(
        [sys.executable, os.path.join(REPO, "demo", "demo.py"), "--config-file", R50,
         "--input", COCO_IMAGE_FILES[0], "--output", env_extra["FVCORE_CACHE"] + "_out",
         *(["--opts", *opts] if opts else [])],
        capture_output=True, text=True, env=env, timeout=600)


def test_demo_command_line_errors_are_one_line(closed_port_mirror, zoo_env):
    env = {"FVCORE_CACHE": str(zoo_env), "MASK2FORMER_ZOO_MIRROR": closed_port_mirror,
           "no_proxy": "127.0.0.1"}
    # no trained weights: the zoo entry, before anything is built or downloaded
    res = _run_demo(env)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-3000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("demo.py: error: ") and "mask2former://coco/panoptic/r50" in last

    # the zoo entry with the server down: one line with URL, cause and what to do
    res = _run_demo(env, "MODEL.WEIGHTS", "mask2former://coco/panoptic/r50")
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-3000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("demo.py: error: Cannot download "), last
    for part in ("model_final_94dc52.pkl", closed_port_mirror, "connection refused",
                 "MASK2FORMER_ZOO_MIRROR", str(zoo_env), "MODEL.WEIGHTS"):
        assert part in last, (part, last)
