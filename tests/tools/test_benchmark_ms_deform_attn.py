"""tools/benchmark_ms_deform_attn.py: a smoke run of --dtype fp32 bf16 on a small size (speed is
not asserted)."""

import re

from helpers import load_script


def test_two_dtypes_in_one_run_with_ratios(capsys):
    tool = load_script("tools/benchmark_ms_deform_attn.py", "m2f_benchmark_ms_deform_attn")
    results = tool.main(["--sizes", "32x64", "--repeat", "1", "--dtype", "fp32", "bf16",
                         "--backends", "native,pytorch", "--check"])
    out = capsys.readouterr().out
    assert set(results) == {"32x64"}
    runs = results["32x64"]
    assert set(runs) == {(d, b) for d in ("fp32", "bf16") for b in ("native", "pytorch")}
    for r in runs.values():
        assert r["fwd"] > 0 and r["fb"] > 0 and r["fwd_mem"] > 0 and r["fb_mem"] > 0
    assert re.search(r"16-bit CPU kernels: (avx512|avx2|none)", out)
    for label in ("fp32 native", "bf16 native", "fp32 pytorch", "bf16 pytorch", "fp32 nat/pyt",
                  "bf16 nat/pyt", "bf16/fp32 nat", "bf16/fp32 pyt"):
        assert re.search(rf"^ +32x64 +\d+ +{re.escape(label)} \|", out, re.M), label
    # bf16 value -> half the forward output memory of fp32 (the output is [1, S, 256])
    assert runs[("bf16", "native")]["fwd_mem"] < runs[("fp32", "native")]["fwd_mem"]
    diffs = dict(re.findall(r"(fp32|bf16): max \|native - pytorch\| forward = ([\d.e+-]+)", out))
    assert float(diffs["fp32"]) < 1e-5 and float(diffs["bf16"]) < 5e-2, diffs
