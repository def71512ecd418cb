"""The model-zoo table: every released model has a complete row, its config exists and builds
the model the row describes (backbone, queries, parameters, dataset, task, backbone
initialisation), and its name resolves through mask2former:// to its checkpoint URL."""
import os
import re

import pytest
import torch

from detectron2.modeling import build_model
from detectron2.utils.file_io import PathManager
from mask2former import model_zoo
from mask2former.model_zoo import backbone_weights, find_model, list_models
from mask2former.model_zoo.download import ZOO_HOST, expected_md5_prefix
from mask2former.model_zoo.handlers import Mask2FormerZooHandler

# Kinds of rows whose configs must exist and build (video: configs/youtubevis_{2019,2021}/).
CHECKED_KINDS = ("image", "video")

# our backbone key -> (BACKBONE.NAME, RESNETS.DEPTH or SWIN (EMBED_DIM, DEPTHS, PRETRAIN_IMG_SIZE))
BACKBONES = {
    "r50": ("build_resnet_backbone", 50),
    "r101": ("build_resnet_backbone", 101),
    "swin_t": ("D2SwinTransformer", (96, [2, 2, 6, 2], 224)),
    "swin_s": ("D2SwinTransformer", (96, [2, 2, 18, 2], 224)),
    "swin_b": ("D2SwinTransformer", (128, [2, 2, 18, 2], 384)),
    "swin_b_in21k": ("D2SwinTransformer", (128, [2, 2, 18, 2], 384)),
    "swin_l": ("D2SwinTransformer", (192, [2, 2, 18, 2], 384)),
}
TEST_DATASET_PREFIX = {
    "coco": "coco_2017_val", "cityscapes": "cityscapes_fine_", "ade20k": "ade20k_",
    "mapillary_vistas": "mapillary_vistas_", "youtubevis_2019": "ytvis_2019_",
    "youtubevis_2021": "ytvis_2021_",
}
TASK_OUTPUT = {"panoptic": "PANOPTIC_ON", "instance": "INSTANCE_ON", "semantic": "SEMANTIC_ON"}


def test_every_released_model_has_a_complete_row():
    image, video = list_models("image"), list_models("video")
    assert (len(image), len(video)) == (47, 12)  # the original MODEL_ZOO.md
    models = image + video
    for key in ("name", "url", "model_id"):
        values = [getattr(m, key) for m in models]
        assert len(set(values)) == len(values), f"duplicate {key}"
    for m in models:
        expected_name = f"{m.dataset}/{m.backbone}" if m.kind == "video" else \
            f"{m.dataset}/{m.task}/{m.backbone}"
        assert m.name == expected_name and m.config == f"configs/{m.name}.yaml", m
        assert m.backbone in BACKBONES and m.task in TASK_OUTPUT, m
        assert re.fullmatch(r"[0-9a-f]{6}", m.md5_prefix), m
        assert m.url.startswith(f"{ZOO_HOST}/maskformer/"), m
        assert m.url.endswith(f"/model_final_{m.md5_prefix}.pkl"), m
        assert expected_md5_prefix(m.url) == m.md5_prefix
        assert re.fullmatch(r"\d+(_\d+)?", m.model_id), m
        assert m.queries in (100, 200) and m.schedule and m.original_config.endswith(".yaml")
        assert m.metrics and all(re.fullmatch(r"\d+\.\d", v) for v in m.metrics.values()), m
        if m.kind == "image":
            assert m.params_m is not None, m


def test_every_checked_row_has_a_config():
    missing = [m.config for m in list_models() if m.kind in CHECKED_KINDS
               and not os.path.isfile(m.config_path)]
    assert not missing, f"zoo rows whose config file does not exist: {missing}"


@pytest.mark.parametrize("name", [m.name for m in list_models() if m.kind in CHECKED_KINDS])
def test_row_config_builds_the_described_model(name):
    m = find_model(name)
    cfg = model_zoo.get_config(name)
    assert model_zoo.get_config_file(name) == m.config_path
    arch, spec = BACKBONES[m.backbone]
    assert cfg.MODEL.BACKBONE.NAME == arch
    if arch == "build_resnet_backbone":
        assert cfg.MODEL.RESNETS.DEPTH == spec
    else:
        swin = cfg.MODEL.SWIN
        assert (swin.EMBED_DIM, list(swin.DEPTHS), swin.PRETRAIN_IMG_SIZE) == spec
    if m.kind == "video":  # trained from the COCO instance model of the same backbone
        start = find_model(f"coco/instance/{m.backbone}")
        assert cfg.MODEL.WEIGHTS in (start.weights, start.url, start.url.rsplit("/", 1)[1])
    else:  # trained from the backbone's ImageNet initialisation
        init = [b for b in backbone_weights() if m.backbone in b.backbones]
        assert len(init) == 1 and cfg.MODEL.WEIGHTS == (init[0].weights or init[0].file), \
            (cfg.MODEL.WEIGHTS, init)
    assert cfg.DATASETS.TEST[0].startswith(TEST_DATASET_PREFIX[m.dataset]), cfg.DATASETS.TEST
    assert cfg.MODEL.MASK_FORMER.TEST[TASK_OUTPUT[m.task]]
    assert cfg.MODEL.MASK_FORMER.NUM_OBJECT_QUERIES == m.queries

    cfg.MODEL.DEVICE = "meta"
    with torch.device("meta"):
        model = build_model(cfg)
    queries = [v.shape[0] for k, v in model.state_dict().items() if k.endswith("query_feat.weight")]
    assert queries == [m.queries]
    if m.params_m is not None:
        assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == m.params_m


@pytest.mark.parametrize("name", [m.name for m in list_models("image")])
def test_mask2former_name_resolves_to_the_checkpoint_url(name):
    m = find_model(name)
    assert model_zoo.get_checkpoint_url(name) == m.url
    assert Mask2FormerZooHandler()._url(f"mask2former://{name}") == m.url
    assert model_zoo.get_config(name, trained=True).MODEL.WEIGHTS == m.url
    assert find_model(f"configs/{name}.yaml") is m
    assert isinstance(PathManager._PathManager__get_path_handler(m.weights),
                      Mask2FormerZooHandler)


def test_unknown_name_is_a_clear_error():
    with pytest.raises(KeyError, match="Did you mean coco/panoptic/swin_l"):
        find_model("coco/panoptic/swin-l")
    with pytest.raises(KeyError, match="not a model of the Mask2Former model zoo"):
        PathManager.get_local_path("mask2former://coco/panoptic/resnet")


def test_backbone_initialisations_cover_every_backbone():
    covered = [k for b in backbone_weights() for k in b.backbones]
    assert sorted(covered) == sorted(BACKBONES)
    for b in backbone_weights():
        assert b.file.endswith(".pkl")
        # either downloadable as is (Detectron2's R-50) or a publisher file plus its conversion
        assert (b.weights and b.url) or (b.source_url and b.convert.startswith("python tools/"))
        if b.convert:
            script = b.convert.split()[1]
            assert os.path.isfile(os.path.join(model_zoo.table.REPO_ROOT, script)), script
            assert b.convert.endswith(" " + b.file)
