// Vectorised CPU kernels of multi-scale deformable attention for a bfloat16 / float16 value.
//
// Each (n, q, m) is done in two phases:
//   1. set-up: the bilinear arithmetic of ms_deform_attn_bilinear.h (bilinear_point) turns the
//      L*P sampling points into "taps": (row of the value map, coefficient = attention weight *
//      bilinear weight) for the corners inside the map. AVX-512 computes it for 16 points per
//      register (points16: the same operations, lane by lane); AVX2 runs the scalar code.
//   2. channel loop over the taps, in float32 registers: 16-bit values are widened on load
//      (exactly), multiplied-added in float32 (FMA), and the output is rounded once
//      (round-to-nearest-even, as c10::BFloat16 / c10::Half do). The backward widens
//      grad_output once per query, accumulates the value gradient in a float32 buffer and the
//      per-tap dot products <grad_output, value> in float32 registers; the location and weight
//      gradients follow from those dots (AVX-512: 16 points per register; AVX2: scalar code).
// The vector code is compiled for AVX-512 (F/BW/VL) and AVX2 (+FMA, F16C) through function
// target attributes (no global -m flags: the rest of the library stays baseline x86-64) and
// chosen at run time from torch's CPU capability (ATEN_CPU_CAPABILITY is honoured). Without
// either, or off x86-64, the functions return false and the generic kernels of
// ms_deform_attn_cpu.cpp run. Summation order (and FMA) differ from the generic kernels, so
// results agree with them within the rounding of the 16-bit output, not bit for bit.
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 reports -Wmaybe-uninitialized inside its own AVX-512 intrinsic headers (the
// _mm512_undefined_* idiom, GCC bug 105593); it must be silenced before they are included.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "cpu/ms_deform_attn_cpu.h"
#include "ms_deform_attn.h"
#include "ms_deform_attn_bilinear.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define M2F_X86_SIMD 1
#include <immintrin.h>
#define M2F_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,popcnt")))
#define M2F_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#else
#define M2F_X86_SIMD 0
#endif

namespace mask2former {
namespace cpu {

namespace {

enum class Isa { kNone, kAvx2, kAvx512 };

Isa detect_isa() {
#if M2F_X86_SIMD
  // torch's choice for its own kernels (follows ATEN_CPU_CAPABILITY), confirmed with cpuid.
  // Every CPU with AVX2 and FMA also has F16C (it predates AVX2), so it is not tested separately.
  const std::string cap = at::get_cpu_capability();
  __builtin_cpu_init();
  if (cap == "AVX512" && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl")) {
    return Isa::kAvx512;
  }
  if ((cap == "AVX512" || cap == "AVX2") && __builtin_cpu_supports("avx2") &&
      __builtin_cpu_supports("fma")) {
    return Isa::kAvx2;
  }
#endif
  return Isa::kNone;
}

Isa isa() {
  static const Isa value = detect_isa();
  return value;
}

// One corner of one sampling point: value row at `offset` (elements from the start of value)
// weighted by `coef`.
struct Tap {
  int64_t offset;
  float coef;
};

// ---------------------------------------------------------------- scalar channel loops
// (AVX2 tails when D is not a multiple of 8)
template <typename T>
void forward_taps_scalar(const T* value, const Tap* taps, int64_t n, int64_t d_begin,
                         int64_t d_end, T* out) {
  for (int64_t d = d_begin; d < d_end; ++d) {
    float acc = 0.f;
    for (int64_t t = 0; t < n; ++t) {
      acc += taps[t].coef * static_cast<float>(value[taps[t].offset + d]);
    }
    out[d] = static_cast<T>(acc);
  }
}

template <typename T>
void backward_taps_scalar(const T* value, float* grad_value, const float* go, const Tap* taps,
                          int64_t n, int64_t d_begin, int64_t d_end, float* dots) {
  for (int64_t t = 0; t < n; ++t) {
    const T* v = value + taps[t].offset;
    float* gv = grad_value + taps[t].offset;
    float dot = 0.f;
    for (int64_t d = d_begin; d < d_end; ++d) {
      dot += go[d] * static_cast<float>(v[d]);
      gv[d] += taps[t].coef * go[d];
    }
    dots[t] += dot;
  }
}

#if M2F_X86_SIMD
// ---------------------------------------------------------------- AVX-512
// 16 floats per register. The channel loops run over blocks of 32 channels (two registers, the
// last block masked); the bilinear set-up handles 16 sampling points per register.
inline void block_masks(int64_t rem, __mmask16& m0, __mmask16& m1) {
  m0 = rem >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << rem) - 1u);
  m1 = rem >= 32 ? __mmask16(0xFFFF) : rem > 16 ? __mmask16((1u << (rem - 16)) - 1u) : __mmask16(0);
}

template <bool kBF16>
M2F_TARGET_AVX512 inline __m512 load16_avx512(const uint16_t* p, __mmask16 m) {
  const __m256i h = _mm256_maskz_loadu_epi16(m, p);
  if constexpr (kBF16) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  } else {
    return _mm512_cvtph_ps(h);
  }
}

// bfloat16 bits of 16 floats (in the low halves of 32-bit lanes): round to nearest even,
// NaN -> 0x7FC0 (c10::BFloat16's rule).
M2F_TARGET_AVX512 inline __m512i bf16_bits_avx512(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF)));
  r = _mm512_srli_epi32(r, 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  return _mm512_mask_blend_epi32(nan, r, _mm512_set1_epi32(0x7FC0));
}

template <bool kBF16>
M2F_TARGET_AVX512 inline void store16_avx512(uint16_t* p, __mmask16 m, __m512 x) {
  __m256i h;
  if constexpr (kBF16) {
    h = _mm512_cvtepi32_epi16(bf16_bits_avx512(x));
  } else {
    h = _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  _mm256_mask_storeu_epi16(p, m, h);
}

// 16 values of a float or 16-bit array as floats, and back (masked lanes are not accessed).
template <typename S>
M2F_TARGET_AVX512 inline __m512 load_as_float(const S* p, __mmask16 m) {
  if constexpr (std::is_same_v<S, float>) {
    return _mm512_maskz_loadu_ps(m, p);
  } else {
    return load16_avx512<std::is_same_v<S, at::BFloat16>>(reinterpret_cast<const uint16_t*>(p),
                                                           m);
  }
}

template <typename S>
M2F_TARGET_AVX512 inline void store_from_float(S* p, __mmask16 m, __m512 x) {
  if constexpr (std::is_same_v<S, float>) {
    _mm512_mask_storeu_ps(p, m, x);
  } else {
    store16_avx512<std::is_same_v<S, at::BFloat16>>(reinterpret_cast<uint16_t*>(p), m, x);
  }
}

// bfloat16 specialisation of forward_taps_avx512 (below): one 64-byte load per tap and block of
// 32 channels, widened by interleaving with zeros (a bfloat16 is the top half of its float).
// The interleave works within 128-bit lanes, so the accumulators hold the channels permuted
// (lo: 8j..8j+3, hi: 8j+4..8j+7 in lane j); packus_epi32 restores the order at the store.
M2F_TARGET_AVX512 void forward_taps_bf16_avx512(const uint16_t* vbase, const int32_t* rows,
                                                const float* coefs, int64_t n, int64_t MD,
                                                int64_t D, uint16_t* out) {
  const __m512i zero = _mm512_setzero_si512();
  for (int64_t d0 = 0; d0 < D; d0 += 32) {
    const int64_t rem = D - d0;
    const __mmask32 m = rem >= 32 ? __mmask32(0xFFFFFFFFu) : __mmask32((1u << rem) - 1u);
    __m512 a_lo = _mm512_setzero_ps(), a_hi = _mm512_setzero_ps();
    __m512 b_lo = _mm512_setzero_ps(), b_hi = _mm512_setzero_ps();
    int64_t t = 0;
    for (; t + 1 < n; t += 2) {
      const __m512i x = _mm512_maskz_loadu_epi16(m, vbase + rows[t] * MD + d0);
      const __m512i y = _mm512_maskz_loadu_epi16(m, vbase + rows[t + 1] * MD + d0);
      const __m512 c = _mm512_set1_ps(coefs[t]);
      const __m512 e = _mm512_set1_ps(coefs[t + 1]);
      a_lo = _mm512_fmadd_ps(c, _mm512_castsi512_ps(_mm512_unpacklo_epi16(zero, x)), a_lo);
      a_hi = _mm512_fmadd_ps(c, _mm512_castsi512_ps(_mm512_unpackhi_epi16(zero, x)), a_hi);
      b_lo = _mm512_fmadd_ps(e, _mm512_castsi512_ps(_mm512_unpacklo_epi16(zero, y)), b_lo);
      b_hi = _mm512_fmadd_ps(e, _mm512_castsi512_ps(_mm512_unpackhi_epi16(zero, y)), b_hi);
    }
    if (t < n) {
      const __m512i x = _mm512_maskz_loadu_epi16(m, vbase + rows[t] * MD + d0);
      const __m512 c = _mm512_set1_ps(coefs[t]);
      a_lo = _mm512_fmadd_ps(c, _mm512_castsi512_ps(_mm512_unpacklo_epi16(zero, x)), a_lo);
      a_hi = _mm512_fmadd_ps(c, _mm512_castsi512_ps(_mm512_unpackhi_epi16(zero, x)), a_hi);
    }
    const __m512i r = _mm512_packus_epi32(bf16_bits_avx512(_mm512_add_ps(a_lo, b_lo)),
                                          bf16_bits_avx512(_mm512_add_ps(a_hi, b_hi)));
    _mm512_mask_storeu_epi16(out + d0, m, r);
  }
}

// out[d] = sum_t coef_t * vbase[rows_t * MD + d]; two interleaved accumulator sets (even/odd
// taps) halve the FMA dependency chain.
template <bool kBF16>
M2F_TARGET_AVX512 void forward_taps_avx512(const uint16_t* vbase, const int32_t* rows,
                                           const float* coefs, int64_t n, int64_t MD, int64_t D,
                                           uint16_t* out) {
  for (int64_t d0 = 0; d0 < D; d0 += 32) {
    __mmask16 m0, m1;
    block_masks(D - d0, m0, m1);
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
    int64_t t = 0;
    for (; t + 1 < n; t += 2) {
      const uint16_t* p = vbase + rows[t] * MD + d0;
      const uint16_t* q = vbase + rows[t + 1] * MD + d0;
      const __m512 c = _mm512_set1_ps(coefs[t]);
      const __m512 e = _mm512_set1_ps(coefs[t + 1]);
      a0 = _mm512_fmadd_ps(c, load16_avx512<kBF16>(p, m0), a0);
      a1 = _mm512_fmadd_ps(c, load16_avx512<kBF16>(p + 16, m1), a1);
      b0 = _mm512_fmadd_ps(e, load16_avx512<kBF16>(q, m0), b0);
      b1 = _mm512_fmadd_ps(e, load16_avx512<kBF16>(q + 16, m1), b1);
    }
    if (t < n) {
      const uint16_t* p = vbase + rows[t] * MD + d0;
      const __m512 c = _mm512_set1_ps(coefs[t]);
      a0 = _mm512_fmadd_ps(c, load16_avx512<kBF16>(p, m0), a0);
      a1 = _mm512_fmadd_ps(c, load16_avx512<kBF16>(p + 16, m1), a1);
    }
    store16_avx512<kBF16>(out + d0, m0, _mm512_add_ps(a0, b0));
    store16_avx512<kBF16>(out + d0 + 16, m1, _mm512_add_ps(a1, b1));
  }
}

// For every tap: dots[t] = <go, value row>, grad_value row += coef * go (sequentially, so taps
// sharing a row accumulate correctly).
template <bool kBF16>
M2F_TARGET_AVX512 void backward_taps_avx512(const uint16_t* vbase, float* gvbase,
                                            const float* go, const int32_t* rows,
                                            const float* coefs, int64_t n, int64_t MD,
                                            int64_t D, float* dots) {
  for (int64_t t = 0; t < n; ++t) {
    const uint16_t* v = vbase + rows[t] * MD;
    float* gv = gvbase + rows[t] * MD;
    const __m512 c = _mm512_set1_ps(coefs[t]);
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    for (int64_t d0 = 0; d0 < D; d0 += 32) {
      __mmask16 m0, m1;
      block_masks(D - d0, m0, m1);
      const __m512 g0 = _mm512_maskz_loadu_ps(m0, go + d0);
      const __m512 g1 = _mm512_maskz_loadu_ps(m1, go + d0 + 16);
      s0 = _mm512_fmadd_ps(g0, load16_avx512<kBF16>(v + d0, m0), s0);
      s1 = _mm512_fmadd_ps(g1, load16_avx512<kBF16>(v + d0 + 16, m1), s1);
      _mm512_mask_storeu_ps(gv + d0, m0,
                            _mm512_fmadd_ps(c, g0, _mm512_maskz_loadu_ps(m0, gv + d0)));
      _mm512_mask_storeu_ps(gv + d0 + 16, m1,
                            _mm512_fmadd_ps(c, g1, _mm512_maskz_loadu_ps(m1, gv + d0 + 16)));
    }
    dots[t] = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
  }
}

// Per-point constants of one call (they depend on the point's level only), for chunks of 16
// points; lanes past L*P are padding (masked off).
struct PointTable {
  int64_t chunks = 0;
  std::vector<float> wf, hf;              // level width / height
  std::vector<int32_t> wi, hi, start;     // the same as int32; first row of the level
  std::vector<__mmask16> mask, xy_lo, xy_hi;  // per chunk: its points; their (x, y) halves
};

PointTable make_point_table(const Sizes& z, const int64_t* shapes, const int64_t* starts) {
  PointTable t;
  const int64_t LP = z.L * z.P;
  t.chunks = (LP + 15) / 16;
  const int64_t n = t.chunks * 16;
  t.wf.assign(n, 0.f);
  t.hf.assign(n, 0.f);
  t.wi.assign(n, 0);
  t.hi.assign(n, 0);
  t.start.assign(n, 0);
  for (int64_t lp = 0; lp < LP; ++lp) {
    const int64_t l = lp / z.P;
    t.hi[lp] = static_cast<int32_t>(shapes[2 * l]);
    t.wi[lp] = static_cast<int32_t>(shapes[2 * l + 1]);
    t.hf[lp] = static_cast<float>(shapes[2 * l]);
    t.wf[lp] = static_cast<float>(shapes[2 * l + 1]);
    t.start[lp] = static_cast<int32_t>(starts[l]);
  }
  for (int64_t c = 0; c < t.chunks; ++c) {
    const int64_t k = std::min<int64_t>(16, LP - 16 * c);  // points in this chunk
    const auto bits = [](int64_t count) {
      return count >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << std::max<int64_t>(count, 0)) - 1u);
    };
    t.mask.push_back(bits(k));
    t.xy_lo.push_back(bits(2 * k));       // x, y of points 0..7
    t.xy_hi.push_back(bits(2 * k - 16));  // x, y of points 8..15
  }
  return t;
}

// The bilinear set-up of 16 points (chunk c of one (n, q, m)): the arithmetic of
// ms_deform_attn_bilinear.h (bilinear_point) lane by lane, in the same operation order.
struct Points16 {
  __mmask16 valid;      // bilinear_point returned true
  __mmask16 inside[4];  // corner k inside the map (and the point valid)
  __m512 wf, hf, lx, ly, hx, hy, a;
  __m512 w[4];          // bilinear weights, 0 outside
  __m512i row[4];       // row of corner k in the value map of this n
};

template <typename loc_t, typename w_t>
M2F_TARGET_AVX512 inline void points16(const PointTable& t, int64_t c, const loc_t* loc,
                                       const w_t* att, Points16& p) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.f);
  const __m512 minus_one = _mm512_set1_ps(-1.f);
  const __m512i zero = _mm512_setzero_si512(), one_i = _mm512_set1_epi32(1);
  const __mmask16 m = t.mask[c];
  const __m512 lo = load_as_float(loc + 32 * c, t.xy_lo[c]);
  const __m512 hi = load_as_float(loc + 32 * c + 16, t.xy_hi[c]);
  const __m512 loc_x = _mm512_permutex2var_ps(lo, even, hi);
  const __m512 loc_y = _mm512_permutex2var_ps(lo, odd, hi);
  p.a = load_as_float(att + 16 * c, m);
  p.wf = _mm512_loadu_ps(t.wf.data() + 16 * c);
  p.hf = _mm512_loadu_ps(t.hf.data() + 16 * c);
  const __m512i wi = _mm512_loadu_si512(t.wi.data() + 16 * c);
  const __m512i hi_ = _mm512_loadu_si512(t.hi.data() + 16 * c);
  const __m512i start = _mm512_loadu_si512(t.start.data() + 16 * c);
  const __m512 x = _mm512_sub_ps(_mm512_mul_ps(loc_x, p.wf), half);
  const __m512 y = _mm512_sub_ps(_mm512_mul_ps(loc_y, p.hf), half);
  __mmask16 v = _mm512_mask_cmp_ps_mask(m, x, minus_one, _CMP_GE_OQ);  // NaN: false
  v = _mm512_mask_cmp_ps_mask(v, y, minus_one, _CMP_GE_OQ);
  v = _mm512_mask_cmp_ps_mask(v, x, p.wf, _CMP_LT_OQ);
  v = _mm512_mask_cmp_ps_mask(v, y, p.hf, _CMP_LT_OQ);
  p.valid = v;
  const __m512 fx = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  const __m512 fy = _mm512_roundscale_ps(y, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  // exact for valid points (-1 <= floor < W); other lanes are masked off below
  const __m512i x0 = _mm512_cvttps_epi32(fx), y0 = _mm512_cvttps_epi32(fy);
  p.lx = _mm512_sub_ps(x, fx);
  p.ly = _mm512_sub_ps(y, fy);
  p.hx = _mm512_sub_ps(one, p.lx);
  p.hy = _mm512_sub_ps(one, p.ly);
  const __mmask16 x0_in = _mm512_mask_cmpge_epi32_mask(v, x0, zero);
  const __mmask16 x1_in = _mm512_mask_cmplt_epi32_mask(v, _mm512_add_epi32(x0, one_i), wi);
  const __mmask16 y0_in = _mm512_mask_cmpge_epi32_mask(v, y0, zero);
  const __mmask16 y1_in = _mm512_mask_cmplt_epi32_mask(v, _mm512_add_epi32(y0, one_i), hi_);
  p.inside[0] = y0_in & x0_in;
  p.inside[1] = y0_in & x1_in;
  p.inside[2] = y1_in & x0_in;
  p.inside[3] = y1_in & x1_in;
  p.w[0] = _mm512_maskz_mul_ps(p.inside[0], p.hy, p.hx);
  p.w[1] = _mm512_maskz_mul_ps(p.inside[1], p.hy, p.lx);
  p.w[2] = _mm512_maskz_mul_ps(p.inside[2], p.ly, p.hx);
  p.w[3] = _mm512_maskz_mul_ps(p.inside[3], p.ly, p.lx);
  p.row[0] = _mm512_add_epi32(start, _mm512_add_epi32(_mm512_mullo_epi32(y0, wi), x0));
  p.row[1] = _mm512_add_epi32(p.row[0], one_i);
  p.row[2] = _mm512_add_epi32(p.row[0], wi);
  p.row[3] = _mm512_add_epi32(p.row[2], one_i);
}

// Appends the taps of the corners inside the map (order: corner k, then point), coefficient
// attention weight * bilinear weight; masks[k] receives the points of corner k. Returns the new
// count. rows/coefs need 16 entries of slack past the taps (full-register stores).
M2F_TARGET_AVX512 inline int64_t append_taps16(const Points16& p, int32_t* rows, float* coefs,
                                               int64_t nt, __mmask16* masks) {
  for (int k = 0; k < 4; ++k) {
    const __mmask16 mk = p.inside[k];
    _mm512_storeu_si512(rows + nt, _mm512_maskz_compress_epi32(mk, p.row[k]));
    _mm512_storeu_ps(coefs + nt, _mm512_maskz_compress_ps(mk, _mm512_mul_ps(p.a, p.w[k])));
    masks[k] = mk;
    nt += __builtin_popcount(static_cast<unsigned>(mk));
  }
  return nt;
}

// Per-thread scratch of the AVX-512 kernels.
struct Scratch16 {
  std::vector<int32_t> rows;
  std::vector<float> coefs, dots, go;
  std::vector<__mmask16> masks;
  Scratch16(int64_t chunks, int64_t D)
      : rows(64 * chunks + 16), coefs(64 * chunks + 16), dots(64 * chunks + 16),
        go((D + 31) / 32 * 32), masks(4 * chunks) {}
};

template <typename T, typename loc_t, typename w_t>
M2F_TARGET_AVX512 void forward_rows_avx512(const Sizes& z, const PointTable& t, const T* value,
                                           const loc_t* locations, const w_t* weights, T* out,
                                           int64_t nq_begin, int64_t nq_end, Scratch16& s) {
  constexpr bool kBF16 = std::is_same_v<T, at::BFloat16>;
  const int64_t MD = z.M * z.D, LP = z.L * z.P;
  for (int64_t nq = nq_begin; nq < nq_end; ++nq) {
    const int64_t n = nq / z.Lq;
    for (int64_t m = 0; m < z.M; ++m) {
      const int64_t qm = nq * z.M + m;
      const loc_t* loc = locations + qm * LP * 2;
      const w_t* att = weights + qm * LP;
      int64_t nt = 0;
      for (int64_t c = 0; c < t.chunks; ++c) {
        Points16 p;
        points16(t, c, loc, att, p);
        nt = append_taps16(p, s.rows.data(), s.coefs.data(), nt, s.masks.data() + 4 * c);
      }
      const auto* vbase = reinterpret_cast<const uint16_t*>(value + n * z.S * MD + m * z.D);
      auto* o = reinterpret_cast<uint16_t*>(out + qm * z.D);
      if constexpr (kBF16) {
        forward_taps_bf16_avx512(vbase, s.rows.data(), s.coefs.data(), nt, MD, z.D, o);
      } else {
        forward_taps_avx512<false>(vbase, s.rows.data(), s.coefs.data(), nt, MD, z.D, o);
      }
    }
  }
}

template <typename T, typename loc_t, typename w_t>
M2F_TARGET_AVX512 void backward_rows_avx512(const Sizes& z, const PointTable& t, const T* value,
                                            const loc_t* locations, const w_t* weights,
                                            const T* grad_out, float* grad_value,
                                            loc_t* grad_locations, w_t* grad_weights,
                                            int64_t nm_begin, int64_t nm_end, Scratch16& s) {
  constexpr bool kBF16 = std::is_same_v<T, at::BFloat16>;
  const int64_t MD = z.M * z.D, LP = z.L * z.P;
  // (x, y) interleaving of 2 x 16 lanes: points 0..7, then 8..15
  const __m512i il_lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i il_hi = _mm512_add_epi32(il_lo, _mm512_set1_epi32(8));
  for (int64_t nm = nm_begin; nm < nm_end; ++nm) {
    const int64_t n = nm / z.M, m = nm % z.M;
    const T* vbase = value + n * z.S * MD + m * z.D;
    float* gvbase = grad_value + n * z.S * MD + m * z.D;
    for (int64_t q = 0; q < z.Lq; ++q) {
      const int64_t qm = (n * z.Lq + q) * z.M + m;
      for (int64_t d0 = 0; d0 < z.D; d0 += 16) {  // grad_output row -> float
        const __mmask16 md = z.D - d0 >= 16 ? __mmask16(0xFFFF)
                                            : __mmask16((1u << (z.D - d0)) - 1u);
        _mm512_storeu_ps(s.go.data() + d0, load_as_float(grad_out + qm * z.D + d0, md));
      }
      const loc_t* loc = locations + qm * LP * 2;
      const w_t* att = weights + qm * LP;
      int64_t nt = 0;
      for (int64_t c = 0; c < t.chunks; ++c) {
        Points16 p;
        points16(t, c, loc, att, p);
        nt = append_taps16(p, s.rows.data(), s.coefs.data(), nt, s.masks.data() + 4 * c);
      }
      backward_taps_avx512<kBF16>(reinterpret_cast<const uint16_t*>(vbase), gvbase, s.go.data(),
                                  s.rows.data(), s.coefs.data(), nt, MD, z.D, s.dots.data());
      // location and weight gradients (bilinear_grad_location / bilinear_interp lane by lane)
      loc_t* gloc = grad_locations + qm * LP * 2;
      w_t* gatt = grad_weights + qm * LP;
      int64_t pos = 0;
      for (int64_t c = 0; c < t.chunks; ++c) {
        Points16 p;
        points16(t, c, loc, att, p);
        __m512 d[4];  // <grad_output, value at corner k>, 0 outside
        for (int k = 0; k < 4; ++k) {
          const __mmask16 mk = s.masks[4 * c + k];
          d[k] = _mm512_maskz_expand_ps(mk, _mm512_loadu_ps(s.dots.data() + pos));
          pos += __builtin_popcount(static_cast<unsigned>(mk));
        }
        const __m512 dx = _mm512_mul_ps(
            p.wf, _mm512_add_ps(_mm512_mul_ps(p.hy, _mm512_sub_ps(d[1], d[0])),
                                _mm512_mul_ps(p.ly, _mm512_sub_ps(d[3], d[2]))));
        const __m512 dy = _mm512_mul_ps(
            p.hf, _mm512_add_ps(_mm512_mul_ps(p.hx, _mm512_sub_ps(d[2], d[0])),
                                _mm512_mul_ps(p.lx, _mm512_sub_ps(d[3], d[1]))));
        const __m512 gx = _mm512_maskz_mul_ps(p.valid, p.a, dx);
        const __m512 gy = _mm512_maskz_mul_ps(p.valid, p.a, dy);
        __m512 ga = _mm512_add_ps(_mm512_mul_ps(p.w[0], d[0]), _mm512_mul_ps(p.w[1], d[1]));
        ga = _mm512_add_ps(ga, _mm512_mul_ps(p.w[2], d[2]));
        ga = _mm512_add_ps(ga, _mm512_mul_ps(p.w[3], d[3]));
        store_from_float(gloc + 32 * c, t.xy_lo[c], _mm512_permutex2var_ps(gx, il_lo, gy));
        store_from_float(gloc + 32 * c + 16, t.xy_hi[c], _mm512_permutex2var_ps(gx, il_hi, gy));
        store_from_float(gatt + 16 * c, t.mask[c], ga);
      }
    }
  }
}

// ---------------------------------------------------------------- AVX2
// 8 channels per register over the multiple-of-8 part of D; the rest in scalar code.
template <bool kBF16>
M2F_TARGET_AVX2 inline __m256 load8_avx2(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if constexpr (kBF16) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  } else {
    return _mm256_cvtph_ps(h);
  }
}

template <bool kBF16>
M2F_TARGET_AVX2 inline void store8_avx2(uint16_t* p, __m256 x) {
  __m128i h;
  if constexpr (kBF16) {  // round to nearest even, NaN -> 0x7FC0 (c10::BFloat16's rule)
    const __m256i u = _mm256_castps_si256(x);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF)));
    r = _mm256_srli_epi32(r, 16);
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    r = _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7FC0), nan);
    // 32 -> 16 bits: packus works per 128-bit lane, the permute puts the 8 results in front
    r = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0xD8);
    h = _mm256_castsi256_si128(r);
  } else {
    h = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), h);
}

M2F_TARGET_AVX2 inline float hsum_avx2(__m256 x) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <bool kBF16>
M2F_TARGET_AVX2 void forward_taps_avx2(const uint16_t* value, const Tap* taps, int64_t n,
                                       int64_t D8, uint16_t* out) {
  for (int64_t d0 = 0; d0 < D8; d0 += 8) {
    __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
    int64_t t = 0;
    for (; t + 1 < n; t += 2) {
      a = _mm256_fmadd_ps(_mm256_set1_ps(taps[t].coef),
                          load8_avx2<kBF16>(value + taps[t].offset + d0), a);
      b = _mm256_fmadd_ps(_mm256_set1_ps(taps[t + 1].coef),
                          load8_avx2<kBF16>(value + taps[t + 1].offset + d0), b);
    }
    if (t < n) {
      a = _mm256_fmadd_ps(_mm256_set1_ps(taps[t].coef),
                          load8_avx2<kBF16>(value + taps[t].offset + d0), a);
    }
    store8_avx2<kBF16>(out + d0, _mm256_add_ps(a, b));
  }
}

template <bool kBF16>
M2F_TARGET_AVX2 void backward_taps_avx2(const uint16_t* value, float* grad_value,
                                        const float* go, const Tap* taps, int64_t n, int64_t D8,
                                        float* dots) {
  for (int64_t t = 0; t < n; ++t) {
    const uint16_t* v = value + taps[t].offset;
    float* gv = grad_value + taps[t].offset;
    const __m256 c = _mm256_set1_ps(taps[t].coef);
    __m256 s = _mm256_setzero_ps();
    for (int64_t d0 = 0; d0 < D8; d0 += 8) {
      const __m256 g = _mm256_loadu_ps(go + d0);
      s = _mm256_fmadd_ps(g, load8_avx2<kBF16>(v + d0), s);
      _mm256_storeu_ps(gv + d0, _mm256_fmadd_ps(c, g, _mm256_loadu_ps(gv + d0)));
    }
    dots[t] = hsum_avx2(s);
  }
}
#endif  // M2F_X86_SIMD

// ---------------------------------------------------------------- AVX2 channel loops + tails
template <typename T>
void forward_taps(const T* value, const Tap* taps, int64_t n, int64_t D, T* out) {
#if M2F_X86_SIMD
  constexpr bool kBF16 = std::is_same_v<T, at::BFloat16>;
  const auto* v16 = reinterpret_cast<const uint16_t*>(value);
  auto* o16 = reinterpret_cast<uint16_t*>(out);
  const int64_t D8 = D / 8 * 8;
  forward_taps_avx2<kBF16>(v16, taps, n, D8, o16);
  if (D8 < D) forward_taps_scalar(value, taps, n, D8, D, out);
#else
  forward_taps_scalar(value, taps, n, 0, D, out);
#endif
}

template <typename T>
void backward_taps(const T* value, float* grad_value, const float* go, const Tap* taps,
                   int64_t n, int64_t D, float* dots) {
#if M2F_X86_SIMD
  constexpr bool kBF16 = std::is_same_v<T, at::BFloat16>;
  const auto* v16 = reinterpret_cast<const uint16_t*>(value);
  const int64_t D8 = D / 8 * 8;
  backward_taps_avx2<kBF16>(v16, grad_value, go, taps, n, D8, dots);
  if (D8 < D) backward_taps_scalar(value, grad_value, go, taps, n, D8, D, dots);
#else
  std::fill(dots, dots + n, 0.f);
  backward_taps_scalar(value, grad_value, go, taps, n, 0, D, dots);
#endif
}

// ---------------------------------------------------------------- drivers
// AVX-512: the whole per-query work is vector code (forward_rows_avx512 / backward_rows_avx512).
// AVX2: scalar bilinear set-up (collect_taps, below) and gradients, vector channel loops.

// Taps of the (n, m) value rows for the L*P points of one (n, q, m); returns their number.
// points/valid (optional, backward) receive each point's bilinear data.
template <typename loc_t, typename w_t>
int64_t collect_taps(const Sizes& z, int64_t n, int64_t m, const int64_t* shapes,
                     const int64_t* starts, const loc_t* loc, const w_t* att, Tap* taps,
                     int32_t* slots, BilinearPoint<float>* points, bool* valid) {
  const int64_t MD = z.M * z.D;
  int64_t nt = 0;
  for (int64_t l = 0; l < z.L; ++l) {
    const int64_t H = shapes[2 * l], W = shapes[2 * l + 1];
    const int64_t base = (n * z.S + starts[l]) * MD + m * z.D;
    for (int64_t p = 0; p < z.P; ++p) {
      const int64_t lp = l * z.P + p;
      BilinearPoint<float> b;
      const bool ok = bilinear_point(static_cast<float>(loc[2 * lp]),
                                     static_cast<float>(loc[2 * lp + 1]), H, W, b);
      if (valid != nullptr) {
        valid[lp] = ok;
        points[lp] = b;
      }
      if (!ok) continue;
      const float a = static_cast<float>(att[lp]);
      for (int k = 0; k < 4; ++k) {
        if (!b.inside[k]) continue;
        if (slots != nullptr) slots[nt] = static_cast<int32_t>(4 * lp + k);
        taps[nt++] = {base + corner_index(b, k, W) * MD, a * b.w[k]};
      }
    }
  }
  return nt;
}

template <typename T, typename loc_t, typename w_t>
void forward_impl(Isa which, const Sizes& z, const T* value, const int64_t* shapes,
                  const int64_t* starts, const loc_t* locations, const w_t* weights, T* out) {
  const int64_t LP = z.L * z.P;
  // One task per (n, q) pair, as the generic kernel.
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, z.M * LP * z.D));
#if M2F_X86_SIMD
  if (which == Isa::kAvx512) {
    const PointTable table = make_point_table(z, shapes, starts);
    at::parallel_for(0, z.N * z.Lq, grain, [&](int64_t begin, int64_t end) {
      Scratch16 scratch(table.chunks, z.D);
      forward_rows_avx512(z, table, value, locations, weights, out, begin, end, scratch);
    });
    return;
  }
#endif
  (void)which;
  at::parallel_for(0, z.N * z.Lq, grain, [&](int64_t begin, int64_t end) {
    std::vector<Tap> taps(4 * LP);
    for (int64_t nq = begin; nq < end; ++nq) {
      const int64_t n = nq / z.Lq;
      for (int64_t m = 0; m < z.M; ++m) {
        const int64_t qm = nq * z.M + m;
        const int64_t nt = collect_taps(z, n, m, shapes, starts, locations + qm * LP * 2,
                                        weights + qm * LP, taps.data(), nullptr, nullptr,
                                        nullptr);
        forward_taps(value, taps.data(), nt, z.D, out + qm * z.D);
      }
    }
  });
}

// One task per (n, m), which owns grad_value[n, :, m, :] (no atomics, deterministic).
template <typename T, typename loc_t, typename w_t>
void backward_impl(Isa which, const Sizes& z, const T* value, const int64_t* shapes,
                   const int64_t* starts, const loc_t* locations, const w_t* weights,
                   const T* grad_out, float* grad_value, loc_t* grad_locations,
                   w_t* grad_weights) {
  const int64_t LP = z.L * z.P;
#if M2F_X86_SIMD
  if (which == Isa::kAvx512) {
    const PointTable table = make_point_table(z, shapes, starts);
    at::parallel_for(0, z.N * z.M, 1, [&](int64_t begin, int64_t end) {
      Scratch16 scratch(table.chunks, z.D);
      backward_rows_avx512(z, table, value, locations, weights, grad_out, grad_value,
                           grad_locations, grad_weights, begin, end, scratch);
    });
    return;
  }
#endif
  (void)which;
  at::parallel_for(0, z.N * z.M, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> go(z.D);
    std::vector<Tap> taps(4 * LP);
    std::vector<int32_t> slots(4 * LP);
    std::vector<float> dots(4 * LP), corner_dots(4 * LP);
    std::vector<BilinearPoint<float>> points(LP);
    std::unique_ptr<bool[]> valid(new bool[LP]);
    for (int64_t nm = begin; nm < end; ++nm) {
      const int64_t n = nm / z.M, m = nm % z.M;
      for (int64_t q = 0; q < z.Lq; ++q) {
        const int64_t qm = (n * z.Lq + q) * z.M + m;
        const T* g = grad_out + qm * z.D;
        for (int64_t d = 0; d < z.D; ++d) go[d] = static_cast<float>(g[d]);
        const loc_t* loc = locations + qm * LP * 2;
        const w_t* att = weights + qm * LP;
        const int64_t nt = collect_taps(z, n, m, shapes, starts, loc, att, taps.data(),
                                        slots.data(), points.data(), valid.get());
        backward_taps(value, grad_value, go.data(), taps.data(), nt, z.D, dots.data());
        std::fill(corner_dots.begin(), corner_dots.end(), 0.f);  // 0 for corners outside
        for (int64_t t = 0; t < nt; ++t) corner_dots[slots[t]] = dots[t];
        loc_t* gloc = grad_locations + qm * LP * 2;
        w_t* gatt = grad_weights + qm * LP;
        for (int64_t l = 0; l < z.L; ++l) {
          const int64_t H = shapes[2 * l], W = shapes[2 * l + 1];
          for (int64_t p = 0; p < z.P; ++p) {
            const int64_t lp = l * z.P + p;
            if (!valid[lp]) {
              gloc[2 * lp] = gloc[2 * lp + 1] = static_cast<loc_t>(0);
              gatt[lp] = static_cast<w_t>(0);
              continue;
            }
            const float a = static_cast<float>(att[lp]);
            const float* cd = corner_dots.data() + 4 * lp;
            float dx, dy;
            bilinear_grad_location(points[lp], cd, H, W, dx, dy);
            gloc[2 * lp] = static_cast<loc_t>(a * dx);
            gloc[2 * lp + 1] = static_cast<loc_t>(a * dy);
            gatt[lp] = static_cast<w_t>(bilinear_interp(points[lp], cd));
          }
        }
      }
    }
  });
}

bool is_16bit(const at::Tensor& value) {
  return value.scalar_type() == at::kBFloat16 || value.scalar_type() == at::kHalf;
}

}  // namespace

bool forward_lowp(const Sizes& z, const at::Tensor& value, const at::Tensor& spatial_shapes,
                  const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                  const at::Tensor& attention_weights, at::Tensor& out) {
  const Isa which = isa();
  // (the AVX-512 code indexes value rows of one batch element with int32)
  if (which == Isa::kNone || !is_16bit(value) || z.S > std::numeric_limits<int32_t>::max()) {
    return false;
  }
  dispatch_ms_deform_attn_types(
      value, sampling_locations, attention_weights,
      [&](auto value_tag, auto loc_tag, auto w_tag) {
        using T = typename decltype(value_tag)::type;
        using loc_t = typename decltype(loc_tag)::type;
        using w_t = typename decltype(w_tag)::type;
        if constexpr (std::is_same_v<T, at::BFloat16> || std::is_same_v<T, at::Half>) {
          forward_impl<T, loc_t, w_t>(
              which, z, value.data_ptr<T>(), spatial_shapes.data_ptr<int64_t>(),
              level_start_index.data_ptr<int64_t>(), sampling_locations.data_ptr<loc_t>(),
              attention_weights.data_ptr<w_t>(), out.data_ptr<T>());
        }
      });
  return true;
}

bool backward_lowp(const Sizes& z, const at::Tensor& value, const at::Tensor& spatial_shapes,
                   const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                   const at::Tensor& attention_weights, const at::Tensor& grad_output,
                   at::Tensor& grad_value_acc, at::Tensor& grad_locations,
                   at::Tensor& grad_weights) {
  const Isa which = isa();
  // (the AVX-512 code indexes value rows of one batch element with int32)
  if (which == Isa::kNone || !is_16bit(value) || z.S > std::numeric_limits<int32_t>::max()) {
    return false;
  }
  TORCH_INTERNAL_ASSERT(grad_value_acc.scalar_type() == at::kFloat);
  dispatch_ms_deform_attn_types(
      value, sampling_locations, attention_weights,
      [&](auto value_tag, auto loc_tag, auto w_tag) {
        using T = typename decltype(value_tag)::type;
        using loc_t = typename decltype(loc_tag)::type;
        using w_t = typename decltype(w_tag)::type;
        if constexpr (std::is_same_v<T, at::BFloat16> || std::is_same_v<T, at::Half>) {
          backward_impl<T, loc_t, w_t>(
              which, z, value.data_ptr<T>(), spatial_shapes.data_ptr<int64_t>(),
              level_start_index.data_ptr<int64_t>(), sampling_locations.data_ptr<loc_t>(),
              attention_weights.data_ptr<w_t>(), grad_output.data_ptr<T>(),
              grad_value_acc.data_ptr<float>(), grad_locations.data_ptr<loc_t>(),
              grad_weights.data_ptr<w_t>());
        }
      });
  return true;
}

}  // namespace cpu

std::string cpu_vector_isa() {
  switch (cpu::isa()) {
    case cpu::Isa::kAvx512:
      return "avx512";
    case cpu::Isa::kAvx2:
      return "avx2";
    default:
      return "none";
  }
}

}  // namespace mask2former
