// Array plumbing, evaluation, devices/streams, memory counters, random and version info.
#include <dlfcn.h>

#include <cstring>
#include <map>
#include <stdexcept>
#include <unordered_set>

#include "mlx/primitives.h"
#include "shim.h"

namespace etm {

namespace {
thread_local std::string last_error;
}

void set_error(const char* message) noexcept {
  try {
    last_error = message != nullptr ? message : "";
  } catch (...) {
    // Out of memory while storing the message: leave the previous one.
  }
}

mx::Device::DeviceType to_device_type(int device_type) {
  switch (device_type) {
    case 0:
      return mx::Device::cpu;
    case 1:
      return mx::Device::gpu;
    default:
      throw std::invalid_argument("unknown device type code " + std::to_string(device_type));
  }
}

mx::Stream to_stream(etm_stream s) {
  return mx::Stream(s.index, mx::Device(to_device_type(s.device_type), s.device_index));
}

etm_stream from_stream(const mx::Stream& s) {
  return etm_stream{
      s.index, s.device.type == mx::Device::gpu ? 1 : 0, s.device.index};
}

// Codes follow mlx::core::Dtype::Val order; src/lib.rs mirrors them.
mx::Dtype to_dtype(int code) {
  switch (code) {
    case 0: return mx::bool_;
    case 1: return mx::uint8;
    case 2: return mx::uint16;
    case 3: return mx::uint32;
    case 4: return mx::uint64;
    case 5: return mx::int8;
    case 6: return mx::int16;
    case 7: return mx::int32;
    case 8: return mx::int64;
    case 9: return mx::float16;
    case 10: return mx::float32;
    case 11: return mx::float64;
    case 12: return mx::bfloat16;
    case 13: return mx::complex64;
    default:
      throw std::invalid_argument("unknown dtype code " + std::to_string(code));
  }
}

int from_dtype(mx::Dtype dtype) {
  return static_cast<int>(dtype.val());
}

namespace {

// Copies an evaluated array's logical elements, row-major, into `dst` (any strides, offsets or
// broadcasts in the source are resolved here on the host).
void copy_row_major(const mx::array& a, char* dst) {
  const size_t itemsize = a.itemsize();
  const char* src = a.data<char>();
  if (a.flags().row_contiguous) {
    std::memcpy(dst, src, a.nbytes());
    return;
  }
  const size_t ndim = a.ndim();
  std::vector<int32_t> index(ndim, 0);
  const auto& shape = a.shape();
  const auto& strides = a.strides();
  for (size_t n = 0; n < a.size(); ++n) {
    int64_t element = 0;
    for (size_t d = 0; d < ndim; ++d) {
      element += static_cast<int64_t>(index[d]) * strides[d];
    }
    std::memcpy(dst + n * itemsize, src + element * static_cast<int64_t>(itemsize), itemsize);
    for (size_t d = ndim; d-- > 0;) {
      if (++index[d] < shape[d]) {
        break;
      }
      index[d] = 0;
    }
  }
}

template <class T>
T scalar_value(mx::array& a) {
  if (a.size() != 1) {
    throw std::invalid_argument(
        "item needs an array with exactly one element, got " + std::to_string(a.size()));
  }
  a.eval();
  a.wait();
  switch (a.dtype()) {
    case mx::bool_: return static_cast<T>(*a.data<bool>());
    case mx::uint8: return static_cast<T>(*a.data<uint8_t>());
    case mx::uint16: return static_cast<T>(*a.data<uint16_t>());
    case mx::uint32: return static_cast<T>(*a.data<uint32_t>());
    case mx::uint64: return static_cast<T>(*a.data<uint64_t>());
    case mx::int8: return static_cast<T>(*a.data<int8_t>());
    case mx::int16: return static_cast<T>(*a.data<int16_t>());
    case mx::int32: return static_cast<T>(*a.data<int32_t>());
    case mx::int64: return static_cast<T>(*a.data<int64_t>());
    case mx::float16: return static_cast<T>(static_cast<float>(*a.data<mx::float16_t>()));
    case mx::float32: return static_cast<T>(*a.data<float>());
    case mx::float64: return static_cast<T>(*a.data<double>());
    case mx::bfloat16: return static_cast<T>(static_cast<float>(*a.data<mx::bfloat16_t>()));
    default:
      throw std::invalid_argument("item is not defined for complex arrays");
  }
}

}  // namespace
}  // namespace etm

using namespace etm;

extern "C" {

const char* etm_last_error(void) noexcept {
  return last_error.c_str();
}

int etm_version(const char** out) noexcept {
  return guarded([&] { *out = mx::version(); });
}

int etm_header_version(int* major, int* minor, int* patch) noexcept {
  return guarded([&] {
    *major = MLX_VERSION_MAJOR;
    *minor = MLX_VERSION_MINOR;
    *patch = MLX_VERSION_PATCH;
  });
}

// Path of the loaded libmlx (where mlx::core::version was resolved from); empty if unknown.
int etm_library_path(const char** out) noexcept {
  return guarded([&] {
    Dl_info info{};
    const char* (*symbol)() = &mx::version;
    if (dladdr(reinterpret_cast<void*>(symbol), &info) != 0 && info.dli_fname != nullptr) {
      *out = info.dli_fname;
    } else {
      *out = "";
    }
  });
}

void etm_array_free(etm_array* a) noexcept {
  delete a;
}

int etm_array_clone(const etm_array* a, etm_array** out) noexcept {
  return guarded([&] { emit(out, deref(a)); });
}

int etm_array_from_bytes(
    const void* data,
    size_t nbytes,
    const int32_t* shape,
    size_t ndim,
    int dtype,
    etm_array** out) noexcept {
  return guarded([&] {
    auto dt = to_dtype(dtype);
    auto dims = to_shape(shape, ndim);
    size_t count = 1;
    for (auto d : dims) {
      if (d < 0) {
        throw std::invalid_argument("negative dimension in shape");
      }
      count *= static_cast<size_t>(d);
    }
    if (count * dt.size() != nbytes) {
      throw std::invalid_argument(
          "byte length " + std::to_string(nbytes) + " does not match shape (" +
          std::to_string(count) + " elements of " + std::to_string(dt.size()) + " bytes)");
    }
    auto buffer = mx::allocator::malloc(nbytes);
    if (nbytes > 0) {
      std::memcpy(buffer.buffer().raw_ptr(), data, nbytes);
    }
    emit(out, mx::array(std::move(buffer), std::move(dims), dt));
  });
}

int etm_array_scalar_f64(double value, int dtype, etm_array** out) noexcept {
  return guarded([&] { emit(out, mx::array(value, to_dtype(dtype))); });
}

int etm_array_scalar_i64(int64_t value, int dtype, etm_array** out) noexcept {
  return guarded([&] { emit(out, mx::array(value, to_dtype(dtype))); });
}

int etm_array_ndim(const etm_array* a, size_t* out) noexcept {
  return guarded([&] { *out = deref(a).ndim(); });
}

// Writes min(cap, ndim) dims; call etm_array_ndim first to size the buffer.
int etm_array_shape(const etm_array* a, int32_t* dims, size_t cap) noexcept {
  return guarded([&] {
    const auto& shape = deref(a).shape();
    for (size_t i = 0; i < shape.size() && i < cap; ++i) {
      dims[i] = shape[i];
    }
  });
}

int etm_array_dtype(const etm_array* a, int* out) noexcept {
  return guarded([&] { *out = from_dtype(deref(a).dtype()); });
}

int etm_array_size(const etm_array* a, size_t* out) noexcept {
  return guarded([&] { *out = deref(a).size(); });
}

int etm_array_id(const etm_array* a, uintptr_t* out) noexcept {
  return guarded([&] { *out = deref(a).id(); });
}

int etm_eval(const etm_array* const* arrays, size_t n) noexcept {
  return guarded([&] { mx::eval(to_arrays(arrays, n)); });
}

int etm_async_eval(const etm_array* const* arrays, size_t n) noexcept {
  return guarded([&] { mx::async_eval(to_arrays(arrays, n)); });
}

// Walks the not-yet-scheduled graph behind `arrays` and calls `visit` once per primitive kind with the number of
// graph nodes using it (the sibling outputs of one node count once): what MLX will encode and launch on an eval.
int etm_graph_primitives(const etm_array* const* arrays, size_t n,
                         void (*visit)(void* ctx, const char* name, size_t count), void* ctx) noexcept {
  return guarded([&] {
    std::unordered_set<std::uintptr_t> seen;
    std::map<std::string, size_t> counts;
    std::vector<mx::array> pending = to_arrays(arrays, n);
    while (!pending.empty()) {
      mx::array a = std::move(pending.back());
      pending.pop_back();
      if (!seen.insert(a.id()).second || !a.has_primitive() ||
          a.status() != mx::array::Status::unscheduled) {
        continue;
      }
      for (const auto& sibling : a.siblings()) {
        seen.insert(sibling.id());
      }
      counts[a.primitive().name()] += 1;
      for (const auto& input : a.inputs()) {
        pending.push_back(input);
      }
    }
    for (const auto& [name, count] : counts) {
      visit(ctx, name.c_str(), count);
    }
  });
}

int etm_array_wait(etm_array* a) noexcept {
  return guarded([&] {
    if (a == nullptr) {
      throw std::invalid_argument("null array handle");
    }
    a->wait();
  });
}

// Evaluates `a` and copies its elements row-major into `dst`, which must be exactly nbytes long.
int etm_array_read(etm_array* a, void* dst, size_t dst_len) noexcept {
  return guarded([&] {
    if (a == nullptr) {
      throw std::invalid_argument("null array handle");
    }
    if (dst_len != a->nbytes()) {
      throw std::invalid_argument(
          "destination holds " + std::to_string(dst_len) + " bytes but the array has " +
          std::to_string(a->nbytes()));
    }
    a->eval();
    a->wait();
    if (dst_len == 0) {
      return;
    }
    copy_row_major(*a, static_cast<char*>(dst));
  });
}

int etm_array_item_i64(etm_array* a, int64_t* out) noexcept {
  return guarded([&] {
    if (a == nullptr) {
      throw std::invalid_argument("null array handle");
    }
    if (mx::issubdtype(a->dtype(), mx::inexact)) {
      throw std::invalid_argument("item_i64 needs an integer or bool array");
    }
    *out = scalar_value<int64_t>(*a);
  });
}

int etm_array_item_f64(etm_array* a, double* out) noexcept {
  return guarded([&] {
    if (a == nullptr) {
      throw std::invalid_argument("null array handle");
    }
    *out = scalar_value<double>(*a);
  });
}

// ---- devices and streams ----

int etm_is_available(int device_type, bool* out) noexcept {
  return guarded([&] { *out = mx::is_available(mx::Device(to_device_type(device_type))); });
}

int etm_default_device(int* device_type, int* device_index) noexcept {
  return guarded([&] {
    const auto& d = mx::default_device();
    *device_type = d.type == mx::Device::gpu ? 1 : 0;
    *device_index = d.index;
  });
}

int etm_default_stream(int device_type, etm_stream* out) noexcept {
  return guarded([&] {
    *out = from_stream(mx::default_stream(mx::Device(to_device_type(device_type))));
  });
}

int etm_new_stream(int device_type, etm_stream* out) noexcept {
  return guarded([&] {
    *out = from_stream(mx::new_stream(mx::Device(to_device_type(device_type))));
  });
}

int etm_new_thread_unsafe_stream(int device_type, etm_stream* out) noexcept {
  return guarded([&] {
    *out = from_stream(mx::new_thread_unsafe_stream(mx::Device(to_device_type(device_type))));
  });
}

int etm_synchronize(etm_stream s) noexcept {
  return guarded([&] { mx::synchronize(to_stream(s)); });
}

// ---- memory ----

int etm_active_memory(size_t* out) noexcept {
  return guarded([&] { *out = mx::get_active_memory(); });
}

int etm_peak_memory(size_t* out) noexcept {
  return guarded([&] { *out = mx::get_peak_memory(); });
}

int etm_reset_peak_memory(void) noexcept {
  return guarded([&] { mx::reset_peak_memory(); });
}

int etm_cache_memory(size_t* out) noexcept {
  return guarded([&] { *out = mx::get_cache_memory(); });
}

int etm_clear_cache(void) noexcept {
  return guarded([&] { mx::clear_cache(); });
}

// ---- random ----

int etm_random_key(uint64_t seed, etm_array** out) noexcept {
  return guarded([&] { emit(out, mx::random::key(seed)); });
}

int etm_random_bits(
    const int32_t* shape,
    size_t ndim,
    int width,
    const etm_array* key,
    etm_stream s,
    etm_array** out) noexcept {
  return guarded([&] {
    emit(out, mx::random::bits(to_shape(shape, ndim), width, optional_array(key), to_stream(s)));
  });
}

}  // extern "C"
