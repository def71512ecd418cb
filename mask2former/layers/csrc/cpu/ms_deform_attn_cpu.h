// Declarations shared by the CPU kernel files of multi-scale deformable attention:
// ms_deform_attn_cpu.cpp (the operators, generic kernels for every dtype) and
// ms_deform_attn_cpu_lowp.cpp (vectorised kernels for bfloat16 / float16 value).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace mask2former {
namespace cpu {

struct Sizes {
  int64_t N, S, M, D, Lq, L, P;
};

// Forward of a bfloat16/float16 `value` (sampling_locations / attention_weights in value's dtype
// or float32) with vectorised channel loops: fills `out` ([N, Lq, M*D], value's dtype) and
// returns true, or returns false without touching anything when this CPU (or
// ATEN_CPU_CAPABILITY) offers neither AVX-512 nor AVX2; the caller then runs the generic kernel.
bool forward_lowp(const Sizes& z, const at::Tensor& value, const at::Tensor& spatial_shapes,
                  const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                  const at::Tensor& attention_weights, at::Tensor& out);

// Backward counterpart: accumulates into grad_value_acc (float32, zero-initialised, value's
// shape), writes grad_locations / grad_weights (dtypes of their inputs); same return contract.
bool backward_lowp(const Sizes& z, const at::Tensor& value, const at::Tensor& spatial_shapes,
                   const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                   const at::Tensor& attention_weights, const at::Tensor& grad_output,
                   at::Tensor& grad_value_acc, at::Tensor& grad_locations,
                   at::Tensor& grad_weights);

}  // namespace cpu
}  // namespace mask2former
