// Element-wise ops: one dispatcher for unary, one for binary, plus the few with extra arguments.
#include <stdexcept>

#include "shim.h"

using namespace etm;

namespace {

mx::array apply_unary(int op, const mx::array& x, mx::Stream s) {
  switch (op) {
    case ETM_ABS: return mx::abs(x, s);
    case ETM_NEGATIVE: return mx::negative(x, s);
    case ETM_SIGN: return mx::sign(x, s);
    case ETM_FLOOR: return mx::floor(x, s);
    case ETM_CEIL: return mx::ceil(x, s);
    case ETM_TRUNC: return mx::trunc(x, s);
    case ETM_SQUARE: return mx::square(x, s);
    case ETM_SQRT: return mx::sqrt(x, s);
    case ETM_RSQRT: return mx::rsqrt(x, s);
    case ETM_RECIPROCAL: return mx::reciprocal(x, s);
    case ETM_EXP: return mx::exp(x, s);
    case ETM_EXPM1: return mx::expm1(x, s);
    case ETM_LOG: return mx::log(x, s);
    case ETM_LOG2: return mx::log2(x, s);
    case ETM_LOG10: return mx::log10(x, s);
    case ETM_LOG1P: return mx::log1p(x, s);
    case ETM_SIN: return mx::sin(x, s);
    case ETM_COS: return mx::cos(x, s);
    case ETM_TAN: return mx::tan(x, s);
    case ETM_ARCSIN: return mx::arcsin(x, s);
    case ETM_ARCCOS: return mx::arccos(x, s);
    case ETM_ARCTAN: return mx::arctan(x, s);
    case ETM_SINH: return mx::sinh(x, s);
    case ETM_COSH: return mx::cosh(x, s);
    case ETM_TANH: return mx::tanh(x, s);
    case ETM_ARCSINH: return mx::arcsinh(x, s);
    case ETM_ARCCOSH: return mx::arccosh(x, s);
    case ETM_ARCTANH: return mx::arctanh(x, s);
    case ETM_ERF: return mx::erf(x, s);
    case ETM_SIGMOID: return mx::sigmoid(x, s);
    case ETM_LOGICAL_NOT: return mx::logical_not(x, s);
    case ETM_BITWISE_INVERT: return mx::bitwise_invert(x, s);
    default:
      throw std::invalid_argument("unknown unary op code " + std::to_string(op));
  }
}

mx::array apply_binary(int op, const mx::array& a, const mx::array& b, mx::Stream s) {
  switch (op) {
    case ETM_ADD: return mx::add(a, b, s);
    case ETM_SUBTRACT: return mx::subtract(a, b, s);
    case ETM_MULTIPLY: return mx::multiply(a, b, s);
    case ETM_DIVIDE: return mx::divide(a, b, s);
    case ETM_FLOOR_DIVIDE: return mx::floor_divide(a, b, s);
    case ETM_REMAINDER: return mx::remainder(a, b, s);
    case ETM_POWER: return mx::power(a, b, s);
    case ETM_MAXIMUM: return mx::maximum(a, b, s);
    case ETM_MINIMUM: return mx::minimum(a, b, s);
    case ETM_ARCTAN2: return mx::arctan2(a, b, s);
    case ETM_LOGADDEXP: return mx::logaddexp(a, b, s);
    case ETM_EQUAL: return mx::equal(a, b, s);
    case ETM_NOT_EQUAL: return mx::not_equal(a, b, s);
    case ETM_LESS: return mx::less(a, b, s);
    case ETM_LESS_EQUAL: return mx::less_equal(a, b, s);
    case ETM_GREATER: return mx::greater(a, b, s);
    case ETM_GREATER_EQUAL: return mx::greater_equal(a, b, s);
    case ETM_LOGICAL_AND: return mx::logical_and(a, b, s);
    case ETM_LOGICAL_OR: return mx::logical_or(a, b, s);
    case ETM_BITWISE_AND: return mx::bitwise_and(a, b, s);
    case ETM_BITWISE_OR: return mx::bitwise_or(a, b, s);
    case ETM_BITWISE_XOR: return mx::bitwise_xor(a, b, s);
    default:
      throw std::invalid_argument("unknown binary op code " + std::to_string(op));
  }
}

}  // namespace

extern "C" {

int etm_unary(int op, const etm_array* x, etm_stream s, etm_array** out) noexcept {
  return guarded([&] { emit(out, apply_unary(op, deref(x), to_stream(s))); });
}

int etm_binary(
    int op, const etm_array* a, const etm_array* b, etm_stream s, etm_array** out) noexcept {
  return guarded([&] { emit(out, apply_binary(op, deref(a), deref(b), to_stream(s))); });
}

int etm_round(const etm_array* x, int decimals, etm_stream s, etm_array** out) noexcept {
  return guarded([&] { emit(out, mx::round(deref(x), decimals, to_stream(s))); });
}

int etm_where(
    const etm_array* cond,
    const etm_array* x,
    const etm_array* y,
    etm_stream s,
    etm_array** out) noexcept {
  return guarded([&] { emit(out, mx::where(deref(cond), deref(x), deref(y), to_stream(s))); });
}

// a_min / a_max may be null (unbounded on that side).
int etm_clip(
    const etm_array* x,
    const etm_array* a_min,
    const etm_array* a_max,
    etm_stream s,
    etm_array** out) noexcept {
  return guarded([&] {
    emit(out, mx::clip(deref(x), optional_array(a_min), optional_array(a_max), to_stream(s)));
  });
}

int etm_astype(const etm_array* x, int dtype, etm_stream s, etm_array** out) noexcept {
  return guarded([&] { emit(out, mx::astype(deref(x), to_dtype(dtype), to_stream(s))); });
}

}  // extern "C"
