// CUDA kernels of multi-scale deformable attention (forward and backward) for float32, float64,
// float16 and bfloat16 values; with a 16-bit value, sampling locations and attention weights may
// be float32 or the value's dtype (dtype rules: ms_deform_attn.h). Arithmetic is in
// at::opmath_type (float for the 16-bit types) and uses the shared host/device code of
// ms_deform_attn_bilinear.h, the same as the CPU kernels: 16-bit values are read as they are,
// sums accumulate in float32 and the output is rounded once. Gradients of value are accumulated
// with atomicAdd into an opmath-typed (float32) buffer and cast at the end; location and weight
// gradients are written in their inputs' dtypes.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>

#include "ms_deform_attn.h"
#include "ms_deform_attn_bilinear.h"

namespace mask2former {

namespace {

constexpr int kThreads = 256;

int64_t num_blocks(int64_t n) {
  // Grid-stride loops cover the rest when n exceeds the cap.
  return std::min<int64_t>((n + kThreads - 1) / kThreads, int64_t(1) << 20);
}

// One thread per output element (n, q, m, d): neighbouring threads read neighbouring channels
// of the same value rows (coalesced).
template <typename scalar_t, typename loc_t, typename w_t>
__global__ void forward_kernel(int64_t total, int64_t S, int64_t M, int64_t D, int64_t Lq,
                               int64_t L, int64_t P, const scalar_t* __restrict__ value,
                               const int64_t* __restrict__ shapes,
                               const int64_t* __restrict__ starts,
                               const loc_t* __restrict__ locations,
                               const w_t* __restrict__ weights,
                               scalar_t* __restrict__ out) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t MD = M * D;
  const int64_t LP = L * P;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t d = i % D;
    const int64_t qm = i / D;  // index of (n, q, m)
    const int64_t m = qm % M;
    const int64_t n = qm / (M * Lq);
    const loc_t* loc = locations + qm * LP * 2;
    const w_t* att = weights + qm * LP;
    acc_t acc = 0;
    for (int64_t l = 0; l < L; ++l) {
      const int64_t H = shapes[2 * l], W = shapes[2 * l + 1];
      const scalar_t* vlevel = value + (n * S + starts[l]) * MD + m * D + d;
      for (int64_t p = 0; p < P; ++p) {
        const int64_t lp = l * P + p;
        BilinearPoint<acc_t> b;
        if (!bilinear_point(static_cast<acc_t>(loc[2 * lp]), static_cast<acc_t>(loc[2 * lp + 1]),
                            H, W, b)) {
          continue;
        }
        acc_t v[4];
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          v[k] = b.inside[k] ? static_cast<acc_t>(vlevel[corner_index(b, k, W) * MD])
                             : static_cast<acc_t>(0);
        }
        acc += static_cast<acc_t>(att[lp]) * bilinear_interp(b, v);
      }
    }
    out[i] = static_cast<scalar_t>(acc);
  }
}

// One thread per sampling point (n, q, m, l, p): it loops over the D channels, so the location
// and attention-weight gradients (sums over channels) are written without atomics; the value
// gradient is scattered with atomicAdd into grad_value (opmath-typed).
template <typename scalar_t, typename loc_t, typename w_t>
__global__ void backward_kernel(int64_t total, int64_t S, int64_t M, int64_t D, int64_t Lq,
                                int64_t L, int64_t P, const scalar_t* __restrict__ value,
                                const int64_t* __restrict__ shapes,
                                const int64_t* __restrict__ starts,
                                const loc_t* __restrict__ locations,
                                const w_t* __restrict__ weights,
                                const scalar_t* __restrict__ grad_out,
                                at::opmath_type<scalar_t>* __restrict__ grad_value,
                                loc_t* __restrict__ grad_locations,
                                w_t* __restrict__ grad_weights) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t MD = M * D;
  const int64_t LP = L * P;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t lp = i % LP;
    const int64_t l = lp / P;
    const int64_t qm = i / LP;  // index of (n, q, m)
    const int64_t m = qm % M;
    const int64_t n = qm / (M * Lq);
    const int64_t H = shapes[2 * l], W = shapes[2 * l + 1];
    BilinearPoint<acc_t> b;
    if (!bilinear_point(static_cast<acc_t>(locations[2 * i]),
                        static_cast<acc_t>(locations[2 * i + 1]), H, W, b)) {
      grad_locations[2 * i] = grad_locations[2 * i + 1] = static_cast<loc_t>(0);
      grad_weights[i] = static_cast<w_t>(0);
      continue;
    }
    const acc_t a = static_cast<acc_t>(weights[i]);
    const int64_t base = (n * S + starts[l]) * MD + m * D;
    const scalar_t* go = grad_out + qm * D;
    acc_t dots[4] = {0, 0, 0, 0};  // <grad_output, value at corner k>
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      if (!b.inside[k]) continue;
      const int64_t off = base + corner_index(b, k, W) * MD;
      const acc_t c = a * b.w[k];
      acc_t dot = 0;
      for (int64_t d = 0; d < D; ++d) {
        const acc_t g = static_cast<acc_t>(go[d]);
        dot += g * static_cast<acc_t>(value[off + d]);
        atomicAdd(grad_value + off + d, c * g);
      }
      dots[k] = dot;
    }
    acc_t dx, dy;
    bilinear_grad_location(b, dots, H, W, dx, dy);
    grad_locations[2 * i] = static_cast<loc_t>(a * dx);
    grad_locations[2 * i + 1] = static_cast<loc_t>(a * dy);
    grad_weights[i] = static_cast<w_t>(bilinear_interp(b, dots));
  }
}

at::Tensor forward_cuda(const at::Tensor& value, const at::Tensor& spatial_shapes,
                        const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                        const at::Tensor& attention_weights) {
  check_ms_deform_attn_inputs(value, spatial_shapes, level_start_index, sampling_locations,
                              attention_weights, "ms_deform_attn_forward");
  const at::cuda::OptionalCUDAGuard guard(value.device());
  const int64_t N = value.size(0), S = value.size(1), M = value.size(2), D = value.size(3);
  const int64_t Lq = sampling_locations.size(1), L = sampling_locations.size(3),
                P = sampling_locations.size(4);
  auto out = at::empty({N, Lq, M * D}, value.options());
  const int64_t total = out.numel();
  if (total == 0) return out;
  auto stream = at::cuda::getCurrentCUDAStream();
  dispatch_ms_deform_attn_types(
      value, sampling_locations, attention_weights,
      [&](auto value_tag, auto loc_tag, auto w_tag) {
        using scalar_t = typename decltype(value_tag)::type;
        using loc_t = typename decltype(loc_tag)::type;
        using w_t = typename decltype(w_tag)::type;
        forward_kernel<scalar_t, loc_t, w_t><<<num_blocks(total), kThreads, 0, stream>>>(
            total, S, M, D, Lq, L, P, value.data_ptr<scalar_t>(),
            spatial_shapes.data_ptr<int64_t>(), level_start_index.data_ptr<int64_t>(),
            sampling_locations.data_ptr<loc_t>(), attention_weights.data_ptr<w_t>(),
            out.data_ptr<scalar_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_cuda(
    const at::Tensor& value, const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
    const at::Tensor& attention_weights, const at::Tensor& grad_output) {
  const char* name = "ms_deform_attn_backward";
  check_ms_deform_attn_inputs(value, spatial_shapes, level_start_index, sampling_locations,
                              attention_weights, name);
  const at::cuda::OptionalCUDAGuard guard(value.device());
  const int64_t N = value.size(0), S = value.size(1), M = value.size(2), D = value.size(3);
  const int64_t Lq = sampling_locations.size(1), L = sampling_locations.size(3),
                P = sampling_locations.size(4);
  check_ms_deform_attn_grad_output(value, sampling_locations, grad_output, name);

  const auto acc_dtype = at::toOpMathType(value.scalar_type());
  auto grad_value_acc = at::zeros(value.sizes(), value.options().dtype(acc_dtype));
  auto grad_locations = at::zeros_like(sampling_locations);
  auto grad_weights = at::zeros_like(attention_weights);
  const int64_t total = attention_weights.numel();
  if (total > 0 && value.numel() > 0) {
    auto stream = at::cuda::getCurrentCUDAStream();
    dispatch_ms_deform_attn_types(
        value, sampling_locations, attention_weights,
        [&](auto value_tag, auto loc_tag, auto w_tag) {
          using scalar_t = typename decltype(value_tag)::type;
          using loc_t = typename decltype(loc_tag)::type;
          using w_t = typename decltype(w_tag)::type;
          using acc_t = at::opmath_type<scalar_t>;
          backward_kernel<scalar_t, loc_t, w_t><<<num_blocks(total), kThreads, 0, stream>>>(
              total, S, M, D, Lq, L, P, value.data_ptr<scalar_t>(),
              spatial_shapes.data_ptr<int64_t>(), level_start_index.data_ptr<int64_t>(),
              sampling_locations.data_ptr<loc_t>(), attention_weights.data_ptr<w_t>(),
              grad_output.data_ptr<scalar_t>(), grad_value_acc.data_ptr<acc_t>(),
              grad_locations.data_ptr<loc_t>(), grad_weights.data_ptr<w_t>());
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        });
  }
  auto grad_value =
      acc_dtype == value.scalar_type() ? grad_value_acc : grad_value_acc.to(value.scalar_type());
  return std::make_tuple(grad_value, grad_locations, grad_weights);
}

}  // namespace

}  // namespace mask2former

TORCH_LIBRARY_IMPL(mask2former, CUDA, m) {
  m.impl("ms_deform_attn_forward", &mask2former::forward_cuda);
  m.impl("ms_deform_attn_backward", &mask2former::backward_cuda);
}
