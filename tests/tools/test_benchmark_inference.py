"""tools/benchmark_inference.py: a fast smoke run (tiny sizes, a shallow R50 model).

Checks that the real model call is timed with its stages, that every backend gets a table, and
that the stage times fit inside the total of the same run. Speed itself is not asserted (a
benchmark prints numbers; tests must not depend on the machine's load).
"""

import os
import re

import pytest
import torch

from helpers import REPO, load_script


CONFIG = os.path.join(REPO, "configs", "coco", "panoptic", "r50.yaml")
STAGES = ("preprocess", "backbone", "pixel_decoder", "transformer_dec", "postprocess")
# a shallow head keeps the run short; the structure of the model call is unchanged
SHALLOW = ["MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS", "1", "MODEL.MASK_FORMER.DEC_LAYERS", "2"]


def _tool():
    return load_script("tools/benchmark_inference.py", "m2f_benchmark_inference")


def test_smoke_run_all_backends(capsys):
    backends = ["pytorch", "native"]
    times = _tool().main(
        ["--config-file", CONFIG, "--size", "64x64", "--batch-size", "1", "--warmup", "1",
         "--iters", "2", "--backend", *backends, "--opts", *SHALLOW]
    )
    out = capsys.readouterr().out
    assert set(times) == set(backends)
    for b in backends:
        assert f"backend {b} " in out
        for i in range(2):
            total = times[b]["total"][i]
            stages = [times[b][s][i] for s in STAGES]
            assert all(t > 0 for t in stages), (b, stages)
            assert sum(stages) <= total * 1.001 + 1e-4
            assert sum(stages) >= 0.5 * total  # the stages cover the model call
    for s in STAGES + ("total",):
        rows = re.findall(rf"^{s} +([\d.]+) +([\d.]+) +[\d.]+% +([\d.]+) +([\d.]+)$", out, re.M)
        assert len(rows) == len(backends), f"no table row for {s}:\n{out}"
    assert "images/s" in out and "load average" in out
    if len(backends) > 1:
        assert "native: total=" in out  # ratio against pytorch from the same run


def test_allocator_comparison_restores_the_allocator(capsys):
    from mask2former.utils.allocator import cpu_caching_allocator_stats

    times = _tool().main(
        ["--config-file", CONFIG, "--size", "64x64", "--warmup", "1", "--iters", "1",
         "--backend", "pytorch", "--allocator", "both", "--no-memory", "--opts", *SHALLOW]
    )
    out = capsys.readouterr().out
    assert set(times) == {"pytorch/alloc-default", "pytorch/alloc-caching"}
    assert "backend pytorch/alloc-caching " in out
    assert "pytorch: total=" in out  # default / caching ratio from the same run
    assert not cpu_caching_allocator_stats()["enabled"]  # the test process is left as it was


def test_mixed_sizes_are_accumulated(capsys):
    """Images of two padded sizes run as two batches: every stage is counted twice."""
    tool = _tool()
    args = tool.get_parser().parse_args(["--config-file", CONFIG, "--opts", *SHALLOW])
    model = tool.build(tool.setup_cfg(args), args)
    recorder = tool.StageRecorder(model, model.device)
    calls = []
    original = model.sem_seg_head.predictor.forward
    model.sem_seg_head.predictor.forward = lambda *a, **k: calls.append(1) or original(*a, **k)
    inputs = [{"image": torch.zeros(3, 64, 64, dtype=torch.uint8)},
              {"image": torch.zeros(3, 32, 96, dtype=torch.uint8)}]
    out, times = recorder.run(inputs)
    assert len(out) == 2 and len(calls) == 2
    assert sum(times[s] for s in STAGES) <= times["total"] * 1.001 + 1e-4


def test_rejects_bad_size():
    with pytest.raises(SystemExit):
        _tool().get_parser().parse_args(["--config-file", CONFIG, "--size", "512"])


def test_video_frames_smoke_run(capsys):
    """--video-frames: one clip per call for each T; longer clips than --window-size: windowed."""
    from helpers import TINY_VIDEO_OPTS, config_path

    times = _tool().main(
        ["--config-file", config_path("youtubevis_2019/r50.yaml"), "--size", "64x64",
         "--video-frames", "2", "3", "--window-size", "2", "--warmup", "1", "--iters", "1",
         "--backend", "pytorch", "--opts", *TINY_VIDEO_OPTS]
    )
    out = capsys.readouterr().out
    assert set(times) == {2, 3}
    assert "clip of 2 frames of 64x64 (all frames at once)" in out
    assert "clip of 3 frames of 64x64 (windows of 2)" in out
    assert "10 tracks x 3 frames" in out
    rows = re.findall(r"T=(\d+) .* ([\d.]+) s/frame +peak ([\d.]+) MiB", out)
    assert [int(r[0]) for r in rows] == [2, 3]
    for t in (2, 3):
        assert times[t]["pytorch"]["total"][0] > 0 and times[t]["pytorch"]["peak_total"] > 0


def test_video_frames_needs_a_video_config():
    with pytest.raises(SystemExit, match="video config"):
        _tool().main(["--config-file", CONFIG, "--video-frames", "2", "--opts", *SHALLOW])


def test_precisions_are_timed_side_by_side(capsys):
    times = _tool().main(
        ["--config-file", CONFIG, "--size", "64x64", "--warmup", "1", "--iters", "1",
         "--backend", "native", "--precision", "fp32", "bf16", "--no-memory", "--opts", *SHALLOW]
    )
    out = capsys.readouterr().out
    assert set(times) == {"native/fp32", "native/bf16"}
    assert "native/bf16: total=" in out  # the ratio row to fp32 of the same run


def test_flops_table_attributes_the_model_flops_to_the_stages(capsys):
    """--flops: one profiled call; the backbone's convolution FLOPs are counted and equal the
    analytic count of its first convolution at least; GFLOP/s and the share of the machine's
    matmul rate are printed per stage."""
    tool = _tool()
    tool.main(["--config-file", CONFIG, "--size", "64x64", "--warmup", "1", "--iters", "1",
               "--backend", "native", "--no-memory", "--flops", "--opts", *SHALLOW])
    out = capsys.readouterr().out
    assert "where the time goes, backend native" in out and "matmul rate" in out
    rows = {m[0]: [float(v) for v in m[1:]] for m in re.findall(
        r"^(\w+) +([\d.]+) +([\d.]+)% +([\d.]+) +([\d.]+) +([\d.]+)%$", out, re.M)}
    assert set(rows) >= set(STAGES) | {"total"}, out
    gflop = {s: rows[s][2] for s in rows}
    stem = 2 * 64 * 3 * 7 * 7 * 32 * 32 / 1e9  # R50 stem: 64 7x7x3 filters on a 32x32 output
    assert gflop["backbone"] > stem and gflop["pixel_decoder"] > 0
    assert abs(sum(gflop[s] for s in STAGES) - gflop["total"]) <= 0.02 + 0.01 * gflop["total"]
