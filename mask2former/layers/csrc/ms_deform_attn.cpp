// Operator registration of multi-scale deformable attention:
//   mask2former::ms_deform_attn_forward, mask2former::ms_deform_attn_backward (CPU and CUDA
//   kernels), their autograd formula (an Autograd kernel), their autocast policy (AutocastCPU /
//   AutocastCUDA kernels), mask2former::compiled_with_cuda() reporting whether the CUDA kernels
//   were built and mask2former::cpu_vector_isa() naming the vector code of the 16-bit CPU kernels.
// The fake (meta) implementations used by torch.compile / torch.export live in Python
// (mask2former/layers/ms_deform_attn.py).
#include <Python.h>

#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "ms_deform_attn.h"

namespace mask2former {

namespace {

void check_same_device(const at::Tensor& t, const at::Tensor& value, const char* name,
                       const char* op_name) {
  TORCH_CHECK(t.device() == value.device(), op_name, ": ", name, " is on ", t.device(),
              " but value is on ", value.device(), "; move all inputs to one device");
}

void check_contiguous(const at::Tensor& t, const char* name, const char* op_name) {
  TORCH_CHECK(t.is_contiguous(), op_name, ": ", name,
              " must be contiguous (call .contiguous() first; the Python function "
              "mask2former.layers.ms_deform_attn does this for you)");
}

// sampling_locations / attention_weights: value's dtype, or float32 when value is 16-bit.
void check_param_dtype(const at::Tensor& t, const at::Tensor& value, const char* name,
                       const char* op_name) {
  const auto v = value.scalar_type(), p = t.scalar_type();
  const bool half_value = v == at::kHalf || v == at::kBFloat16;
  if (p == v || (half_value && p == at::kFloat)) return;
  if (half_value) {
    TORCH_CHECK(false, op_name, ": ", name, " dtype ", p, " is not allowed with value dtype ", v,
                "; use ", v, " or float32 (float32 sampling_locations keep sub-pixel precision)");
  }
  TORCH_CHECK(false, op_name, ": ", name, " dtype ", p, " differs from value dtype ", v,
              "; cast it to ", v, " (only bfloat16/float16 value also takes float32 ", name, ")");
}

}  // namespace

void check_ms_deform_attn_inputs(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                 const at::Tensor& level_start_index,
                                 const at::Tensor& sampling_locations,
                                 const at::Tensor& attention_weights, const char* op_name) {
  TORCH_CHECK(value.dim() == 4, op_name, ": value must have shape [N, S, M, D], got ",
              value.sizes());
  TORCH_CHECK(spatial_shapes.dim() == 2 && spatial_shapes.size(1) == 2, op_name,
              ": spatial_shapes must have shape [L, 2], got ", spatial_shapes.sizes());
  TORCH_CHECK(level_start_index.dim() == 1, op_name,
              ": level_start_index must have shape [L], got ", level_start_index.sizes());
  TORCH_CHECK(sampling_locations.dim() == 6 && sampling_locations.size(5) == 2, op_name,
              ": sampling_locations must have shape [N, Lq, M, L, P, 2], got ",
              sampling_locations.sizes());
  TORCH_CHECK(attention_weights.dim() == 5, op_name,
              ": attention_weights must have shape [N, Lq, M, L, P], got ",
              attention_weights.sizes());

  TORCH_CHECK(at::isFloatingType(value.scalar_type()), op_name,
              ": value must be a floating tensor, got ", value.scalar_type());
  check_param_dtype(sampling_locations, value, "sampling_locations", op_name);
  check_param_dtype(attention_weights, value, "attention_weights", op_name);
  TORCH_CHECK(spatial_shapes.scalar_type() == at::kLong, op_name,
              ": spatial_shapes must be int64, got ", spatial_shapes.scalar_type());
  TORCH_CHECK(level_start_index.scalar_type() == at::kLong, op_name,
              ": level_start_index must be int64, got ", level_start_index.scalar_type());

  check_same_device(spatial_shapes, value, "spatial_shapes", op_name);
  check_same_device(level_start_index, value, "level_start_index", op_name);
  check_same_device(sampling_locations, value, "sampling_locations", op_name);
  check_same_device(attention_weights, value, "attention_weights", op_name);

  const int64_t N = value.size(0), S = value.size(1), M = value.size(2);
  const int64_t L = spatial_shapes.size(0);
  TORCH_CHECK(level_start_index.size(0) == L, op_name, ": level_start_index has ",
              level_start_index.size(0), " levels but spatial_shapes has ", L);
  const auto ls = sampling_locations.sizes();
  TORCH_CHECK(ls[0] == N && ls[2] == M && ls[3] == L, op_name,
              ": sampling_locations shape ", ls, " does not match N=", N, ", M=", M, ", L=", L,
              " (from value ", value.sizes(), " and spatial_shapes)");
  const auto ws = attention_weights.sizes();
  TORCH_CHECK(ws == ls.slice(0, 5), op_name, ": attention_weights shape ", ws,
              " must equal sampling_locations shape without its last dimension ",
              ls.slice(0, 5));

  check_contiguous(value, "value", op_name);
  check_contiguous(spatial_shapes, "spatial_shapes", op_name);
  check_contiguous(level_start_index, "level_start_index", op_name);
  check_contiguous(sampling_locations, "sampling_locations", op_name);
  check_contiguous(attention_weights, "attention_weights", op_name);

  if (spatial_shapes.device().is_cpu()) {
    const int64_t* ss = spatial_shapes.data_ptr<int64_t>();
    const int64_t* starts = level_start_index.data_ptr<int64_t>();
    int64_t total = 0;
    for (int64_t l = 0; l < L; ++l) {
      TORCH_CHECK(ss[2 * l] >= 0 && ss[2 * l + 1] >= 0, op_name, ": spatial_shapes[", l,
                  "] = (", ss[2 * l], ", ", ss[2 * l + 1], ") must be non-negative");
      TORCH_CHECK(starts[l] == total, op_name, ": level_start_index[", l, "] = ", starts[l],
                  " but the sizes in spatial_shapes give ", total);
      total += ss[2 * l] * ss[2 * l + 1];
    }
    TORCH_CHECK(total == S, op_name, ": spatial_shapes sum to ", total,
                " positions but value has S=", S);
  }
}

void check_ms_deform_attn_grad_output(const at::Tensor& value,
                                      const at::Tensor& sampling_locations,
                                      const at::Tensor& grad_output, const char* op_name) {
  const int64_t N = value.size(0), M = value.size(2), D = value.size(3);
  const int64_t Lq = sampling_locations.size(1);
  TORCH_CHECK(grad_output.dim() == 3 && grad_output.size(0) == N && grad_output.size(1) == Lq &&
                  grad_output.size(2) == M * D,
              op_name, ": grad_output must have shape [N, Lq, M*D] = [", N, ", ", Lq, ", ",
              M * D, "], got ", grad_output.sizes());
  TORCH_CHECK(grad_output.scalar_type() == value.scalar_type(), op_name, ": grad_output dtype ",
              grad_output.scalar_type(), " differs from value dtype ", value.scalar_type());
  check_same_device(grad_output, value, "grad_output", op_name);
  check_contiguous(grad_output, "grad_output", op_name);
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor call_forward(const at::Tensor& value, const at::Tensor& spatial_shapes,
                        const at::Tensor& level_start_index,
                        const at::Tensor& sampling_locations,
                        const at::Tensor& attention_weights) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mask2former::ms_deform_attn_forward", "")
                       .typed<decltype(ms_deform_attn_forward_cpu)>();
  return op.call(value, spatial_shapes, level_start_index, sampling_locations,
                 attention_weights);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> call_backward(
    const at::Tensor& value, const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
    const at::Tensor& attention_weights, const at::Tensor& grad_output) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mask2former::ms_deform_attn_backward", "")
                       .typed<decltype(ms_deform_attn_backward_cpu)>();
  return op.call(value, spatial_shapes, level_start_index, sampling_locations,
                 attention_weights, grad_output);
}

// Autograd formula of the forward op: its backward calls the backward op.
class MSDeformAttnFunction : public torch::autograd::Function<MSDeformAttnFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& value,
                            const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
                            const at::Tensor& sampling_locations,
                            const at::Tensor& attention_weights) {
    at::AutoDispatchBelowADInplaceOrView guard;
    at::Tensor out = call_forward(value, spatial_shapes, level_start_index, sampling_locations,
                                  attention_weights);
    ctx->save_for_backward(
        {value, spatial_shapes, level_start_index, sampling_locations, attention_weights});
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    at::Tensor grad = grad_outputs[0];
    if (!grad.defined()) {
      return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    }
    auto grads = call_backward(saved[0], saved[1], saved[2], saved[3], saved[4],
                               grad.contiguous());
    return {std::get<0>(grads), at::Tensor(), at::Tensor(), std::get<1>(grads),
            std::get<2>(grads)};
  }
};

// The backward op is not differentiable again: say so instead of silently returning no graph.
class MSDeformAttnBackwardFunction
    : public torch::autograd::Function<MSDeformAttnBackwardFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& value,
                               const at::Tensor& spatial_shapes,
                               const at::Tensor& level_start_index,
                               const at::Tensor& sampling_locations,
                               const at::Tensor& attention_weights,
                               const at::Tensor& grad_output) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto grads = call_backward(value, spatial_shapes, level_start_index, sampling_locations,
                               attention_weights, grad_output);
    return {std::get<0>(grads), std::get<1>(grads), std::get<2>(grads)};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    TORCH_CHECK(false,
                "mask2former::ms_deform_attn_backward is not differentiable (double backward "
                "of multi-scale deformable attention is not implemented); use "
                "backend='pytorch' if you need higher-order gradients");
    return {};
  }
};

at::Tensor forward_autograd(const at::Tensor& value, const at::Tensor& spatial_shapes,
                            const at::Tensor& level_start_index,
                            const at::Tensor& sampling_locations,
                            const at::Tensor& attention_weights) {
  return MSDeformAttnFunction::apply(value, spatial_shapes, level_start_index,
                                     sampling_locations, attention_weights);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_autograd(
    const at::Tensor& value, const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
    const at::Tensor& attention_weights, const at::Tensor& grad_output) {
  auto r = MSDeformAttnBackwardFunction::apply(value, spatial_shapes, level_start_index,
                                               sampling_locations, attention_weights,
                                               grad_output);
  return std::make_tuple(r[0], r[1], r[2]);
}

// Autocast policy (torch.autocast on CPU or CUDA with a 16-bit dtype T): the op runs its native
// T kernel instead of falling through in whatever dtypes it was given.
//   - a float64 value: nothing is cast (autocast leaves float64 alone);
//   - otherwise value is cast to T, and sampling_locations / attention_weights are kept when
//     they are float32 or T and cast to float32 otherwise (float32 locations keep sub-pixel
//     precision; the kernel reads either dtype without a copy).
// The output has dtype T; autograd returns the gradients in the inputs' original dtypes.
template <c10::DeviceType device_type>
at::Tensor forward_autocast(const at::Tensor& value, const at::Tensor& spatial_shapes,
                            const at::Tensor& level_start_index,
                            const at::Tensor& sampling_locations,
                            const at::Tensor& attention_weights) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(
      at::autocast::get_autocast_dispatch_key_from_device_type(device_type));
  const auto lowp = at::autocast::get_lower_precision_fp_from_device_type(device_type);
  const auto v = value.scalar_type();
  if (!at::isFloatingType(v) || v == at::kDouble) {
    return call_forward(value, spatial_shapes, level_start_index, sampling_locations,
                        attention_weights);
  }
  auto param = [&](const at::Tensor& t) {
    const auto p = t.scalar_type();
    return (p == at::kFloat || p == lowp || !at::isFloatingType(p)) ? t : t.to(at::kFloat);
  };
  return call_forward(value.to(lowp), spatial_shapes, level_start_index,
                      param(sampling_locations), param(attention_weights));
}

bool compiled_with_cuda() {
#ifdef WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace

}  // namespace mask2former

TORCH_LIBRARY(mask2former, m) {
  // The fake (meta) implementations are registered by this Python module; torch imports it when
  // it needs them. (Renamed set_python_module in newer torch; this name works in 2.3 and 2.14.)
  m.impl_abstract_pystub("mask2former.layers.ms_deform_attn");
  m.def(
      "ms_deform_attn_forward(Tensor value, Tensor spatial_shapes, Tensor level_start_index, "
      "Tensor sampling_locations, Tensor attention_weights) -> Tensor");
  m.def(
      "ms_deform_attn_backward(Tensor value, Tensor spatial_shapes, Tensor level_start_index, "
      "Tensor sampling_locations, Tensor attention_weights, Tensor grad_output) "
      "-> (Tensor, Tensor, Tensor)");
  m.def("compiled_with_cuda() -> bool", &mask2former::compiled_with_cuda);
  m.def("cpu_vector_isa() -> str", &mask2former::cpu_vector_isa);
}

TORCH_LIBRARY_IMPL(mask2former, CPU, m) {
  m.impl("ms_deform_attn_forward", &mask2former::ms_deform_attn_forward_cpu);
  m.impl("ms_deform_attn_backward", &mask2former::ms_deform_attn_backward_cpu);
}

TORCH_LIBRARY_IMPL(mask2former, Autograd, m) {
  m.impl("ms_deform_attn_forward", &mask2former::forward_autograd);
  m.impl("ms_deform_attn_backward", &mask2former::backward_autograd);
}

TORCH_LIBRARY_IMPL(mask2former, AutocastCPU, m) {
  m.impl("ms_deform_attn_forward", &mask2former::forward_autocast<c10::DeviceType::CPU>);
}

TORCH_LIBRARY_IMPL(mask2former, AutocastCUDA, m) {
  m.impl("ms_deform_attn_forward", &mask2former::forward_autocast<c10::DeviceType::CUDA>);
}

// `from mask2former import _C` loads this library, which registers the operators above with the
// dispatcher (torch.ops.mask2former.*). The Python module itself is empty.
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT, "_C",
      "Compiled kernels of mask2former; the operators live in torch.ops.mask2former", -1,
      nullptr};
  return PyModule_Create(&module_def);
}
