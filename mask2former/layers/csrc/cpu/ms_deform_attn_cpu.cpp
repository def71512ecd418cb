// CPU kernels of multi-scale deformable attention (forward and backward), parallelised with
// at::parallel_for. The sampling arithmetic is the shared host/device code of
// ms_deform_attn_bilinear.h. Accumulation is in at::opmath_type (float for float/half/bfloat16,
// double for double). These generic kernels serve every dtype; a bfloat16/float16 value goes to
// the vectorised kernels of ms_deform_attn_cpu_lowp.cpp when the CPU has AVX-512 or AVX2.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <vector>

#include "cpu/ms_deform_attn_cpu.h"
#include "ms_deform_attn.h"
#include "ms_deform_attn_bilinear.h"

namespace mask2former {

namespace {

using cpu::Sizes;

Sizes get_sizes(const at::Tensor& value, const at::Tensor& sampling_locations) {
  return {value.size(0), value.size(1), value.size(2), value.size(3),
          sampling_locations.size(1), sampling_locations.size(3), sampling_locations.size(4)};
}

// scalar_t: value and output; loc_t / w_t: sampling locations / attention weights (scalar_t,
// or float for a 16-bit scalar_t).
template <typename scalar_t, typename loc_t, typename w_t>
void forward_kernel(const Sizes& z, const scalar_t* value, const int64_t* shapes,
                    const int64_t* starts, const loc_t* locations, const w_t* weights,
                    scalar_t* out) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t MD = z.M * z.D;
  const int64_t LP = z.L * z.P;
  // One task per (n, q) pair; each handles its M heads.
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, z.M * LP * z.D));
  at::parallel_for(0, z.N * z.Lq, grain, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> acc(z.D);
    for (int64_t nq = begin; nq < end; ++nq) {
      const int64_t n = nq / z.Lq;
      for (int64_t m = 0; m < z.M; ++m) {
        std::fill(acc.begin(), acc.end(), static_cast<acc_t>(0));
        const int64_t qm = nq * z.M + m;  // index of (n, q, m)
        const loc_t* loc = locations + qm * LP * 2;
        const w_t* att = weights + qm * LP;
        for (int64_t l = 0; l < z.L; ++l) {
          const int64_t H = shapes[2 * l], W = shapes[2 * l + 1];
          const scalar_t* vlevel = value + (n * z.S + starts[l]) * MD + m * z.D;
          for (int64_t p = 0; p < z.P; ++p) {
            const int64_t lp = l * z.P + p;
            BilinearPoint<acc_t> b;
            if (!bilinear_point(static_cast<acc_t>(loc[2 * lp]),
                                static_cast<acc_t>(loc[2 * lp + 1]), H, W, b)) {
              continue;
            }
            const acc_t a = static_cast<acc_t>(att[lp]);
            for (int k = 0; k < 4; ++k) {
              if (!b.inside[k]) continue;
              const acc_t c = a * b.w[k];
              const scalar_t* v = vlevel + corner_index(b, k, W) * MD;
              for (int64_t d = 0; d < z.D; ++d) {
                acc[d] += c * static_cast<acc_t>(v[d]);
              }
            }
          }
        }
        scalar_t* o = out + qm * z.D;
        for (int64_t d = 0; d < z.D; ++d) o[d] = static_cast<scalar_t>(acc[d]);
      }
    }
  });
}

// One task per (n, m): it owns grad_value[n, :, m, :] exclusively, so no atomics are needed and
// the result is deterministic. grad_value_acc is in acc_t (a float copy for half/bfloat16).
template <typename scalar_t, typename loc_t, typename w_t, typename acc_t>
void backward_kernel(const Sizes& z, const scalar_t* value, const int64_t* shapes,
                     const int64_t* starts, const loc_t* locations, const w_t* weights,
                     const scalar_t* grad_out, acc_t* grad_value, loc_t* grad_locations,
                     w_t* grad_weights) {
  const int64_t MD = z.M * z.D;
  const int64_t LP = z.L * z.P;
  at::parallel_for(0, z.N * z.M, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> go(z.D);
    for (int64_t nm = begin; nm < end; ++nm) {
      const int64_t n = nm / z.M, m = nm % z.M;
      for (int64_t q = 0; q < z.Lq; ++q) {
        const int64_t qm = (n * z.Lq + q) * z.M + m;
        const scalar_t* g = grad_out + qm * z.D;
        for (int64_t d = 0; d < z.D; ++d) go[d] = static_cast<acc_t>(g[d]);
        const loc_t* loc = locations + qm * LP * 2;
        const w_t* att = weights + qm * LP;
        loc_t* gloc = grad_locations + qm * LP * 2;
        w_t* gatt = grad_weights + qm * LP;
        for (int64_t l = 0; l < z.L; ++l) {
          const int64_t H = shapes[2 * l], W = shapes[2 * l + 1];
          const int64_t base = (n * z.S + starts[l]) * MD + m * z.D;
          const scalar_t* vlevel = value + base;
          acc_t* gvlevel = grad_value + base;
          for (int64_t p = 0; p < z.P; ++p) {
            const int64_t lp = l * z.P + p;
            BilinearPoint<acc_t> b;
            if (!bilinear_point(static_cast<acc_t>(loc[2 * lp]),
                                static_cast<acc_t>(loc[2 * lp + 1]), H, W, b)) {
              gloc[2 * lp] = gloc[2 * lp + 1] = static_cast<loc_t>(0);
              gatt[lp] = static_cast<w_t>(0);
              continue;
            }
            const acc_t a = static_cast<acc_t>(att[lp]);
            acc_t dots[4] = {0, 0, 0, 0};  // <grad_output, value at corner k>
            for (int k = 0; k < 4; ++k) {
              if (!b.inside[k]) continue;
              const int64_t off = corner_index(b, k, W) * MD;
              const scalar_t* v = vlevel + off;
              acc_t* gv = gvlevel + off;
              const acc_t c = a * b.w[k];
              acc_t dot = 0;
              for (int64_t d = 0; d < z.D; ++d) {
                dot += go[d] * static_cast<acc_t>(v[d]);
                gv[d] += c * go[d];
              }
              dots[k] = dot;
            }
            acc_t dx, dy;
            bilinear_grad_location(b, dots, H, W, dx, dy);
            gloc[2 * lp] = static_cast<loc_t>(a * dx);
            gloc[2 * lp + 1] = static_cast<loc_t>(a * dy);
            gatt[lp] = static_cast<w_t>(bilinear_interp(b, dots));
          }
        }
      }
    }
  });
}

}  // namespace

at::Tensor ms_deform_attn_forward_cpu(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                      const at::Tensor& level_start_index,
                                      const at::Tensor& sampling_locations,
                                      const at::Tensor& attention_weights) {
  check_ms_deform_attn_inputs(value, spatial_shapes, level_start_index, sampling_locations,
                              attention_weights, "ms_deform_attn_forward");
  const Sizes z = get_sizes(value, sampling_locations);
  auto out = at::empty({z.N, z.Lq, z.M * z.D}, value.options());
  if (out.numel() == 0) return out;
  if (cpu::forward_lowp(z, value, spatial_shapes, level_start_index, sampling_locations,
                        attention_weights, out)) {
    return out;
  }
  dispatch_ms_deform_attn_types(
      value, sampling_locations, attention_weights,
      [&](auto value_tag, auto loc_tag, auto w_tag) {
        using scalar_t = typename decltype(value_tag)::type;
        using loc_t = typename decltype(loc_tag)::type;
        using w_t = typename decltype(w_tag)::type;
        forward_kernel<scalar_t, loc_t, w_t>(
            z, value.data_ptr<scalar_t>(), spatial_shapes.data_ptr<int64_t>(),
            level_start_index.data_ptr<int64_t>(), sampling_locations.data_ptr<loc_t>(),
            attention_weights.data_ptr<w_t>(), out.data_ptr<scalar_t>());
      });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> ms_deform_attn_backward_cpu(
    const at::Tensor& value, const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
    const at::Tensor& attention_weights, const at::Tensor& grad_output) {
  const char* name = "ms_deform_attn_backward";
  check_ms_deform_attn_inputs(value, spatial_shapes, level_start_index, sampling_locations,
                              attention_weights, name);
  const Sizes z = get_sizes(value, sampling_locations);
  check_ms_deform_attn_grad_output(value, sampling_locations, grad_output, name);

  const auto acc_dtype = at::toOpMathType(value.scalar_type());
  auto grad_value_acc = at::zeros(value.sizes(), value.options().dtype(acc_dtype));
  auto grad_locations = at::empty_like(sampling_locations);
  auto grad_weights = at::empty_like(attention_weights);
  if (grad_locations.numel() > 0 && value.numel() > 0) {
    if (!cpu::backward_lowp(z, value, spatial_shapes, level_start_index, sampling_locations,
                            attention_weights, grad_output, grad_value_acc, grad_locations,
                            grad_weights)) {
      dispatch_ms_deform_attn_types(
          value, sampling_locations, attention_weights,
          [&](auto value_tag, auto loc_tag, auto w_tag) {
            using scalar_t = typename decltype(value_tag)::type;
            using loc_t = typename decltype(loc_tag)::type;
            using w_t = typename decltype(w_tag)::type;
            using acc_t = at::opmath_type<scalar_t>;
            backward_kernel<scalar_t, loc_t, w_t, acc_t>(
                z, value.data_ptr<scalar_t>(), spatial_shapes.data_ptr<int64_t>(),
                level_start_index.data_ptr<int64_t>(), sampling_locations.data_ptr<loc_t>(),
                attention_weights.data_ptr<w_t>(), grad_output.data_ptr<scalar_t>(),
                grad_value_acc.data_ptr<acc_t>(), grad_locations.data_ptr<loc_t>(),
                grad_weights.data_ptr<w_t>());
          });
    }
  } else {
    grad_locations.zero_();
    grad_weights.zero_();
  }
  auto grad_value =
      acc_dtype == value.scalar_type() ? grad_value_acc : grad_value_acc.to(value.scalar_type());
  return std::make_tuple(grad_value, grad_locations, grad_weights);
}

}  // namespace mask2former
