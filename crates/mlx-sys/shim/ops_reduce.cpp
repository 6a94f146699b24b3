// Reductions, arg-reductions, scans, softmax, sorting and partitioning.
#include <stdexcept>

#include "shim.h"

using namespace etm;

namespace {

// `all_axes` selects the whole-array overload; otherwise `axes` is passed through as given
// (an empty list is meaningful for logsumexp and must not be rewritten here).
mx::array apply_reduce(
    int op,
    const mx::array& x,
    const std::vector<int>& axes,
    bool all_axes,
    bool keepdims,
    int ddof,
    mx::Stream s) {
  switch (op) {
    case ETM_SUM: return all_axes ? mx::sum(x, keepdims, s) : mx::sum(x, axes, keepdims, s);
    case ETM_MEAN: return all_axes ? mx::mean(x, keepdims, s) : mx::mean(x, axes, keepdims, s);
    case ETM_PROD: return all_axes ? mx::prod(x, keepdims, s) : mx::prod(x, axes, keepdims, s);
    case ETM_MAX: return all_axes ? mx::max(x, keepdims, s) : mx::max(x, axes, keepdims, s);
    case ETM_MIN: return all_axes ? mx::min(x, keepdims, s) : mx::min(x, axes, keepdims, s);
    case ETM_ANY: return all_axes ? mx::any(x, keepdims, s) : mx::any(x, axes, keepdims, s);
    case ETM_ALL: return all_axes ? mx::all(x, keepdims, s) : mx::all(x, axes, keepdims, s);
    case ETM_LOGSUMEXP:
      return all_axes ? mx::logsumexp(x, keepdims, s) : mx::logsumexp(x, axes, keepdims, s);
    case ETM_VAR:
      return all_axes ? mx::var(x, keepdims, ddof, s) : mx::var(x, axes, keepdims, ddof, s);
    case ETM_STD:
      return all_axes ? mx::std(x, keepdims, ddof, s) : mx::std(x, axes, keepdims, ddof, s);
    case ETM_MEDIAN:
      return all_axes ? mx::median(x, keepdims, s) : mx::median(x, axes, keepdims, s);
    default:
      throw std::invalid_argument("unknown reduce op code " + std::to_string(op));
  }
}

}  // namespace

extern "C" {

int etm_reduce(
    int op,
    const etm_array* x,
    const int32_t* axes,
    size_t n_axes,
    bool all_axes,
    bool keepdims,
    int ddof,
    etm_stream s,
    etm_array** out) noexcept {
  return guarded([&] {
    emit(out,
         apply_reduce(
             op, deref(x), to_ints(axes, n_axes), all_axes, keepdims, ddof, to_stream(s)));
  });
}

// is_max: argmax, else argmin.
int etm_arg_reduce(
    bool is_max, const etm_array* x, int axis, bool keepdims, etm_stream s,
    etm_array** out) noexcept {
  return guarded([&] {
    auto st = to_stream(s);
    emit(out,
         is_max ? mx::argmax(deref(x), axis, keepdims, st)
                : mx::argmin(deref(x), axis, keepdims, st));
  });
}

int etm_cumsum(
    const etm_array* x, int axis, bool reverse, bool inclusive, etm_stream s,
    etm_array** out) noexcept {
  return guarded([&] {
    emit(out, mx::cumsum(deref(x), axis, reverse, inclusive, std::nullopt, to_stream(s)));
  });
}

int etm_softmax(
    const etm_array* x, const int32_t* axes, size_t n_axes, bool precise, etm_stream s,
    etm_array** out) noexcept {
  return guarded([&] {
    emit(out, mx::softmax(deref(x), to_ints(axes, n_axes), precise, to_stream(s)));
  });
}

// is_arg: argsort, else sort.
int etm_sort(bool is_arg, const etm_array* x, int axis, etm_stream s, etm_array** out) noexcept {
  return guarded([&] {
    auto st = to_stream(s);
    emit(out, is_arg ? mx::argsort(deref(x), axis, st) : mx::sort(deref(x), axis, st));
  });
}

// is_arg: argpartition, else partition.
int etm_partition(
    bool is_arg, const etm_array* x, int kth, int axis, etm_stream s, etm_array** out) noexcept {
  return guarded([&] {
    auto st = to_stream(s);
    emit(out,
         is_arg ? mx::argpartition(deref(x), kth, axis, st)
                : mx::partition(deref(x), kth, axis, st));
  });
}

}  // extern "C"
