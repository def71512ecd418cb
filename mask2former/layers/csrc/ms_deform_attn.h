// Multi-scale deformable attention: declarations shared by the operator registration and the
// per-device kernels.
//
// Shapes (Deformable DETR layout):
//   value               [N, S, M, D]         S = sum_l H_l * W_l
//   spatial_shapes      [L, 2] int64         (H_l, W_l)
//   level_start_index   [L] int64            exclusive cumulative sum of H_l * W_l
//   sampling_locations  [N, Lq, M, L, P, 2]  normalised (x, y)
//   attention_weights   [N, Lq, M, L, P]
//   output              [N, Lq, M * D]
#pragma once

#include <ATen/ATen.h>

#include <tuple>

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

}  // namespace mask2former
