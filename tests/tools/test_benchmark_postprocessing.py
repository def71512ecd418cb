"""tools/benchmark_postprocessing.py: a smoke run on a small size (speed is not asserted)."""

import re

from helpers import load_script

from mask2former.utils.allocator import cpu_caching_allocator_stats



def _tool():
    return load_script("tools/benchmark_postprocessing.py", "m2f_benchmark_postprocessing")


def test_synthetic_prediction_gives_segments_and_instances(capsys):
    results = _tool().main(["--size", "96x128", "--warmup", "0", "--iters", "2",
                            "--allocator", "both"])
    out = capsys.readouterr().out
    assert set(results) == {"default", "caching"}
    segments, instances = map(int, re.search(r"(\d+) panoptic segments, (\d+) instances", out).groups())
    assert segments >= 10 and instances >= 10  # the synthetic prediction has real structure
    for step in ("upsample", "sigmoid", "semantic", "panoptic", "instance", "total"):
        assert re.search(rf"^{step} +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+$", out, re.M), step
        assert all(len(v[step]) == 2 for v in results.values())
    assert "ratio default / caching" in out
    assert not cpu_caching_allocator_stats()["enabled"]
