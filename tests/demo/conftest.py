"""Shared helpers for the demo tests: load demo/demo.py as a module, a fake meta-architecture
whose outputs are known, broken image files, and the real COCO sample images."""
import os

import numpy as np
import pytest
import torch
from torch import nn

from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.structures import Boxes, Instances

from helpers import COCO_IMAGES, load_script
FAKE_ARCH = "_DemoTestFakeModel"


def load_demo_module():
    """Import demo/demo.py like the script does."""
    return load_script("demo/demo.py", "m2f_demo_script", register=True)


if FAKE_ARCH not in META_ARCH_REGISTRY:

    @META_ARCH_REGISTRY.register()
    class _DemoTestFakeModel(nn.Module):
        """Deterministic outputs for 4 classes (0, 1 stuff; 2, 3 things), independent of weights.

        Panoptic: left half stuff class 0 (score 0.9), a thing of class 2 in the top-right
        quarter (score 0.95) and one of class 3 in the bottom-right quarter (score 0.3).
        Instances: the same two things. Semantic: class = 0 left, 2 top-right, 3 bottom-right.
        Records the input sizes it saw in ``self.seen``.
        """

        def __init__(self, cfg):
            super().__init__()
            self.dummy = nn.Parameter(torch.zeros(1))
            self.seen = []

        def forward(self, batched_inputs):
            outs = []
            for x in batched_inputs:
                self.seen.append((tuple(x["image"].shape), x["height"], x["width"]))
                h, w = x["height"], x["width"]
                seg = torch.zeros(h, w, dtype=torch.int32)
                seg[:, : w // 2] = 1
                seg[: h // 2, w // 2:] = 2
                seg[h // 2:, w // 2:] = 3
                infos = [
                    {"id": 1, "category_id": 0, "isthing": False, "score": 0.9},
                    {"id": 2, "category_id": 2, "isthing": True, "score": 0.95},
                    {"id": 3, "category_id": 3, "isthing": True, "score": 0.3},
                ]
                masks = torch.stack([seg == 2, seg == 3])
                inst = Instances((h, w))
                inst.pred_masks = masks
                inst.pred_classes = torch.tensor([2, 3])
                inst.scores = torch.tensor([0.95, 0.3])
                inst.pred_boxes = Boxes(torch.tensor(
                    [[w / 2, 0, w, h / 2], [w / 2, h / 2, w, h]], dtype=torch.float32))
                sem = torch.zeros(4, h, w)
                sem[0][seg == 1] = 1
                sem[2][seg == 2] = 1
                sem[3][seg == 3] = 1
                outs.append({"panoptic_seg": (seg, infos), "instances": inst, "sem_seg": sem})
            return outs


@pytest.fixture(scope="session")
def demo_module():
    return load_demo_module()


@pytest.fixture(scope="session")
def fake_config(tmp_path_factory):
    """A config file for the fake model with a registered 4-class test dataset metadata."""
    from detectron2.data import MetadataCatalog

    name = "_demo_test_fake_val"
    meta = MetadataCatalog.get(name)
    if not meta.get("stuff_classes", None):
        meta.set(
            stuff_classes=["sky", "grass", "cat", "dog"],
            stuff_colors=[[70, 130, 180], [0, 200, 0], [220, 20, 60], [0, 0, 230]],
            thing_classes=["cat", "dog"],  # things only: the demo must map ids to all classes
            thing_colors=[[220, 20, 60], [0, 0, 230]],
            thing_dataset_id_to_contiguous_id={3: 2, 4: 3},
        )
    folder = tmp_path_factory.mktemp("cfg")
    path = folder / "fake.yaml"
    weights = folder / "fake_trained.pth"  # the demo refuses to run without trained weights
    torch.save({"model": {"dummy": torch.zeros(1)}}, weights)
    path.write_text(
        "MODEL:\n"
        f"  META_ARCHITECTURE: {FAKE_ARCH}\n"
        "  DEVICE: cpu\n"
        f"  WEIGHTS: '{weights}'\n"
        "  SEM_SEG_HEAD:\n"
        "    NUM_CLASSES: 4\n"
        "DATASETS:\n"
        f"  TEST: ('{name}',)\n"
        "INPUT:\n"
        "  MIN_SIZE_TEST: 128\n"
        "  MAX_SIZE_TEST: 256\n"
        "  FORMAT: RGB\n"
    )
    return str(path)


@pytest.fixture
def broken_images(tmp_path):
    """Three unreadable 'images': random bytes, an empty file, a truncated real JPEG."""
    d = tmp_path / "broken"
    d.mkdir()
    (d / "garbage.jpg").write_bytes(np.random.default_rng(0).bytes(500))
    (d / "empty.png").write_bytes(b"")
    real = open(os.path.join(COCO_IMAGES, "000000439180.jpg"), "rb").read()
    (d / "truncated.jpg").write_bytes(real[:300])
    return d
