"""tools/plot_metrics.py: metrics.json (Detectron2 JSONWriter format) -> PNG plots."""
import json

import numpy as np
import pytest
from PIL import Image

from helpers import load_script



def _load_tool():
    return load_script("tools/plot_metrics.py", "plot_metrics")


pm = _load_tool()


def _write_run(path, iters=range(19, 200, 20), resumed=True, evaluated=True):
    """A metrics.json like Detectron2 writes: training lines, a resume, an eval line, a cut line."""
    lines = []
    for it in iters:
        lines.append({"iteration": it, "total_loss": 100.0 / (it + 1), "loss_ce": 1.0 / (it + 1),
                      "loss_ce_0": 2.0, "loss_mask": 0.5, "loss_dice": 0.25, "lr": 1e-4 * it / 200,
                      "time": 0.5, "data_time": 0.01, "eta_seconds": 10.0})
    if resumed:  # resuming from iteration 99 re-logs 99: the later value must win
        lines.append({"iteration": 99, "total_loss": 7.0, "lr": 5e-5})
    if evaluated:
        lines.append({"iteration": 199, "panoptic_seg/PQ": 55.5, "panoptic_seg/PQ_th": 50.0,
                      "panoptic_seg/SQ": 80.0, "sem_seg/mIoU": 70.0, "sem_seg/IoU-a": 1.0,
                      "segm/AP": float("nan")})
    with open(path, "w") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
        f.write('{"iteration": 200, "total_lo')  # killed mid-write
    return path


def test_load_metrics_dedupes_resumes_and_skips_bad_lines(tmp_path):
    series = pm.load_metrics(_write_run(tmp_path / "metrics.json"))
    iters, values = series["total_loss"]
    assert list(iters) == list(range(19, 200, 20))
    assert values[list(iters).index(99)] == 7.0  # resumed value wins
    assert values[0] == pytest.approx(100.0 / 20)
    assert series["lr"][1][list(iters).index(99)] == 5e-5
    assert "segm/AP" not in series  # NaN dropped
    assert series["panoptic_seg/PQ"][1].tolist() == [55.5]
    # a run folder works too
    assert pm.load_metrics(str(tmp_path))["loss_ce"][0].tolist() == list(range(19, 200, 20))


def test_key_selection():
    series = {k: (np.array([1]), np.array([1.0])) for k in
              ["total_loss", "loss_ce", "loss_ce_3", "loss_dice_0", "lr", "time",
               "panoptic_seg/PQ", "panoptic_seg/PQ_st", "sem_seg/IoU-cat", "sem_seg/mIoU"]}
    assert pm.loss_keys(series, aux=False) == ["total_loss", "loss_ce"]
    assert pm.loss_keys(series, aux=True) == ["total_loss", "loss_ce", "loss_ce_3", "loss_dice_0"]
    assert pm.eval_keys(series, all_metrics=False) == {
        "panoptic_seg": ["panoptic_seg/PQ", "panoptic_seg/PQ_st"], "sem_seg": ["sem_seg/mIoU"]}
    assert "sem_seg/IoU-cat" in pm.eval_keys(series, all_metrics=True)["sem_seg"]


def test_smooth():
    assert pm.smooth(np.array([1.0, 3.0, 5.0]), 2).tolist() == [1.0, 2.0, 4.0]
    assert pm.smooth(np.array([1.0, 3.0]), 1).tolist() == [1.0, 3.0]


def _is_png_with_content(path):
    img = np.asarray(Image.open(path).convert("L"))
    return img.shape[0] > 100 and img.std() > 5  # not a blank canvas


def test_cli_writes_three_plots(tmp_path, capsys):
    metrics = _write_run(tmp_path / "metrics.json")
    out = tmp_path / "plots"
    assert pm.main([str(metrics), "--output", str(out), "--smooth", "3", "--aux-losses"]) == 0
    for name in ("losses.png", "lr.png", "eval_metrics.png"):
        assert _is_png_with_content(out / name), name
    assert "wrote" in capsys.readouterr().out


def test_cli_without_eval_and_two_runs(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    _write_run(a / "metrics.json", evaluated=False)
    _write_run(b / "metrics.json", evaluated=False, resumed=False)
    assert pm.main([str(a), str(b), "--output", str(tmp_path / "cmp")]) == 0
    assert (tmp_path / "cmp" / "losses.png").exists()
    assert not (tmp_path / "cmp" / "eval_metrics.png").exists()


def test_cli_errors(tmp_path):
    assert pm.main([str(tmp_path / "nope.json")]) == 1
    empty = tmp_path / "metrics.json"
    empty.write_text("\n")
    assert pm.main([str(empty)]) == 1
