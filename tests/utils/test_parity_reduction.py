"""mask2former.utils.parity: the projection directions, the reduction of fixtures and the checks."""

import numpy as np

from mask2former.utils.parity import (
    ReductionSpec,
    compare,
    load_fixture,
    project,
    rademacher,
    reduce_fixture,
    rle_decode,
    rle_encode,
    save_compact,
)

M64 = (1 << 64) - 1


def _splitmix_sign(j, i, seed):
    """The documented hash, written again with Python integers."""
    z = (((j << 32) | i) + seed * 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    z ^= z >> 31
    return 1.0 if z >> 63 else -1.0


def test_rademacher_is_the_documented_hash():
    r = rademacher(5, 300, 12)
    want = np.array([[_splitmix_sign(j, i, 12) for i in range(300)] for j in range(5)])
    assert np.array_equal(r, want)
    assert 0.4 < (r > 0).mean() < 0.6
    assert not np.array_equal(rademacher(5, 300, 13), r)


def test_projection_keeps_norms_on_average():
    x = np.random.default_rng(0).normal(size=(200, 1000))
    p = project(x, 64, 12)
    ratio = (p.astype(np.float64) ** 2).sum(1) / (x ** 2).sum(1)
    assert abs(ratio.mean() - 1) < 0.05


def test_rle_round_trip():
    m = np.random.default_rng(1).random((37, 53)) > 0.5
    assert np.array_equal(rle_decode(rle_encode(m)), m)


def _full(rng, q=8, h=12, w=16):
    masks = rng.normal(size=(1, q, h, w)).astype(np.float32)
    inst = rng.random((6, 24, 32)) > 0.5
    return {
        "opts": ["A.B", "0.1"],
        "pred_logits": rng.normal(size=(1, q, 5)).astype(np.float32),
        "pred_masks": masks,
        "aux0_pred_masks": masks.astype(np.float16),
        "sem_seg_argmax": rng.integers(0, 4, (24, 32)).astype(np.int16),
        "sem_seg_sample_index": rng.permutation(24 * 32)[:40],
        "sem_seg_sample": rng.random((4, 40)).astype(np.float32),
        "panoptic_seg": rng.integers(0, 3, (24, 32)).astype(np.int32),
        "segments_info": [{"id": 1, "isthing": True, "category_id": 3}],
        "instances.scores": rng.random(6).astype(np.float32),
        "instances.pred_classes": rng.integers(0, 4, 6),
        "instances.pred_masks": inst,
    }


SPEC = ReductionSpec(queries=(0, 3), channels=(0,), directions=16, seed=5, sem_seg_samples=20)


def test_compact_file_round_trip_and_checks(tmp_path):
    rng = np.random.default_rng(2)
    full = _full(rng)
    path = str(tmp_path / "fx.npz")
    save_compact(path, reduce_fixture(full, SPEC))
    fx = load_fixture(path)
    assert fx["sem_seg_sample"].shape == (4, 20) and len(fx["instances.pred_masks@rle"]) == 6
    assert fx["pred_masks@queries"].shape == (2, 12, 16) and fx["pred_masks@proj"].shape == (8, 16)
    # instances are stored sorted by score
    assert np.all(np.diff(fx["instances.scores"]) <= 0)

    # outputs that agree to float rounding pass every check, in either layout
    close = dict(full, pred_masks=full["pred_masks"] * (1 + 1e-7))
    for got, want in ((reduce_fixture(close, SPEC), fx), (close, full)):
        checks = compare(got, want)
        assert len(checks) >= 10 and all(ok for _, ok, _ in checks), checks

    # a query outside the kept ones is caught by the projection only
    bad = dict(full, pred_masks=full["pred_masks"].copy())
    bad["pred_masks"][0, 5] += 0.05
    failed = {n for n, ok, _ in compare(reduce_fixture(bad, SPEC), fx) if not ok}
    assert failed == {"pred_masks (all queries on 16 directions)"}

    # instance masks (compared after decoding the RLEs), segments, maps
    bad = dict(full, **{"instances.pred_masks": ~full["instances.pred_masks"]},
               segments_info=[{"id": 1, "isthing": False, "category_id": 3}],
               panoptic_seg=full["panoptic_seg"] + 1)
    failed = {n for n, ok, _ in compare(reduce_fixture(bad, SPEC), fx) if not ok}
    assert failed == {"instances.pred_masks", "segments_info", "panoptic_seg"}

    # masks of another size are reported as such, also for the projection of all queries
    small = dict(full, pred_masks=full["pred_masks"][:, :, :10])
    checks = {n: d for n, ok, d in compare(reduce_fixture(small, SPEC), fx) if not ok}
    assert set(checks) == {"pred_masks[queries 0,3]", "pred_masks (all queries on 16 directions)"}
    assert all(d.startswith("shape") for d in checks.values()), checks

    # a missing output fails too
    got = reduce_fixture({k: v for k, v in full.items() if k != "panoptic_seg"}, SPEC)
    assert [n for n, ok, _ in compare(got, fx) if not ok] == ["panoptic_seg"]


def test_video_tracks_are_compared_as_a_set():
    rng = np.random.default_rng(3)
    masks = rng.random((3, 2, 10, 14)) > 0.5
    want = {"inference.image_size": [10, 14],
            "inference.pred_scores": np.array([0.9, 0.8, 0.7], np.float32),
            "inference.pred_labels": np.array([1, 2, 1]),
            "inference.pred_masks": masks}
    perm = [2, 0, 1]
    got = {"inference.image_size": [10, 14],
           "inference.pred_scores": want["inference.pred_scores"][perm],
           "inference.pred_labels": want["inference.pred_labels"][perm],
           "inference.pred_masks": masks[perm]}
    spec = ReductionSpec()
    checks = compare(reduce_fixture(got, spec), reduce_fixture(want, spec))
    assert all(ok for _, ok, _ in checks), checks
    got["inference.pred_masks"] = masks[[2, 1, 0]]  # a track's mask under another label
    failed = {n for n, ok, _ in compare(got, want) if not ok}
    assert failed == {"pred_masks (T, H, W)"}
