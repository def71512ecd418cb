"""VideoMaskFormer (SPEC §9): a training step, clip targets, clip inference, windowed inference
with query association, and clear errors at its boundaries."""

import pytest
import torch

from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Instances

from helpers import TINY_VIDEO_CONFIG, TINY_VIDEO_OPTS, make_cfg
from mask2former.modeling.meta_arch import video_maskformer_model
from mask2former.modeling.meta_arch.video_maskformer_model import associate_queries

NUM_CLASSES, QUERIES = 5, 4


def _frame(seed, h=64, w=96):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)


def _tiny(*opts):
    torch.manual_seed(0)
    return build_model(make_cfg(TINY_VIDEO_CONFIG, *TINY_VIDEO_OPTS, *opts))


@pytest.fixture(scope="module")
def model():
    return _tiny().eval()


def _frame_instances(h, w, classes, ids, boxes):
    """Instances of one frame as the clip mapper gives them (every clip instance listed)."""
    inst = Instances((h, w))
    inst.gt_classes = torch.tensor(classes, dtype=torch.int64)
    inst.gt_ids = torch.tensor(ids, dtype=torch.int64)
    m = torch.zeros(len(classes), h, w, dtype=torch.bool)
    for i, box in enumerate(boxes):
        if box is not None:
            y0, y1, x0, x1 = box
            m[i, y0:y1, x0:x1] = True
    inst.gt_masks = BitMasks(m)
    return inst


def _train_clips():
    # clip 0: 64x96, instance 7 in both frames, instance 8 only in frame 1, instance 9 never
    c0 = [
        _frame_instances(64, 96, [1, 2, 3], [7, -1, -1], [(5, 30, 10, 40), None, None]),
        _frame_instances(64, 96, [1, 2, 3], [7, 8, -1], [(8, 33, 12, 42), (40, 60, 50, 90), None]),
    ]
    # clip 1: 48x80 (padded with the batch), one instance
    c1 = [_frame_instances(48, 80, [4], [3], [(0, 20, 0, 30)]) for _ in range(2)]
    return [
        {"image": [_frame(0), _frame(1)], "instances": c0, "height": 64, "width": 96},
        {"image": [_frame(2, 48, 80), _frame(3, 48, 80)], "instances": c1},
    ]


def test_training_step_losses_finite_and_backward():
    model = _tiny("MODEL.BACKBONE.FREEZE_AT", "5")
    model.train()
    with torch.enable_grad():
        losses = model(_train_clips())
        names = {"loss_ce", "loss_mask", "loss_dice"}
        assert set(losses) == names | {f"{n}_{i}" for n in names for i in range(2)}
        assert all(torch.isfinite(v) for v in losses.values()), losses
        sum(losses.values()).backward()
    head = model.sem_seg_head
    assert head.predictor.class_embed.weight.grad is not None
    assert head.predictor.query_feat.weight.grad.abs().sum() > 0
    assert head.pixel_decoder.mask_features.weight.grad is not None


def test_prepare_targets_clip_masks_and_ids(model):
    clips = _train_clips()
    images = model.normalize_and_pad([f for c in clips for f in c["image"]])
    targets = model.prepare_targets([c["instances"] for c in clips], images)
    t0, t1 = targets
    assert t0["labels"].tolist() == [1, 2]  # instance 9 (absent in every frame) is dropped
    assert t0["ids"].tolist() == [[7, 7], [-1, 8]]
    assert t0["masks"].shape == (2, 2, 64, 96) and t0["masks"].dtype == torch.float32
    assert t0["masks"][1, 0].sum() == 0 and t0["masks"][1, 1].sum() == 20 * 40
    assert t0["masks"][0, 1, 8:33, 12:42].all()
    assert t1["masks"].shape == (1, 2, 64, 96)  # padded to the batch
    assert t1["masks"][0, :, 48:].sum() == 0 and t1["masks"][0, 0, :20, :30].all()


def test_clip_inference_output(model):
    frames = [_frame(10 + t, 50, 70) for t in range(3)]
    with torch.no_grad():
        out = model([{"image": frames, "height": 100, "width": 140}])
    assert isinstance(out, dict)
    assert set(out) == {"image_size", "pred_scores", "pred_labels", "pred_masks"}
    assert out["image_size"] == (100, 140)
    assert len(out["pred_scores"]) == len(out["pred_labels"]) == len(out["pred_masks"]) == 10
    assert out["pred_scores"] == sorted(out["pred_scores"], reverse=True)
    assert all(0 <= c < NUM_CLASSES for c in out["pred_labels"])
    assert all(m.shape == (3, 100, 140) and m.dtype == torch.bool for m in out["pred_masks"])
    # the scores are the top-10 of softmax without no-object over all (query, class) pairs
    with torch.no_grad():
        head = model.sem_seg_head(model.backbone(model.normalize_and_pad(frames).tensor))
    probs = head["pred_logits"][0].softmax(-1)[:, :-1].flatten()
    torch.testing.assert_close(torch.tensor(out["pred_scores"]), probs.topk(10).values)
    # a [T, C, H, W] tensor is a clip too
    with torch.no_grad():
        again = model([{"image": torch.stack(frames), "height": 100, "width": 140}])
    assert again["pred_labels"] == out["pred_labels"]


def test_window_size_from_config_and_long_window_is_all_at_once():
    model = _tiny("MODEL.MASK_FORMER.TEST.WINDOW_SIZE", "3").eval()
    assert model.window_size == 3
    frames = [_frame(20 + t) for t in range(3)]
    with torch.no_grad():
        windowed = model([{"image": frames}])
        model.window_size = 0
        whole = model([{"image": frames}])
    assert windowed["pred_scores"] == whole["pred_scores"]
    assert all(torch.equal(a, b) for a, b in zip(windowed["pred_masks"], whole["pred_masks"]))


def test_associate_queries_recovers_a_permutation():
    gen = torch.Generator().manual_seed(0)
    reference = torch.randn(20, 16, generator=gen)
    perm = torch.randperm(20, generator=gen)
    current = reference[perm] * 3.0 + 0.05 * torch.randn(20, 16, generator=gen)  # scale: cosine
    order = associate_queries(reference, current)
    assert torch.equal(perm[order], torch.arange(20))  # current[order[i]] continues reference[i]
    with pytest.raises(ValueError, match=r"\[Q, C\]"):
        associate_queries(reference, current[:5])


def test_windowed_inference_associates_permuted_queries(model, monkeypatch):
    """A synthetic clip [a, b, a, b] in windows of 2 frames. Permuting the decoder's queries
    before the second window permutes its outputs; association must recover the permutation and
    give the unpermuted result."""
    a, b = _frame(30), _frame(31)
    clip = [{"image": [a, b, a, b], "height": 64, "width": 96}]
    orders = []
    original = video_maskformer_model.associate_queries
    monkeypatch.setattr(video_maskformer_model, "associate_queries",
                        lambda r, c: orders.append(original(r, c)) or orders[-1])
    model.window_size = 2
    try:
        with torch.no_grad():
            plain = model(clip)
            assert torch.equal(orders[-1], torch.arange(QUERIES))
            perm = torch.tensor([2, 0, 3, 1])
            predictor = model.sem_seg_head.predictor
            saved = (predictor.query_feat.weight.clone(), predictor.query_embed.weight.clone())
            calls = []

            def permute_second_window(module, args):
                calls.append(1)
                if len(calls) == 2:
                    module.query_feat.weight.copy_(saved[0][perm])
                    module.query_embed.weight.copy_(saved[1][perm])

            handle = predictor.register_forward_pre_hook(permute_second_window)
            try:
                permuted = model(clip)
            finally:
                handle.remove()
                predictor.query_feat.weight.copy_(saved[0])
                predictor.query_embed.weight.copy_(saved[1])
    finally:
        model.window_size = 0
    assert len(calls) == 2
    assert torch.equal(orders[-1], torch.argsort(perm))  # the inverse permutation
    torch.testing.assert_close(torch.tensor(permuted["pred_scores"]),
                               torch.tensor(plain["pred_scores"]), rtol=1e-4, atol=1e-6)
    assert permuted["pred_labels"] == plain["pred_labels"]
    for m0, m1 in zip(plain["pred_masks"], permuted["pred_masks"]):
        assert m0.shape == (4, 64, 96)
        assert (m0 == m1).float().mean() > 0.999
        assert torch.equal(m0[:2], m0[2:])  # windows are concatenated in frame order


# --- clear errors ---------------------------------------------------------------------------
def test_error_frames_of_different_sizes(model):
    with pytest.raises(ValueError, match=r"one size.*frame 1: \(3, 48, 96\)"):
        model([{"image": [_frame(0), _frame(1, 48, 96)]}])


def test_error_empty_clip(model):
    with pytest.raises(ValueError, match="empty"):
        model([{"image": []}])


def test_error_image_mapper_output_given_to_video_model(model):
    with pytest.raises(ValueError, match="image dataset mapper"):
        model([{"image": _frame(0), "height": 64, "width": 96}])


def test_error_several_clips_at_inference(model):
    with pytest.raises(ValueError, match="one clip per call"):
        model([{"image": [_frame(0)]}, {"image": [_frame(1)]}])


def test_error_training_clip_length():
    model = _tiny().train()
    clips = _train_clips()
    clips[0]["image"] = clips[0]["image"][:1]
    with pytest.raises(ValueError, match="SAMPLING_FRAME_NUM is 2"):
        model(clips)


def test_error_image_model_given_frames():
    model = _tiny("MODEL.META_ARCHITECTURE", "MaskFormer",
                  "MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME",
                  "MultiScaleMaskedTransformerDecoder").eval()
    with pytest.raises(ValueError, match="VideoMaskFormer"):
        model([{"image": [_frame(0), _frame(1)]}])


def test_error_video_model_without_video_keys():
    cfg = make_cfg("coco/instance/r50.yaml", "MODEL.META_ARCHITECTURE", "VideoMaskFormer")
    with pytest.raises(ValueError, match="add_maskformer2_video_config"):
        build_model(cfg)


def test_error_video_model_with_image_decoder():
    with pytest.raises(ValueError, match="VideoMultiScaleMaskedTransformerDecoder"):
        _tiny("MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME", "MultiScaleMaskedTransformerDecoder")


def test_clip_mapper_to_model_to_evaluator(tmp_path):
    """The project's YouTube-VIS pipeline around the model: synthetic videos in the real format,
    the clip mapper (training and test mode), a training step, clip inference, the evaluator."""
    from detectron2.data import DatasetCatalog

    from mask2former.data.dataset_mappers import build_dataset_mapper
    from mask2former.data.datasets.register_synthetic import register_synthetic_ytvis
    from mask2former.data.synthetic_video import generate_synthetic_ytvis
    from mask2former.evaluation.ytvis_evaluation import YTVISEvaluator

    generate_synthetic_ytvis(str(tmp_path), num_train=2, num_val=1, height=64, width=96,
                             min_frames=3, max_frames=4)
    register_synthetic_ytvis(str(tmp_path))
    opts = ("MODEL.SEM_SEG_HEAD.NUM_CLASSES", "4", "INPUT.MIN_SIZE_TRAIN", "(64,)",
            "INPUT.MAX_SIZE_TRAIN", "96", "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "96",
            "MODEL.BACKBONE.FREEZE_AT", "5")
    cfg = make_cfg(TINY_VIDEO_CONFIG, *TINY_VIDEO_OPTS, *opts)
    torch.manual_seed(0)
    model = build_model(cfg)

    mapper = build_dataset_mapper(cfg, is_train=True)
    clips = [mapper(d) for d in DatasetCatalog.get("synthetic_ytvis_train")]
    model.train()
    with torch.enable_grad():
        losses = model(clips)
        assert all(torch.isfinite(v) for v in losses.values())
        sum(losses.values()).backward()

    video = DatasetCatalog.get("synthetic_ytvis_val")[0]
    inputs = build_dataset_mapper(cfg, is_train=False)(video)
    model.eval()
    with torch.no_grad():
        out = model([inputs])
    assert out["image_size"] == (inputs["height"], inputs["width"])
    assert out["pred_masks"][0].shape == (video["length"], inputs["height"], inputs["width"])
    evaluator = YTVISEvaluator("synthetic_ytvis_val", distributed=False)
    evaluator.reset()
    evaluator.process([inputs], out)
    metrics = evaluator.evaluate()["segm"]
    assert 0 <= metrics["AP"] <= 100
