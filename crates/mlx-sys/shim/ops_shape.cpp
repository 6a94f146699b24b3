// Shape, layout, indexing and creation ops.
#include <cstring>
#include <optional>
#include <stdexcept>

#include "mlx/primitives.h"
#include "shim.h"

using namespace etm;

namespace {

mx::Strides to_strides(const int64_t* values, size_t n) {
  if (n > 0 && values == nullptr) {
    throw std::invalid_argument("null strides pointer with nonzero length");
  }
  return mx::Strides(values, values + n);
}

// Where a chain of reshapes starts: the outputs of not-yet-evaluated Reshape nodes are looked through.
// reshape(reshape(x, a), b) is reshape(x, b), and MLX does not fold the two itself; on a GPU every node
// it encodes costs microseconds of host time, which bounds a batch-1 decode step.
const mx::array& reshape_source(const mx::array& x) {
  const mx::array* a = &x;
  while (a->has_primitive() && a->inputs().size() == 1 &&
         std::strcmp(a->primitive().name(), "Reshape") == 0) {
    a = &a->inputs()[0];
  }
  return *a;
}

mx::array reshape_through_views(const mx::array& x, mx::Shape shape, mx::Stream s) {
  return mx::reshape(reshape_source(x), std::move(shape), s);
}

// A transpose that only moves size-1 axes keeps the elements in row-major order: it is a reshape
// (which can then merge with reshapes around it). Returns the output shape when it is one.
std::optional<mx::Shape> transpose_as_reshape(const mx::array& x, const std::vector<int>& perm) {
  const auto ndim = static_cast<int>(x.ndim());
  if (static_cast<int>(perm.size()) != ndim) {
    return std::nullopt;
  }
  mx::Shape shape;
  int last_moved = -1;
  std::vector<bool> seen(ndim, false);
  for (int p : perm) {
    int axis = p < 0 ? p + ndim : p;
    if (axis < 0 || axis >= ndim || seen[axis]) {
      return std::nullopt;  // let MLX report the bad permutation
    }
    seen[axis] = true;
    shape.push_back(x.shape(axis));
    if (x.shape(axis) != 1) {
      if (axis < last_moved) {
        return std::nullopt;
      }
      last_moved = axis;
    }
  }
  return shape;
}

}  // namespace

extern "C" {

int etm_reshape(
    const etm_array* x, const int32_t* shape, size_t ndim, etm_stream s, etm_array** out) noexcept {
  return guarded(
      [&] { emit(out, reshape_through_views(deref(x), to_shape(shape, ndim), to_stream(s))); });
}

int etm_transpose(
    const etm_array* x, const int32_t* perm, size_t n, etm_stream s, etm_array** out) noexcept {
  return guarded([&] {
    const auto& a = deref(x);
    auto axes = to_ints(perm, n);
    if (auto shape = transpose_as_reshape(a, axes)) {
      emit(out, reshape_through_views(a, std::move(*shape), to_stream(s)));
    } else {
      emit(out, mx::transpose(a, axes, to_stream(s)));
    }
  });
}

int etm_expand_dims(const etm_array* x, int axis, etm_stream s, etm_array** out) noexcept {
  return guarded([&] { emit(out, mx::expand_dims(deref(x), axis, to_stream(s))); });
}

// all_axes: squeeze every size-1 dim; else exactly the listed axes (each must be size 1).
int etm_squeeze(
    const etm_array* x, const int32_t* axes, size_t n, bool all_axes, etm_stream s,
    etm_array** out) noexcept {
  return guarded([&] {
    auto st = to_stream(s);
    emit(out, all_axes ? mx::squeeze(deref(x), st) : mx::squeeze(deref(x), to_ints(axes, n), st));
  });
}

int etm_broadcast_to(
    const etm_array* x, const int32_t* shape, size_t ndim, etm_stream s, etm_array** out) noexcept {
  return guarded([&] {
    emit(out, mx::broadcast_to(deref(x), to_shape(shape, ndim), to_stream(s)));
  });
}

int etm_concatenate(
    const etm_array* const* xs, size_t n, int axis, etm_stream s, etm_array** out) noexcept {
  return guarded([&] { emit(out, mx::concatenate(to_arrays(xs, n), axis, to_stream(s))); });
}

int etm_stack(
    const etm_array* const* xs, size_t n, int axis, etm_stream s, etm_array** out) noexcept {
  return guarded([&] { emit(out, mx::stack(to_arrays(xs, n), axis, to_stream(s))); });
}

// Splits at the given indices; writes n_indices + 1 handles into outs.
int etm_split_indices(
    const etm_array* x, const int32_t* indices, size_t n_indices, int axis, etm_stream s,
    etm_array** outs, size_t n_outs) noexcept {
  return guarded([&] {
    emit_all(outs, n_outs,
             mx::split(deref(x), to_shape(indices, n_indices), axis, to_stream(s)));
  });
}

// Splits into `parts` equal pieces; writes `parts` handles into outs.
int etm_split_equal(
    const etm_array* x, int parts, int axis, etm_stream s, etm_array** outs,
    size_t n_outs) noexcept {
  return guarded([&] { emit_all(outs, n_outs, mx::split(deref(x), parts, axis, to_stream(s))); });
}

int etm_tile(
    const etm_array* x, const int32_t* reps, size_t n, etm_stream s, etm_array** out) noexcept {
  return guarded([&] { emit(out, mx::tile(deref(x), to_ints(reps, n), to_stream(s))); });
}

int etm_repeat(
    const etm_array* x, int repeats, int axis, etm_stream s, etm_array** out) noexcept {
  return guarded([&] { emit(out, mx::repeat(deref(x), repeats, axis, to_stream(s))); });
}

int etm_slice(
    const etm_array* x, const int32_t* start, const int32_t* stop, const int32_t* strides,
    size_t ndim, etm_stream s, etm_array** out) noexcept {
  return guarded([&] {
    emit(out,
         mx::slice(deref(x), to_shape(start, ndim), to_shape(stop, ndim),
                   to_shape(strides, ndim), to_stream(s)));
  });
}

int etm_slice_update(
    const etm_array* src, const etm_array* update, const int32_t* start, const int32_t* stop,
    const int32_t* strides, size_t ndim, etm_stream s, etm_array** out) noexcept {
  return guarded([&] {
    emit(out,
         mx::slice_update(deref(src), deref(update), to_shape(start, ndim), to_shape(stop, ndim),
                          to_shape(strides, ndim), to_stream(s)));
  });
}

int etm_as_strided(
    const etm_array* x, const int32_t* shape, size_t ndim, const int64_t* strides,
    size_t n_strides, size_t offset, etm_stream s, etm_array** out) noexcept {
  return guarded([&] {
    emit(out,
         mx::as_strided(deref(x), to_shape(shape, ndim), to_strides(strides, n_strides), offset,
                        to_stream(s)));
  });
}

int etm_contiguous(
    const etm_array* x, bool allow_col_major, etm_stream s, etm_array** out) noexcept {
  return guarded([&] { emit(out, mx::contiguous(deref(x), allow_col_major, to_stream(s))); });
}

// Pads `axes[i]` by low[i] before and high[i] after; mode is "constant" or "edge".
int etm_pad(
    const etm_array* x, const int32_t* axes, const int32_t* low, const int32_t* high, size_t n,
    const etm_array* value, const char* mode, etm_stream s, etm_array** out) noexcept {
  return guarded([&] {
    if (mode == nullptr) {
      throw std::invalid_argument("null pad mode");
    }
    emit(out,
         mx::pad(deref(x), to_ints(axes, n), to_shape(low, n), to_shape(high, n), deref(value),
                 std::string(mode), to_stream(s)));
  });
}

int etm_roll(
    const etm_array* x, const int32_t* shifts, const int32_t* axes, size_t n, etm_stream s,
    etm_array** out) noexcept {
  return guarded([&] {
    emit(out, mx::roll(deref(x), to_shape(shifts, n), to_ints(axes, n), to_stream(s)));
  });
}

int etm_flip(
    const etm_array* x, const int32_t* axes, size_t n, etm_stream s, etm_array** out) noexcept {
  return guarded([&] { emit(out, mx::flip(deref(x), to_ints(axes, n), to_stream(s))); });
}

int etm_take(
    const etm_array* x, const etm_array* indices, int axis, etm_stream s,
    etm_array** out) noexcept {
  return guarded([&] { emit(out, mx::take(deref(x), deref(indices), axis, to_stream(s))); });
}

int etm_take_index(
    const etm_array* x, int index, int axis, etm_stream s, etm_array** out) noexcept {
  return guarded([&] { emit(out, mx::take(deref(x), index, axis, to_stream(s))); });
}

int etm_take_along_axis(
    const etm_array* x, const etm_array* indices, int axis, etm_stream s,
    etm_array** out) noexcept {
  return guarded([&] {
    emit(out, mx::take_along_axis(deref(x), deref(indices), axis, to_stream(s)));
  });
}

int etm_gather(
    const etm_array* x, const etm_array* const* indices, size_t n_indices, const int32_t* axes,
    size_t n_axes, const int32_t* slice_sizes, size_t n_slice, etm_stream s,
    etm_array** out) noexcept {
  return guarded([&] {
    emit(out,
         mx::gather(deref(x), to_arrays(indices, n_indices), to_ints(axes, n_axes),
                    to_shape(slice_sizes, n_slice), to_stream(s)));
  });
}

int etm_scatter_add_axis(
    const etm_array* x, const etm_array* indices, const etm_array* updates, int axis,
    etm_stream s, etm_array** out) noexcept {
  return guarded([&] {
    emit(out,
         mx::scatter_add_axis(deref(x), deref(indices), deref(updates), axis, to_stream(s)));
  });
}

// upper: triu, else tril.
int etm_triangle(bool upper, const etm_array* x, int k, etm_stream s, etm_array** out) noexcept {
  return guarded([&] {
    auto st = to_stream(s);
    emit(out, upper ? mx::triu(deref(x), k, st) : mx::tril(deref(x), k, st));
  });
}

int etm_tri(int n, int m, int k, int dtype, etm_stream s, etm_array** out) noexcept {
  return guarded([&] { emit(out, mx::tri(n, m, k, to_dtype(dtype), to_stream(s))); });
}

// dtype < 0: keep the value's dtype.
int etm_full(
    const int32_t* shape, size_t ndim, const etm_array* value, int dtype, etm_stream s,
    etm_array** out) noexcept {
  return guarded([&] {
    auto st = to_stream(s);
    auto dims = to_shape(shape, ndim);
    emit(out,
         dtype < 0 ? mx::full(std::move(dims), deref(value), st)
                   : mx::full(std::move(dims), deref(value), to_dtype(dtype), st));
  });
}

int etm_zeros(
    const int32_t* shape, size_t ndim, int dtype, etm_stream s, etm_array** out) noexcept {
  return guarded([&] { emit(out, mx::zeros(to_shape(shape, ndim), to_dtype(dtype), to_stream(s))); });
}

// dtype < 0: let MLX infer it (float32 for the double overload).
int etm_arange(
    double start, double stop, double step, int dtype, etm_stream s, etm_array** out) noexcept {
  return guarded([&] {
    auto st = to_stream(s);
    emit(out,
         dtype < 0 ? mx::arange(start, stop, step, st)
                   : mx::arange(start, stop, step, to_dtype(dtype), st));
  });
}

}  // extern "C"

extern "C" {

// Integer overload: MLX infers int32, as the delegate's ARange without a dtype expects.
int etm_arange_int(int start, int stop, int step, etm_stream s, etm_array** out) noexcept {
  return guarded([&] { emit(out, mx::arange(start, stop, step, to_stream(s))); });
}

}  // extern "C"
