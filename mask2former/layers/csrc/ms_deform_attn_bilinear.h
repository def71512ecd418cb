// Bilinear sampling arithmetic of multi-scale deformable attention, shared by the CPU and the
// CUDA kernels: both call exactly these inline functions, so the CPU tests exercise the same
// arithmetic the GPU runs.
//
// Semantics (those of grid_sample with align_corners=False and zero padding):
//   a normalised location (x, y) in [0, 1] maps to the pixel coordinate
//   (x * W - 0.5, y * H - 0.5); location (0, 0) is the top-left corner of the top-left pixel.
//   Corners outside the map contribute zero; locations outside [0, 1] are allowed.
#pragma once

#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define M2F_HOST_DEVICE __host__ __device__
#else
#define M2F_HOST_DEVICE
#endif

namespace mask2former {

M2F_HOST_DEVICE inline float m2f_floor(float x) { return floorf(x); }
M2F_HOST_DEVICE inline double m2f_floor(double x) { return floor(x); }

// The four neighbours of one sampling point. Corner k is (y0 + k / 2, x0 + k % 2), i.e.
// k = 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right.
template <typename acc_t>
struct BilinearPoint {
  int64_t x0, y0;  // top-left corner (may be -1)
  acc_t lx, ly;    // fractional offsets from the top-left corner, in [0, 1)
  bool inside[4];  // whether corner k lies inside the map
  acc_t w[4];      // bilinear weight of corner k (0 when the corner is outside)
};

// Fills `b` for the normalised location (loc_x, loc_y) on an H x W map. Returns false when no
// corner lies inside the map (the point then samples 0 and has zero gradient); NaN locations
// also return false.
template <typename acc_t>
M2F_HOST_DEVICE inline bool bilinear_point(acc_t loc_x, acc_t loc_y, int64_t H, int64_t W,
                                           BilinearPoint<acc_t>& b) {
  const acc_t x = loc_x * static_cast<acc_t>(W) - static_cast<acc_t>(0.5);
  const acc_t y = loc_y * static_cast<acc_t>(H) - static_cast<acc_t>(0.5);
  if (!(x >= static_cast<acc_t>(-1) && y >= static_cast<acc_t>(-1) &&
        x < static_cast<acc_t>(W) && y < static_cast<acc_t>(H))) {
    return false;
  }
  const acc_t fx = m2f_floor(x);
  const acc_t fy = m2f_floor(y);
  b.x0 = static_cast<int64_t>(fx);
  b.y0 = static_cast<int64_t>(fy);
  b.lx = x - fx;
  b.ly = y - fy;
  const acc_t hx = static_cast<acc_t>(1) - b.lx;
  const acc_t hy = static_cast<acc_t>(1) - b.ly;
  const bool x0_in = b.x0 >= 0, x1_in = b.x0 + 1 < W;
  const bool y0_in = b.y0 >= 0, y1_in = b.y0 + 1 < H;
  b.inside[0] = y0_in && x0_in;
  b.inside[1] = y0_in && x1_in;
  b.inside[2] = y1_in && x0_in;
  b.inside[3] = y1_in && x1_in;
  b.w[0] = b.inside[0] ? hy * hx : static_cast<acc_t>(0);
  b.w[1] = b.inside[1] ? hy * b.lx : static_cast<acc_t>(0);
  b.w[2] = b.inside[2] ? b.ly * hx : static_cast<acc_t>(0);
  b.w[3] = b.inside[3] ? b.ly * b.lx : static_cast<acc_t>(0);
  return true;
}

// Flat index (y * W + x) of corner k inside its level; only valid when b.inside[k].
template <typename acc_t>
M2F_HOST_DEVICE inline int64_t corner_index(const BilinearPoint<acc_t>& b, int k, int64_t W) {
  return (b.y0 + (k >> 1)) * W + b.x0 + (k & 1);
}

// Interpolated value from the four corner values v[k] (v[k] = 0 for corners outside).
template <typename acc_t>
M2F_HOST_DEVICE inline acc_t bilinear_interp(const BilinearPoint<acc_t>& b, const acc_t v[4]) {
  return b.w[0] * v[0] + b.w[1] * v[1] + b.w[2] * v[2] + b.w[3] * v[3];
}

// Derivatives of the interpolated value with respect to the normalised location (loc_x, loc_y),
// given the corner values v[k] (0 outside). The interpolation is linear in v, so v may also be
// per-corner dot products <grad_output, value_k>, which then yields the location gradients.
template <typename acc_t>
M2F_HOST_DEVICE inline void bilinear_grad_location(const BilinearPoint<acc_t>& b,
                                                   const acc_t v[4], int64_t H, int64_t W,
                                                   acc_t& d_loc_x, acc_t& d_loc_y) {
  const acc_t hx = static_cast<acc_t>(1) - b.lx;
  const acc_t hy = static_cast<acc_t>(1) - b.ly;
  // d/dx of sum_k w_k v_k with x = loc_x * W - 0.5, hence the factor W (and H for y).
  d_loc_x = static_cast<acc_t>(W) * (hy * (v[1] - v[0]) + b.ly * (v[3] - v[2]));
  d_loc_y = static_cast<acc_t>(H) * (hx * (v[2] - v[0]) + b.lx * (v[3] - v[1]));
}

}  // namespace mask2former
