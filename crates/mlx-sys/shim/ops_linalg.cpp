// Matrix products, quantized matmuls and (de)quantization.
#include <stdexcept>

#include "shim.h"

using namespace etm;

namespace {

std::string to_mode(const char* mode) {
  if (mode == nullptr) {
    throw std::invalid_argument("null quantization mode");
  }
  return std::string(mode);
}

}  // namespace

extern "C" {

int etm_matmul(const etm_array* a, const etm_array* b, etm_stream s, etm_array** out) noexcept {
  return guarded([&] { emit(out, mx::matmul(deref(a), deref(b), to_stream(s))); });
}

int etm_addmm(
    const etm_array* c, const etm_array* a, const etm_array* b, float alpha, float beta,
    etm_stream s, etm_array** out) noexcept {
  return guarded([&] {
    emit(out, mx::addmm(deref(c), deref(a), deref(b), alpha, beta, to_stream(s)));
  });
}

int etm_quantized_matmul(
    const etm_array* x, const etm_array* w, const etm_array* scales, const etm_array* biases,
    bool transpose, int group_size, int bits, const char* mode, etm_stream s,
    etm_array** out) noexcept {
  return guarded([&] {
    emit(out,
         mx::quantized_matmul(deref(x), deref(w), deref(scales), optional_array(biases),
                              transpose, group_size, bits, to_mode(mode), to_stream(s)));
  });
}

int etm_gather_qmm(
    const etm_array* x, const etm_array* w, const etm_array* scales, const etm_array* biases,
    const etm_array* lhs_indices, const etm_array* rhs_indices, bool transpose, int group_size,
    int bits, const char* mode, bool sorted_indices, etm_stream s, etm_array** out) noexcept {
  return guarded([&] {
    emit(out,
         mx::gather_qmm(deref(x), deref(w), deref(scales), optional_array(biases),
                        optional_array(lhs_indices), optional_array(rhs_indices), transpose,
                        group_size, bits, to_mode(mode), std::nullopt, sorted_indices,
                        to_stream(s)));
  });
}

int etm_gather_mm(
    const etm_array* a, const etm_array* b, const etm_array* lhs_indices,
    const etm_array* rhs_indices, bool sorted_indices, etm_stream s, etm_array** out) noexcept {
  return guarded([&] {
    emit(out,
         mx::gather_mm(deref(a), deref(b), optional_array(lhs_indices),
                       optional_array(rhs_indices), sorted_indices, to_stream(s)));
  });
}

// dtype < 0: MLX's default output dtype (that of scales).
int etm_dequantize(
    const etm_array* w, const etm_array* scales, const etm_array* biases, int group_size,
    int bits, const char* mode, const etm_array* global_scale, int dtype, etm_stream s,
    etm_array** out) noexcept {
  return guarded([&] {
    std::optional<mx::Dtype> dt;
    if (dtype >= 0) {
      dt = to_dtype(dtype);
    }
    emit(out,
         mx::dequantize(deref(w), deref(scales), optional_array(biases), group_size, bits,
                        to_mode(mode), optional_array(global_scale), dt, to_stream(s)));
  });
}

// Writes the packed weights, the scales and (affine mode) the biases; returns how many via n_out.
int etm_quantize(
    const etm_array* w, int group_size, int bits, const char* mode, etm_stream s,
    etm_array** outs, size_t cap, size_t* n_out) noexcept {
  return guarded([&] {
    auto parts = mx::quantize(deref(w), group_size, bits, to_mode(mode), std::nullopt,
                              to_stream(s));
    if (parts.size() > cap) {
      throw std::invalid_argument("quantize produced more outputs than the caller can hold");
    }
    const size_t count = parts.size();  // read before the move below
    emit_all(outs, count, std::move(parts));
    *n_out = count;
  });
}

}  // extern "C"
