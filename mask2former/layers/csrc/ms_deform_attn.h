// Multi-scale deformable attention: declarations shared by the operator registration and the
// per-device kernels.
//
// Shapes (Deformable DETR layout):
//   value               [N, S, M, D]         S = sum_l H_l * W_l
//   spatial_shapes      [L, 2] int64         (H_l, W_l)
//   level_start_index   [L] int64            exclusive cumulative sum of H_l * W_l
//   sampling_locations  [N, Lq, M, L, P, 2]  normalised (x, y)
//   attention_weights   [N, Lq, M, L, P]
//   output              [N, Lq, M * D]       dtype of value
//
// Dtypes (CPU and CUDA alike):
//   value float32 / float64: sampling_locations and attention_weights have value's dtype.
//   value bfloat16 / float16: sampling_locations and attention_weights each have value's dtype
//     or float32 (float32 locations keep sub-pixel precision on large levels).
//   Arithmetic is in float32 (float64 for float64); 16-bit values are read as such and the
//   output is rounded once. The gradients have the dtype of their input; the value gradient is
//   accumulated in a float32 buffer and rounded at the end.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include <string>
#include <tuple>
#include <type_traits>

namespace mask2former {

// Validates ranks, matching sizes, dtypes, devices and contiguity; TORCH_CHECK naming the
// argument on failure. When spatial_shapes / level_start_index live on the CPU their values are
// checked too (positive sizes summing to S, starts equal to the cumulative sum).
void check_ms_deform_attn_inputs(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                 const at::Tensor& level_start_index,
                                 const at::Tensor& sampling_locations,
                                 const at::Tensor& attention_weights, const char* op_name);

// Validates grad_output of the backward op: shape [N, Lq, M*D], dtype/device of value, contiguous.
void check_ms_deform_attn_grad_output(const at::Tensor& value,
                                      const at::Tensor& sampling_locations,
                                      const at::Tensor& grad_output, const char* op_name);

at::Tensor ms_deform_attn_forward_cpu(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                      const at::Tensor& level_start_index,
                                      const at::Tensor& sampling_locations,
                                      const at::Tensor& attention_weights);

std::tuple<at::Tensor, at::Tensor, at::Tensor> ms_deform_attn_backward_cpu(
    const at::Tensor& value, const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
    const at::Tensor& attention_weights, const at::Tensor& grad_output);

// The vector instruction set the 16-bit CPU kernels use here: "avx512", "avx2" or "none"
// (scalar). It follows torch's CPU capability, so ATEN_CPU_CAPABILITY=avx2/default selects the
// narrower paths.
std::string cpu_vector_isa();

// A type carried by value, to pass dtypes to generic lambdas (C++17 has no templated lambdas).
template <typename T>
struct TypeTag {
  using type = T;
};

// Calls fn(TypeTag<value_t>, TypeTag<loc_t>, TypeTag<weight_t>) for the dtypes of the inputs
// (validated by check_ms_deform_attn_inputs): value_t is float, double, at::Half or
// at::BFloat16; loc_t / weight_t are value_t, or float when value_t is a 16-bit type.
template <typename Fn>
void dispatch_ms_deform_attn_types(const at::Tensor& value, const at::Tensor& sampling_locations,
                                   const at::Tensor& attention_weights, Fn&& fn) {
  const auto value_type = value.scalar_type();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, value_type, "ms_deform_attn", [&] {
    using value_t = scalar_t;
    if constexpr (std::is_same_v<value_t, float> || std::is_same_v<value_t, double>) {
      fn(TypeTag<value_t>{}, TypeTag<value_t>{}, TypeTag<value_t>{});
    } else {
      const bool loc32 = sampling_locations.scalar_type() == at::kFloat;
      const bool w32 = attention_weights.scalar_type() == at::kFloat;
      if (loc32 && w32) {
        fn(TypeTag<value_t>{}, TypeTag<float>{}, TypeTag<float>{});
      } else if (loc32) {
        fn(TypeTag<value_t>{}, TypeTag<float>{}, TypeTag<value_t>{});
      } else if (w32) {
        fn(TypeTag<value_t>{}, TypeTag<value_t>{}, TypeTag<float>{});
      } else {
        fn(TypeTag<value_t>{}, TypeTag<value_t>{}, TypeTag<value_t>{});
      }
    }
  });
}

}  // namespace mask2former
