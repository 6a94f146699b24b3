// Internal header of the etmlx MLX shim: the C ABI seen by Rust (declared again by hand in
// src/lib.rs) plus the C++ helpers every shim file uses.
//
// Conventions (see crate docs):
// - every entry point is extern "C", noexcept, returns 0 on success and nonzero on failure;
// - on failure the C++ message is kept in a thread-local string that etm_last_error() returns;
// - arrays are opaque heap handles (`new mlx::core::array`), released with etm_array_free;
// - results leave through out-pointers; a failed call writes none of them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mlx/mlx.h"

using etm_array = mlx::core::array;

struct etm_stream {
  int index;
  int device_type;  // 0 = cpu, 1 = gpu
  int device_index;
};

namespace etm {

namespace mx = mlx::core;

void set_error(const char* message) noexcept;

// Runs `body`, turning any C++ exception into status 1 plus a stored message.
template <class Body>
int guarded(Body&& body) noexcept {
  try {
    body();
    return 0;
  } catch (const std::exception& e) {
    set_error(e.what());
  } catch (...) {
    set_error("unknown C++ exception");
  }
  return 1;
}

mx::Stream to_stream(etm_stream s);
etm_stream from_stream(const mx::Stream& s);
mx::Device::DeviceType to_device_type(int device_type);
mx::Dtype to_dtype(int code);
int from_dtype(mx::Dtype dtype);

inline mx::Shape to_shape(const int32_t* dims, size_t n) {
  if (n > 0 && dims == nullptr) {
    throw std::invalid_argument("null shape pointer with nonzero length");
  }
  return mx::Shape(dims, dims + n);
}

inline std::vector<int> to_ints(const int32_t* values, size_t n) {
  if (n > 0 && values == nullptr) {
    throw std::invalid_argument("null int list pointer with nonzero length");
  }
  return std::vector<int>(values, values + n);
}

// A `fast::cuda_kernel` built once per (name, source) and kept for the process: building one scans the source,
// calls then only assemble the kernel's signature. Used by the custom-kernel files (ops_decode_attention.cpp,
// ops_residual_norm.cpp).
const mx::fast::CustomKernelFunction& cached_cuda_kernel(
    const std::string& name, const std::vector<std::string>& input_names,
    const std::vector<std::string>& output_names, const std::string& source,
    bool ensure_row_contiguous);

// `value`'s IEEE-754 bits: float constants enter kernel source as `__int_as_float(0x...)` (custom kernels take
// no float template arguments).
uint32_t float_bits(float value);

inline const mx::array& deref(const etm_array* a) {
  if (a == nullptr) {
    throw std::invalid_argument("null array handle");
  }
  return *a;
}

inline std::optional<mx::array> optional_array(const etm_array* a) {
  if (a == nullptr) {
    return std::nullopt;
  }
  return *a;
}

inline std::vector<mx::array> to_arrays(const etm_array* const* arrays, size_t n) {
  if (n > 0 && arrays == nullptr) {
    throw std::invalid_argument("null array list pointer with nonzero length");
  }
  std::vector<mx::array> result;
  result.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    result.push_back(deref(arrays[i]));
  }
  return result;
}

inline void emit(etm_array** out, mx::array value) {
  if (out == nullptr) {
    throw std::invalid_argument("null output pointer");
  }
  *out = new mx::array(std::move(value));
}

// Writes a vector of results into caller-provided slots; the count must match exactly so the
// caller always knows how many handles it owns.
inline void emit_all(etm_array** outs, size_t n_outs, std::vector<mx::array> values) {
  if (values.size() != n_outs) {
    throw std::invalid_argument(
        "op produced " + std::to_string(values.size()) + " arrays but the caller expected " +
        std::to_string(n_outs));
  }
  if (n_outs > 0 && outs == nullptr) {
    throw std::invalid_argument("null output list pointer");
  }
  for (size_t i = 0; i < n_outs; ++i) {
    outs[i] = new mx::array(std::move(values[i]));
  }
}

}  // namespace etm

// Op codes mirrored by mlx-sys/src/lib.rs (keep the numbering in sync).
enum etm_unary_op : int {
  ETM_ABS = 0,
  ETM_NEGATIVE,
  ETM_SIGN,
  ETM_FLOOR,
  ETM_CEIL,
  ETM_TRUNC,
  ETM_SQUARE,
  ETM_SQRT,
  ETM_RSQRT,
  ETM_RECIPROCAL,
  ETM_EXP,
  ETM_EXPM1,
  ETM_LOG,
  ETM_LOG2,
  ETM_LOG10,
  ETM_LOG1P,
  ETM_SIN,
  ETM_COS,
  ETM_TAN,
  ETM_ARCSIN,
  ETM_ARCCOS,
  ETM_ARCTAN,
  ETM_SINH,
  ETM_COSH,
  ETM_TANH,
  ETM_ARCSINH,
  ETM_ARCCOSH,
  ETM_ARCTANH,
  ETM_ERF,
  ETM_SIGMOID,
  ETM_LOGICAL_NOT,
  ETM_BITWISE_INVERT,
};

enum etm_binary_op : int {
  ETM_ADD = 0,
  ETM_SUBTRACT,
  ETM_MULTIPLY,
  ETM_DIVIDE,
  ETM_FLOOR_DIVIDE,
  ETM_REMAINDER,
  ETM_POWER,
  ETM_MAXIMUM,
  ETM_MINIMUM,
  ETM_ARCTAN2,
  ETM_LOGADDEXP,
  ETM_EQUAL,
  ETM_NOT_EQUAL,
  ETM_LESS,
  ETM_LESS_EQUAL,
  ETM_GREATER,
  ETM_GREATER_EQUAL,
  ETM_LOGICAL_AND,
  ETM_LOGICAL_OR,
  ETM_BITWISE_AND,
  ETM_BITWISE_OR,
  ETM_BITWISE_XOR,
};

enum etm_reduce_op : int {
  ETM_SUM = 0,
  ETM_MEAN,
  ETM_PROD,
  ETM_MAX,
  ETM_MIN,
  ETM_ANY,
  ETM_ALL,
  ETM_LOGSUMEXP,
  ETM_VAR,
  ETM_STD,
  ETM_MEDIAN,
};

extern "C" {
const char* etm_last_error(void) noexcept;
}
