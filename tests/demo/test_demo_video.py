"""demo/demo_video.py with a fake video model whose tracks are known: frames and an mp4 are
written, each track keeps its colour through the video, the threshold is honoured, and broken
inputs are named with exit status 1."""

import os

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from detectron2.data import MetadataCatalog
from detectron2.modeling import META_ARCH_REGISTRY

from helpers import load_script

FAKE = "_DemoVideoFakeModel"
DATASET = "_demo_video_fake_val"

if FAKE not in META_ARCH_REGISTRY:

    @META_ARCH_REGISTRY.register()
    class _DemoVideoFakeModel(nn.Module):
        """Two tracks at the input's size: "cat" (score 0.9) in the left third of every frame,
        "dog" (score 0.3) in the right third of frame 1 only."""

        def __init__(self, cfg):
            super().__init__()
            self.dummy = nn.Parameter(torch.zeros(1))

        def forward(self, batched_inputs):
            (clip,) = batched_inputs
            t, h, w = len(clip["image"]), clip["height"], clip["width"]
            cat = torch.zeros(t, h, w, dtype=torch.bool)
            cat[:, :, : w // 3] = True
            dog = torch.zeros(t, h, w, dtype=torch.bool)
            dog[1, :, 2 * w // 3:] = True
            return {"image_size": (h, w), "pred_scores": [0.9, 0.3], "pred_labels": [0, 1],
                    "pred_masks": [cat, dog]}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo_video")
    if not MetadataCatalog.get(DATASET).get("thing_classes", None):
        MetadataCatalog.get(DATASET).set(thing_classes=["cat", "dog"],
                                         thing_colors=[[220, 20, 60], [0, 0, 230]])
    weights = tmp / "fake.pth"
    torch.save({"model": {"dummy": torch.zeros(1)}}, weights)
    config = tmp / "fake.yaml"
    config.write_text(f"MODEL:\n  META_ARCHITECTURE: {FAKE}\n  DEVICE: cpu\n  WEIGHTS: {weights}\n"
                      f"DATASETS:\n  TEST: ('{DATASET}',)\nINPUT:\n  MIN_SIZE_TEST: 48\n")
    frames = tmp / "frames"
    frames.mkdir()
    for i in range(3):  # smooth frames: JPEG keeps the undrawn parts within a few levels
        ramp = np.linspace(80, 120, 90, dtype=np.float32)[None, :, None] + 10 * i
        cv2.imwrite(str(frames / f"{i:03d}.png"), np.broadcast_to(ramp, (60, 90, 3)).astype(np.uint8))
    return str(config), frames


def _run(config, inp, out, *extra):
    demo = load_script("demo/demo_video.py", "m2f_demo_video", register=True)
    return demo.main(["--config-file", config, "--input", str(inp), "--output", str(out), *extra])


def _changed(a, b, cols):
    w = a.shape[1]
    region = slice(int(cols[0] * w) + 2, int(cols[1] * w) - 2)
    return np.abs(a[:, region].astype(float) - b[:, region].astype(float)).mean()


def test_frames_and_video_with_stable_track_colours(setup, tmp_path):
    config, frames = setup
    assert _run(config, frames, tmp_path / "out") == 0
    written = sorted(os.listdir(tmp_path / "out" / "frames"))
    assert written == ["000.jpg", "001.jpg", "002.jpg"]
    video = cv2.VideoCapture(str(tmp_path / "out" / "video.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    originals = [cv2.imread(str(frames / f"{i:03d}.png")) for i in range(3)]
    drawn = [cv2.imread(str(tmp_path / "out" / "frames" / n)) for n in written]
    colours = []
    for orig, img in zip(originals, drawn):
        assert _changed(orig, img, (0.0, 0.33)) > 10  # the 0.9 "cat" track, every frame
        assert _changed(orig, img, (0.67, 1.0)) < 5  # the 0.3 "dog" is below the threshold
        colours.append(img[30, 5].astype(int))
    # the track's colour does not change from frame to frame (JPEG rounding aside)
    assert max(np.abs(c - colours[0]).max() for c in colours) <= 6


def test_threshold_and_absent_frames(setup, tmp_path):
    config, frames = setup
    assert _run(config, frames, tmp_path / "out", "--confidence-threshold", "0.1") == 0
    drawn = [cv2.imread(str(tmp_path / "out" / "frames" / f"{i:03d}.jpg")) for i in range(3)]
    originals = [cv2.imread(str(frames / f"{i:03d}.png")) for i in range(3)]
    assert _changed(originals[1], drawn[1], (0.67, 1.0)) > 10  # the dog, where it is present
    assert _changed(originals[0], drawn[0], (0.67, 1.0)) < 5  # and nowhere else


def test_broken_inputs_are_named_with_exit_status_1(setup, tmp_path, capsys):
    config, frames = setup
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in os.listdir(frames):
        (broken / name).write_bytes((frames / name).read_bytes())
    (broken / "001.png").write_bytes(b"not an image")
    assert _run(config, broken, tmp_path / "o1") == 1
    log = capsys.readouterr()
    assert "001.png cannot be read" in log.err
    bad_video = tmp_path / "clip.mp4"
    bad_video.write_bytes(b"\x00" * 100)
    assert _run(config, bad_video, tmp_path / "o2") == 1
    log = capsys.readouterr()
    assert "clip.mp4: not a readable video" in log.err


def test_the_real_video_model_end_to_end(setup, tmp_path):
    """A tiny Mask2Former-VIS (random weights saved to a file) through VideoPredictor."""
    from detectron2.modeling import build_model

    from helpers import TINY_VIDEO_CONFIG, TINY_VIDEO_OPTS, config_path, make_cfg

    _, frames = setup
    cfg = make_cfg(TINY_VIDEO_CONFIG, *TINY_VIDEO_OPTS, "INPUT.MIN_SIZE_TEST", "64")
    torch.manual_seed(0)
    weights = tmp_path / "tiny_vis.pth"
    torch.save({"model": build_model(cfg).state_dict()}, weights)
    opts = [*TINY_VIDEO_OPTS, "INPUT.MIN_SIZE_TEST", "64", "MODEL.DEVICE", "cpu"]
    opts[opts.index("MODEL.WEIGHTS") + 1] = str(weights)
    assert _run(config_path(TINY_VIDEO_CONFIG), frames, tmp_path / "out",
                "--confidence-threshold", "0", "--opts", *opts) == 0
    assert sorted(os.listdir(tmp_path / "out" / "frames")) == ["000.jpg", "001.jpg", "002.jpg"]
    assert (tmp_path / "out" / "video.mp4").stat().st_size > 0
