"""Sine position encodings against direct implementations of their formulas (SPEC §4, §9),
written here with plain loops."""

import math

import numpy as np
import pytest
import torch

from mask2former.layers.position_encoding import PositionEmbeddingSine, PositionEmbeddingSine3D


def _sine(value, i, num_feats, temperature=10000.0):
    """Feature i of a coordinate: sin (even i) / cos (odd i) of value / T^(2 floor(i/2) / F)."""
    freq = temperature ** (2 * (i // 2) / num_feats)
    return math.sin(value / freq) if i % 2 == 0 else math.cos(value / freq)


def reference_3d(t_len, h, w, num_feats):
    """SPEC §9: z, y, x = 1..T, 1..H, 1..W, each / (last + 1e-6) * 2π; pos_y, pos_x over F
    features, pos_z over 2F; pos = cat(pos_y, pos_x) + pos_z. Returns [T, 2F, H, W]."""
    out = np.zeros((t_len, 2 * num_feats, h, w))
    for t in range(t_len):
        z = (t + 1) / (t_len + 1e-6) * 2 * math.pi
        for y in range(h):
            yc = (y + 1) / (h + 1e-6) * 2 * math.pi
            for x in range(w):
                xc = (x + 1) / (w + 1e-6) * 2 * math.pi
                for i in range(num_feats):
                    out[t, i, y, x] = _sine(yc, i, num_feats)
                    out[t, num_feats + i, y, x] = _sine(xc, i, num_feats)
                for i in range(2 * num_feats):
                    out[t, i, y, x] += _sine(z, i, 2 * num_feats)
    return out


@pytest.mark.parametrize("t_len,h,w,num_feats", [(3, 4, 5, 8), (1, 2, 3, 4), (5, 3, 2, 16)])
def test_3d_encoding_matches_direct_formula(t_len, h, w, num_feats):
    pe = PositionEmbeddingSine3D(num_feats, normalize=True)
    x = torch.zeros(2, t_len, 7, h, w)
    out = pe(x)
    assert out.shape == (2, t_len, 2 * num_feats, h, w)
    want = torch.as_tensor(reference_3d(t_len, h, w, num_feats), dtype=torch.float32)
    torch.testing.assert_close(out[0], want, rtol=1e-5, atol=2e-6)
    assert torch.equal(out[1], out[0])  # the same for every clip


def test_3d_encoding_frames_differ_and_keep_dtype():
    pe = PositionEmbeddingSine3D(8, normalize=True)
    out = pe(torch.zeros(1, 3, 4, 2, 2, dtype=torch.float64))
    assert out.dtype == torch.float64
    assert not torch.allclose(out[0, 0], out[0, 1])  # the frame index is encoded


def test_3d_encoding_rejects_image_maps():
    with pytest.raises(ValueError, match=r"\[B, T, C, H, W\]"):
        PositionEmbeddingSine3D(8, normalize=True)(torch.zeros(1, 4, 2, 2))


def test_2d_encoding_matches_direct_formula():
    h, w, num_feats = 3, 5, 6
    out = PositionEmbeddingSine(num_feats, normalize=True)(torch.zeros(1, 1, h, w))
    want = np.zeros((2 * num_feats, h, w))
    for y in range(h):
        for x in range(w):
            for i in range(num_feats):
                want[i, y, x] = _sine((y + 1) / (h + 1e-6) * 2 * math.pi, i, num_feats)
                want[num_feats + i, y, x] = _sine((x + 1) / (w + 1e-6) * 2 * math.pi, i, num_feats)
    want = torch.as_tensor(want, dtype=torch.float32)
    torch.testing.assert_close(out[0], want, rtol=1e-5, atol=2e-6)
