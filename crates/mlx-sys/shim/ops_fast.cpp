// mlx::core::fast: fused norms, RoPE, attention, custom Metal kernels, and the cache of custom CUDA kernels.
#include <stdexcept>

#include <cstring>
#include <mutex>
#include <unordered_map>

#include "shim.h"

using namespace etm;

// A compiled-on-first-call custom kernel (the callable fast::metal_kernel returns).
struct etm_kernel {
  mx::fast::CustomKernelFunction function;
};

namespace {

std::vector<std::string> to_strings(const char* const* values, size_t n) {
  if (n > 0 && values == nullptr) {
    throw std::invalid_argument("null string list pointer with nonzero length");
  }
  std::vector<std::string> result;
  result.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (values[i] == nullptr) {
      throw std::invalid_argument("null string in list");
    }
    result.emplace_back(values[i]);
  }
  return result;
}

std::string to_string_or_empty(const char* value) {
  return value == nullptr ? std::string() : std::string(value);
}

}  // namespace

namespace etm {

const mx::fast::CustomKernelFunction& cached_cuda_kernel(
    const std::string& name, const std::vector<std::string>& input_names,
    const std::vector<std::string>& output_names, const std::string& source,
    bool ensure_row_contiguous) {
  static std::mutex mutex;
  static std::unordered_map<std::string, mx::fast::CustomKernelFunction> kernels;
  std::lock_guard<std::mutex> lock(mutex);
  std::string key = name + '\n' + source;
  auto it = kernels.find(key);
  if (it == kernels.end()) {
    auto kernel = mx::fast::cuda_kernel(
        name, input_names, output_names, source, /*header=*/"", ensure_row_contiguous);
    it = kernels.emplace(std::move(key), std::move(kernel)).first;
  }
  return it->second;
}

uint32_t float_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

}  // namespace etm

extern "C" {

int etm_rms_norm(
    const etm_array* x, const etm_array* weight, float eps, etm_stream s,
    etm_array** out) noexcept {
  return guarded([&] {
    emit(out, mx::fast::rms_norm(deref(x), optional_array(weight), eps, to_stream(s)));
  });
}

int etm_layer_norm(
    const etm_array* x, const etm_array* weight, const etm_array* bias, float eps, etm_stream s,
    etm_array** out) noexcept {
  return guarded([&] {
    emit(out, mx::fast::layer_norm(deref(x), optional_array(weight), optional_array(bias), eps,
                                   to_stream(s)));
  });
}

// has_base=false passes base as nullopt (required when freqs is given). offset_array, when
// non-null, overrides offset_int (per-row positions).
int etm_rope(
    const etm_array* x, int dims, bool traditional, bool has_base, float base, float scale,
    int offset_int, const etm_array* offset_array, const etm_array* freqs, etm_stream s,
    etm_array** out) noexcept {
  return guarded([&] {
    std::optional<float> b;
    if (has_base) {
      b = base;
    }
    auto st = to_stream(s);
    if (offset_array != nullptr) {
      emit(out, mx::fast::rope(deref(x), dims, traditional, b, scale, *offset_array,
                               optional_array(freqs), st));
    } else {
      emit(out, mx::fast::rope(deref(x), dims, traditional, b, scale, offset_int,
                               optional_array(freqs), st));
    }
  });
}

int etm_sdpa(
    const etm_array* q, const etm_array* k, const etm_array* v, float scale,
    const char* mask_mode, const etm_array* mask, const etm_array* sinks, etm_stream s,
    etm_array** out) noexcept {
  return guarded([&] {
    emit(out, mx::fast::scaled_dot_product_attention(
                  deref(q), deref(k), deref(v), scale, to_string_or_empty(mask_mode),
                  optional_array(mask), optional_array(sinks), false, to_stream(s)));
  });
}

int etm_metal_kernel_new(
    const char* name, const char* const* input_names, size_t n_inputs,
    const char* const* output_names, size_t n_outputs, const char* source, const char* header,
    bool ensure_row_contiguous, bool atomic_outputs, etm_kernel** out) noexcept {
  return guarded([&] {
    if (out == nullptr || name == nullptr || source == nullptr) {
      throw std::invalid_argument("null metal_kernel argument");
    }
    auto function = mx::fast::metal_kernel(
        name, to_strings(input_names, n_inputs), to_strings(output_names, n_outputs), source,
        to_string_or_empty(header), ensure_row_contiguous, atomic_outputs);
    *out = new etm_kernel{std::move(function)};
  });
}

void etm_metal_kernel_free(etm_kernel* kernel) noexcept {
  delete kernel;
}

// Output shapes arrive flattened: shape i has shape_lengths[i] dims taken in order from
// shapes_flat. Template arg kinds: 0 = int, 1 = bool, 2 = dtype code.
int etm_metal_kernel_call(
    const etm_kernel* kernel, const etm_array* const* inputs, size_t n_inputs,
    const int32_t* shapes_flat, size_t n_shapes_flat, const int32_t* shape_lengths,
    const int* dtypes, size_t n_outputs, const int32_t* grid, const int32_t* threadgroup,
    const char* const* template_names, const int* template_kinds, const int* template_values,
    size_t n_template, bool has_init_value, float init_value, etm_stream s, etm_array** outs) noexcept {
  return guarded([&] {
    if (kernel == nullptr || grid == nullptr || threadgroup == nullptr) {
      throw std::invalid_argument("null metal_kernel call argument");
    }
    if (n_outputs > 0 && (shape_lengths == nullptr || dtypes == nullptr)) {
      throw std::invalid_argument("null output description");
    }
    std::vector<mx::Shape> shapes;
    std::vector<mx::Dtype> out_dtypes;
    size_t cursor = 0;
    for (size_t i = 0; i < n_outputs; ++i) {
      if (shape_lengths[i] < 0 ||
          cursor + static_cast<size_t>(shape_lengths[i]) > n_shapes_flat) {
        throw std::invalid_argument("output shape lengths exceed the flattened shapes");
      }
      shapes.push_back(to_shape(shapes_flat + cursor, static_cast<size_t>(shape_lengths[i])));
      cursor += static_cast<size_t>(shape_lengths[i]);
      out_dtypes.push_back(to_dtype(dtypes[i]));
    }
    auto names = to_strings(template_names, n_template);
    std::vector<std::pair<std::string, mx::fast::TemplateArg>> template_args;
    for (size_t i = 0; i < n_template; ++i) {
      switch (template_kinds[i]) {
        case 0: template_args.emplace_back(names[i], template_values[i]); break;
        case 1: template_args.emplace_back(names[i], template_values[i] != 0); break;
        case 2: template_args.emplace_back(names[i], to_dtype(template_values[i])); break;
        default:
          throw std::invalid_argument(
              "unknown template arg kind " + std::to_string(template_kinds[i]));
      }
    }
    std::optional<float> init;
    if (has_init_value) {
      init = init_value;
    }
    auto results = kernel->function(
        to_arrays(inputs, n_inputs), shapes, out_dtypes,
        std::make_tuple(grid[0], grid[1], grid[2]),
        std::make_tuple(threadgroup[0], threadgroup[1], threadgroup[2]), template_args, init,
        false, to_stream(s));
    emit_all(outs, n_outputs, std::move(results));
  });
}

}  // extern "C"
