"""tools/benchmark_train.py: smoke runs at a tiny size (speed itself is not asserted).

The point/dense comparison gives both rows; ``--ops`` attributes one training step of the
quick-start model to op categories whose times add up and whose FLOP counts include at least the
analytic count of the backbone's first convolution."""

import os

from helpers import REPO, load_script

QUICKSTART = os.path.join(REPO, "configs", "quickstart", "synthetic_panoptic.yaml")
R50 = os.path.join(REPO, "configs", "coco", "panoptic", "r50.yaml")
SHALLOW = ["MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS", "1", "MODEL.MASK_FORMER.DEC_LAYERS", "2"]


def _tool():
    return load_script("tools/benchmark_train.py", "m2f_benchmark_train")


def test_point_and_dense_rows(capsys):
    rows = _tool().main(["--config-file", R50, "--size", "64", "--batch", "1", "--points", "256",
                         *SHALLOW])
    out = capsys.readouterr().out
    assert [r["mode"] for r in rows] == ["point", "dense"]
    assert rows[0]["points"] == 256 and rows[1]["points"] == 0
    assert all(r["step_s"] > 0 and r["loss_s"] > 0 and r["step_peak_mb"] > 0 for r in rows)
    assert "point (256 pts)" in out and "dense (per pixel)" in out and "ratio dense / point" in out


def test_ops_table_of_the_quickstart_model(capsys):
    result = _tool().main(["--ops", "--config-file", QUICKSTART, "--size", "64", "--batch", "2"])
    out = capsys.readouterr().out
    seconds, flops = result["seconds"], result["flops"]
    assert result["points"] == 2048  # the config's own TRAIN_NUM_POINTS
    for category in ("convolution forward", "convolution backward", "matrix products",
                     "deformable attention op", "normalization"):
        assert seconds[category] > 0, (category, seconds)
        assert category in out
    assert set(result["phases"]) == {"forward", "backward", "optimizer"}
    # ResNet-18 stem: 64 filters of 7x7x3 on a 32x32 output per image, batch 2
    stem = 2 * 64 * 3 * 7 * 7 * 32 * 32 * 2
    assert flops["convolution forward"] > stem and flops["matrix products"] > 0
    assert flops["convolution backward"] == 0  # not counted by the profiler: estimated in print
    assert "* estimated: 2x the forward convolutions" in out
    assert result["matmul_rate"] > 1e8  # FLOP/s: any CPU does 0.1 GFLOP/s
