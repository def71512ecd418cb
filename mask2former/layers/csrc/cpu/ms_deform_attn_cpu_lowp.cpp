// Vectorised CPU kernels of multi-scale deformable attention for a bfloat16 / float16 value.
//
// Each (n, q, m) is done in two phases:
//   1. scalar: the bilinear arithmetic of ms_deform_attn_bilinear.h (the code every other kernel
//      runs) turns the L*P sampling points into "taps": (offset of a value row inside the map,
//      coefficient = attention weight * bilinear weight) for the corners inside the map;
//   2. vector: the channel loop over the taps, in float32 registers: 16-bit values are widened
//      on load (exactly), multiplied-added in float32 (FMA), and the output is rounded once
//      (round-to-nearest-even, as c10::BFloat16 / c10::Half do). The backward widens
//      grad_output once per query, accumulates the value gradient in a float32 buffer and the
//      per-tap dot products <grad_output, value> in float32 registers.
// The vector code is compiled for AVX-512 (F/BW/VL) and AVX2 (+FMA, F16C) through function
// target attributes (no global -m flags: the rest of the library stays baseline x86-64) and
// chosen at run time from torch's CPU capability (ATEN_CPU_CAPABILITY is honoured). Without
// either, or off x86-64, the functions return false and the generic kernels of
// ms_deform_attn_cpu.cpp run.
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
#define M2F_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))
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
    for (int64_t t = 0; t < n; ++t) acc += taps[t].coef * static_cast<float>(value[taps[t].offset + d]);
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
// 16 channels per register, blocks of 32 channels (two registers), the last block masked.
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

template <bool kBF16>
M2F_TARGET_AVX512 inline void store16_avx512(uint16_t* p, __mmask16 m, __m512 x) {
  __m256i h;
  if constexpr (kBF16) {  // round to nearest even, NaN -> 0x7FC0 (c10::BFloat16's rule)
    const __m512i u = _mm512_castps_si512(x);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF)));
    r = _mm512_srli_epi32(r, 16);
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    r = _mm512_mask_blend_epi32(nan, r, _mm512_set1_epi32(0x7FC0));
    h = _mm512_cvtepi32_epi16(r);
  } else {
    h = _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  _mm256_mask_storeu_epi16(p, m, h);
}

// out[d] = sum_t coef_t * value[offset_t + d]; two interleaved accumulator sets (even/odd taps)
// halve the FMA dependency chain.
template <bool kBF16>
M2F_TARGET_AVX512 void forward_taps_avx512(const uint16_t* value, const Tap* taps, int64_t n,
                                           int64_t D, uint16_t* out) {
  for (int64_t d0 = 0; d0 < D; d0 += 32) {
    __mmask16 m0, m1;
    block_masks(D - d0, m0, m1);
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
    int64_t t = 0;
    for (; t + 1 < n; t += 2) {
      const uint16_t* p = value + taps[t].offset + d0;
      const uint16_t* q = value + taps[t + 1].offset + d0;
      const __m512 c = _mm512_set1_ps(taps[t].coef);
      const __m512 e = _mm512_set1_ps(taps[t + 1].coef);
      a0 = _mm512_fmadd_ps(c, load16_avx512<kBF16>(p, m0), a0);
      a1 = _mm512_fmadd_ps(c, load16_avx512<kBF16>(p + 16, m1), a1);
      b0 = _mm512_fmadd_ps(e, load16_avx512<kBF16>(q, m0), b0);
      b1 = _mm512_fmadd_ps(e, load16_avx512<kBF16>(q + 16, m1), b1);
    }
    if (t < n) {
      const uint16_t* p = value + taps[t].offset + d0;
      const __m512 c = _mm512_set1_ps(taps[t].coef);
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
M2F_TARGET_AVX512 void backward_taps_avx512(const uint16_t* value, float* grad_value,
                                            const float* go, const Tap* taps, int64_t n,
                                            int64_t D, float* dots) {
  for (int64_t t = 0; t < n; ++t) {
    const uint16_t* v = value + taps[t].offset;
    float* gv = grad_value + taps[t].offset;
    const __m512 c = _mm512_set1_ps(taps[t].coef);
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

// ---------------------------------------------------------------- per-ISA channel loops
template <typename T>
void forward_taps(Isa which, const T* value, const Tap* taps, int64_t n, int64_t D, T* out) {
#if M2F_X86_SIMD
  constexpr bool kBF16 = std::is_same_v<T, at::BFloat16>;
  const auto* v16 = reinterpret_cast<const uint16_t*>(value);
  auto* o16 = reinterpret_cast<uint16_t*>(out);
  if (which == Isa::kAvx512) {
    forward_taps_avx512<kBF16>(v16, taps, n, D, o16);
    return;
  }
  const int64_t D8 = D / 8 * 8;
  forward_taps_avx2<kBF16>(v16, taps, n, D8, o16);
  if (D8 < D) forward_taps_scalar(value, taps, n, D8, D, out);
#else
  (void)which;
  forward_taps_scalar(value, taps, n, 0, D, out);
#endif
}

template <typename T>
void backward_taps(Isa which, const T* value, float* grad_value, const float* go,
                   const Tap* taps, int64_t n, int64_t D, float* dots) {
#if M2F_X86_SIMD
  constexpr bool kBF16 = std::is_same_v<T, at::BFloat16>;
  const auto* v16 = reinterpret_cast<const uint16_t*>(value);
  if (which == Isa::kAvx512) {
    backward_taps_avx512<kBF16>(v16, grad_value, go, taps, n, D, dots);
    return;
  }
  const int64_t D8 = D / 8 * 8;
  backward_taps_avx2<kBF16>(v16, grad_value, go, taps, n, D8, dots);
  if (D8 < D) backward_taps_scalar(value, grad_value, go, taps, n, D8, D, dots);
#else
  (void)which;
  std::fill(dots, dots + n, 0.f);
  backward_taps_scalar(value, grad_value, go, taps, n, 0, D, dots);
#endif
}

// ---------------------------------------------------------------- drivers
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
  at::parallel_for(0, z.N * z.Lq, grain, [&](int64_t begin, int64_t end) {
    std::vector<Tap> taps(4 * LP);
    for (int64_t nq = begin; nq < end; ++nq) {
      const int64_t n = nq / z.Lq;
      for (int64_t m = 0; m < z.M; ++m) {
        const int64_t qm = nq * z.M + m;
        const int64_t nt = collect_taps(z, n, m, shapes, starts, locations + qm * LP * 2,
                                        weights + qm * LP, taps.data(), nullptr, nullptr,
                                        nullptr);
        forward_taps(which, value, taps.data(), nt, z.D, out + qm * z.D);
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
        backward_taps(which, value, grad_value, go.data(), taps.data(), nt, z.D, dots.data());
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
  if (which == Isa::kNone || !is_16bit(value)) return false;
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
  if (which == Isa::kNone || !is_16bit(value)) return false;
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
