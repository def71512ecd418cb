"""demo/demo.py and demo/predictor.py with a fake model whose outputs are known (fast), on the
real COCO sample photos, broken files and a small video."""
import logging
import os

import cv2
import numpy as np
import pytest
import torch

from detectron2.data import MetadataCatalog
from detectron2.structures import Instances
from detectron2.utils.visualizer import ColorMode

from helpers import COCO_IMAGES, config_path



class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def demo_log():
    handler = _Records()
    logger = logging.getLogger("demo")
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


# --------------------------------------------------------------------------- pure helpers
def test_filter_instances(demo_module):
    from mask2former.utils.visualizer import filter_instances

    inst = Instances((4, 4), scores=torch.tensor([0.9, 0.2, 0.5]), pred_classes=torch.tensor([0, 1, 2]))
    assert filter_instances(inst, 0.5).pred_classes.tolist() == [0, 2]
    assert len(filter_instances(inst, 0.0)) == 3


def test_filter_panoptic(demo_module):
    from mask2former.utils.visualizer import filter_panoptic

    seg = torch.tensor([[1, 1, 2], [3, 3, 0]], dtype=torch.int32)
    infos = [{"id": 1, "score": 0.9}, {"id": 2, "score": 0.1}, {"id": 3, "score": 0.6}]
    out, kept, applied = filter_panoptic(seg, infos, 0.5)
    assert applied and [s["id"] for s in kept] == [1, 3]
    assert out.tolist() == [[1, 1, 0], [3, 3, 0]] and out.dtype == torch.int32
    # segments without a score: nothing can be compared, nothing is removed
    out, kept, applied = filter_panoptic(seg, [{"id": 1}, {"id": 2}, {"id": 3}], 0.5)
    assert not applied and len(kept) == 3 and torch.equal(out, seg)


def test_choose_task(demo_module):
    from mask2former.utils.visualizer import choose_task

    assert choose_task({"sem_seg": 0, "instances": 0, "panoptic_seg": 0}) == "panoptic"
    assert choose_task({"sem_seg": 0, "instances": 0}) == "instance"
    assert choose_task({"sem_seg": 0}, "auto") == "semantic"
    with pytest.raises(KeyError, match="PANOPTIC_ON"):
        choose_task({"sem_seg": 0}, "panoptic")
    with pytest.raises(ValueError):
        choose_task({"sem_seg": 0}, "boxes")


def test_full_class_metadata(demo_module, fake_config):
    from mask2former.utils.visualizer import full_class_metadata

    meta = MetadataCatalog.get("_demo_test_fake_val")
    full = full_class_metadata(meta, 4)
    assert full.thing_classes == ["sky", "grass", "cat", "dog"]
    assert full.thing_colors[2] == [220, 20, 60]
    assert meta.thing_classes == ["cat", "dog"]  # the catalog entry is untouched
    assert full_class_metadata(meta, 2) is meta  # stuff list does not cover the model's classes


# --------------------------------------------------------------------------- VisualizationDemo
def _demo(demo_module, fake_config, **kwargs):
    args = demo_module.get_parser().parse_args(["--config-file", fake_config, "--input", "x"])
    cfg = demo_module.setup_cfg(args)
    from mask2former.utils.visualizer import VisualizationDemo

    return VisualizationDemo(cfg, **kwargs)


def _changed(before, after, rows, cols):
    """Largest change of a channel's mean colour over the centre of a region.

    Region means, not pixel differences: Detectron2's renderer may shift the picture by a pixel.
    """
    h, w = before.shape[:2]
    r0, r1 = int(rows[0] * h), int(rows[1] * h)
    c0, c1 = int(cols[0] * w), int(cols[1] * w)
    mean = lambda x: x[r0:r1, c0:c1].reshape(-1, 3).astype(float).mean(0)  # noqa: E731
    return np.abs(mean(before) - mean(after)).max()


@pytest.mark.parametrize("task", ["panoptic", "instance"])
def test_confidence_threshold_removes_low_scores(demo_module, fake_config, task):
    img = cv2.imread(os.path.join(COCO_IMAGES, "000000439180.jpg"))
    for threshold, low_drawn in ((0.5, False), (0.1, True)):
        demo = _demo(demo_module, fake_config, confidence_threshold=threshold, task=task)
        predictions, vis = demo.run_on_image(img)
        out = vis.get_image()[:, :, ::-1]  # back to BGR
        assert out.shape == img.shape
        # the 0.95 thing (top right) is always drawn; the 0.3 thing (bottom right) only at 0.1
        assert _changed(img, out, (0.1, 0.4), (0.6, 0.9)) > 10
        low = _changed(img, out, (0.6, 0.9), (0.6, 0.9))
        assert (low > 10) == low_drawn, (threshold, low)
        expected = {("panoptic", 0.5): 2, ("panoptic", 0.1): 3, ("instance", 0.5): 1,
                    ("instance", 0.1): 2}[(task, threshold)]
        assert demo.last_drawn == (task, expected)
    # the model saw the image resized to MIN_SIZE_TEST and in RGB
    seen = demo.predictor.model.seen[-1]
    assert min(seen[0][1:]) == 128 and seen[1:] == img.shape[:2]


def test_semantic_and_color_modes(demo_module, fake_config):
    img = cv2.imread(os.path.join(COCO_IMAGES, "000000142238.jpg"))
    demo = _demo(demo_module, fake_config, task="semantic", instance_mode=ColorMode.IMAGE_BW)
    _, vis = demo.run_on_image(img)
    assert demo.last_drawn == ("semantic", 3)
    assert _changed(img, vis.get_image()[:, :, ::-1], (0.6, 0.9), (0.6, 0.9)) > 10


# --------------------------------------------------------------------------- command line
def test_cli_images_and_broken_files(demo_module, fake_config, broken_images, tmp_path, demo_log):
    out = tmp_path / "out"
    status = demo_module.main([
        "--config-file", fake_config,
        "--input", os.path.join(COCO_IMAGES, "*.jpg"), str(broken_images),
        str(tmp_path / "missing_*.jpg"),
        "--output", str(out), "--confidence-threshold", "0.4",
    ])
    assert status == 1  # some inputs failed
    written = sorted(os.listdir(out))
    assert written == ["000000142238.jpg", "000000439180.jpg"]
    for name in written:
        a = cv2.imread(os.path.join(COCO_IMAGES, name))
        b = cv2.imread(str(out / name))
        assert a.shape == b.shape and _changed(a, b, (0.1, 0.9), (0.1, 0.9)) > 5
    log = "\n".join(demo_log)
    for bad in ("garbage.jpg", "empty.png", "truncated.jpg", "missing_*.jpg"):
        assert "FAILED" in log and bad in log, bad
    assert "2 image(s) drawn, 4 failed" in log


def test_cli_single_file_output_and_success_status(demo_module, fake_config, tmp_path):
    out = tmp_path / "sub" / "drawn.png"
    status = demo_module.main([
        "--config-file", fake_config, "--input", os.path.join(COCO_IMAGES, "000000439180.jpg"),
        "--output", str(out), "--task", "instance",
    ])
    assert status == 0 and cv2.imread(str(out)).shape == (360, 640, 3)


def test_output_paths_dedupes_names(demo_module, tmp_path):
    paths = demo_module.output_paths(["a/x.jpg", "b/x.jpg", "c/y.gif"], str(tmp_path))
    assert [os.path.basename(p) for p in paths] == ["x.jpg", "x_1.jpg", "y.png"]
    assert demo_module.output_paths(["a/x.jpg"], "o.png") == ["o.png"]


def test_no_output_without_gui_fails_clearly(demo_module, fake_config):
    if cv2.getBuildInformation().find("GUI:") >= 0 and "NONE" not in cv2.getBuildInformation().split("GUI:")[1][:60]:
        pytest.skip("this OpenCV has a GUI")
    with pytest.raises(SystemExit, match="--output"):
        demo_module.main(["--config-file", fake_config, "--input", "x.jpg"])


def test_cli_video(demo_module, fake_config, tmp_path):
    src = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(src, cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (96, 64))
    rng = np.random.default_rng(0)
    for _ in range(6):
        writer.write(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))
    writer.release()
    out = tmp_path / "vis"
    assert demo_module.main([
        "--config-file", fake_config, "--video-input", src, "--output", str(out) + os.sep,
        "--max-frames", "4",
    ]) == 0
    cap = cv2.VideoCapture(str(out / "clip.mp4"))
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames == 4 and cap.get(cv2.CAP_PROP_FRAME_WIDTH) == 96
    assert demo_module.main([
        "--config-file", fake_config, "--video-input", str(tmp_path / "none.mp4"), "--output", str(out)
    ]) == 1


# --------------------------------------------------------------------------- the real model
QUICKSTART_CONFIG = config_path("quickstart/synthetic_panoptic.yaml")


def test_tiny_mask2former_random_weights_on_coco_photos(demo_module, tmp_path):
    """The quick-start Mask2Former (random weights, COCO's 133 classes) on the real photos:
    the command line with panoptic output, then the instance and semantic drawings."""
    coco = ["DATASETS.TRAIN", "('coco_2017_val_panoptic_with_sem_seg',)",
            "DATASETS.TEST", "('coco_2017_val_panoptic_with_sem_seg',)",
            "MODEL.SEM_SEG_HEAD.NUM_CLASSES", "133", "INPUT.MIN_SIZE_TEST", "160",
            "MODEL.MASK_FORMER.TEST.OBJECT_MASK_THRESHOLD", "0.0",
            "MODEL.MASK_FORMER.TEST.OVERLAP_THRESHOLD", "0.0"]
    out = tmp_path / "out"
    argv = ["--config-file", QUICKSTART_CONFIG, "--input", COCO_IMAGES, "--output",
            str(out), "--confidence-threshold", "0", "--opts"] + coco
    # the demo refuses to run without trained weights: give it a file of random ones
    from detectron2.modeling import build_model

    torch.manual_seed(0)
    weights = str(tmp_path / "random_weights.pth")
    torch.save({"model": build_model(demo_module.setup_cfg(
        demo_module.get_parser().parse_args(argv))).state_dict()}, weights)
    argv += ["MODEL.WEIGHTS", weights]
    assert demo_module.main(argv) == 0
    names = sorted(os.listdir(COCO_IMAGES))
    assert sorted(os.listdir(out)) == names
    for name in names:
        a = cv2.imread(os.path.join(COCO_IMAGES, name))
        b = cv2.imread(str(out / name))
        assert b is not None and a.shape == b.shape
        assert _changed(a, b, (0.0, 1.0), (0.0, 1.0)) > 2, "nothing was drawn"

    from mask2former.utils.visualizer import VisualizationDemo

    demo = VisualizationDemo(demo_module.setup_cfg(demo_module.get_parser().parse_args(argv)),
                             confidence_threshold=0.0)
    img = cv2.imread(os.path.join(COCO_IMAGES, names[0]))
    predictions = demo.predictor(img)
    assert set(predictions) == {"panoptic_seg", "instances", "sem_seg"}
    for task in ("instance", "semantic"):
        demo.task = task
        _, vis = demo.draw(img[:, :, ::-1], predictions)
        assert demo.last_drawn[0] == task and demo.last_drawn[1] > 0
        assert _changed(img, vis.get_image()[:, :, ::-1], (0.0, 1.0), (0.0, 1.0)) > 2, task
