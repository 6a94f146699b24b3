// Element-wise chains compiled with mx::compile: one fused kernel instead of one primitive per op.
//
// On a GPU every MLX primitive costs microseconds of host time to encode, and a batch-1 decode step is
// bound by that (docs/benchmarks.md). mx::compile traces a function once per (stream, input dtypes and
// ranks) and replays it as a single `Compiled` primitive. The functions are shapeless: decode and
// prefill shapes share one trace. The ops inside are exactly those of the unfused form, in the same
// order, so results match it up to the fused kernel keeping intermediates in registers.
#include "shim.h"

using namespace etm;

namespace {

// x * sigmoid(x): what the executor's SiLU builds op by op.
std::vector<mx::array> silu_body(const std::vector<mx::array>& in) {
  return {mx::multiply(in[0], mx::sigmoid(in[0]))};
}

// silu(gate) * up: the gated MLP of Llama-family models.
std::vector<mx::array> swiglu_body(const std::vector<mx::array>& in) {
  return {mx::multiply(mx::multiply(in[0], mx::sigmoid(in[0])), in[1])};
}

// Runs `fn` with `s` as the default stream: compiled functions trace (and cache) on the default
// stream, so this is how the fused kernel lands on the caller's stream.
mx::array call_on(
    const std::function<std::vector<mx::array>(const std::vector<mx::array>&)>& fn,
    std::vector<mx::array> inputs,
    mx::Stream s) {
  mx::StreamContext context(s);
  return fn(inputs).at(0);
}

}  // namespace

extern "C" {

int etm_compiled_silu(const etm_array* x, etm_stream s, etm_array** out) noexcept {
  static const auto fn = mx::compile(silu_body, /*shapeless=*/true);
  return guarded([&] { emit(out, call_on(fn, {deref(x)}, to_stream(s))); });
}

int etm_compiled_swiglu(
    const etm_array* gate, const etm_array* up, etm_stream s, etm_array** out) noexcept {
  static const auto fn = mx::compile(swiglu_body, /*shapeless=*/true);
  return guarded([&] { emit(out, call_on(fn, {deref(gate), deref(up)}, to_stream(s))); });
}

}  // extern "C"
