// A residual add and the RMS norm that reads it as one CUDA kernel: h = a + b, n = rms_norm(h) * w.
//
// Why: a transformer layer adds a residual and normalises the sum twice per layer; on a GPU every MLX node costs
// microseconds of host time and a batch-1 decode step of a ~1B model is bound by it (docs/benchmarks.md). One
// `fast::cuda_kernel` node with two outputs replaces the Add and RMSNorm nodes.
//
// Numerics follow MLX's kernels: h rounded to the dtype as MLX's Add stores it; the mean square of h in fp32;
// n = w * T(h * rsqrt(mean + eps)) as MLX's `rms_norm` kernel computes it.
#include <cstdio>

#include "shim.h"

using namespace etm;

namespace {

constexpr int kThreads = 256;

// One block per row of H elements. Template constants: T (dtype), H (row length), NT (threads). EPS arrives
// as a float bit pattern (custom kernels take no float template arguments).
constexpr const char* kBody = R"(
  constexpr int NW = NT / 32;
  __shared__ float partial[NW];
  const float eps = __int_as_float(EPS);
  const size_t base = static_cast<size_t>(blockIdx.x) * H;
  const int t = threadIdx.x;
  float sum_sq = 0.f;
  for (int i = t; i < H; i += NT) {
    const T h = static_cast<T>(static_cast<float>(a[base + i]) + static_cast<float>(b[base + i]));
    sum[base + i] = h;
    const float f = static_cast<float>(h);
    sum_sq += f * f;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    sum_sq += __shfl_xor_sync(0xffffffff, sum_sq, o);
  }
  if (t % 32 == 0) {
    partial[t / 32] = sum_sq;
  }
  __syncthreads();
  float total = 0.f;
#pragma unroll
  for (int w = 0; w < NW; ++w) {
    total += partial[w];
  }
  const float normalizer = rsqrt(total / H + eps);
  for (int i = t; i < H; i += NT) {
    // Each thread reads back only the elements it wrote above.
    const float y = static_cast<float>(sum[base + i]) * normalizer;
    normed[base + i] =
        static_cast<T>(static_cast<float>(weight[i]) * static_cast<float>(static_cast<T>(y)));
  }
)";

std::string kernel_source(float eps) {
  char define[64];
  std::snprintf(define, sizeof(define), "  constexpr int EPS = 0x%08x;\n", float_bits(eps));
  return std::string(define) + kBody;
}

void require(bool condition, const char* message) {
  if (!condition) {
    throw std::invalid_argument(std::string("[residual_rms_norm] ") + message);
  }
}

}  // namespace

extern "C" {

// a and b of one shape [..., H] and float dtype, weight [H] of that dtype. Returns a + b and rms_norm(a + b) * w.
// `outs` receives two handles: the sum, then the normalised sum.
int etm_residual_rms_norm(
    const etm_array* a, const etm_array* b, const etm_array* weight, float eps, etm_stream s,
    etm_array** outs) noexcept {
  return guarded([&] {
    const auto& x = deref(a);
    const auto& y = deref(b);
    const auto& w = deref(weight);
    require(x.ndim() >= 1 && x.shape() == y.shape(), "a and b must have one shape");
    require(x.dtype() == y.dtype() && w.dtype() == x.dtype(), "a, b and weight must share a dtype");
    require(x.dtype() == mx::bfloat16 || x.dtype() == mx::float16 || x.dtype() == mx::float32,
        "a float dtype");
    const int hidden = x.shape(-1);
    require(hidden > 0 && w.ndim() == 1 && w.shape(0) == hidden, "weight must be [H]");
    const int rows = static_cast<int>(x.size() / hidden);
    require(rows > 0, "at least one row");
    const auto& kernel = cached_cuda_kernel(
        "etmlx_residual_rms_norm", {"a", "b", "weight"}, {"sum", "normed"}, kernel_source(eps),
        /*ensure_row_contiguous=*/true);
    auto outputs = kernel(
        {x, y, w}, {x.shape(), x.shape()}, {x.dtype(), x.dtype()}, {kThreads * rows, 1, 1},
        {kThreads, 1, 1}, {{"T", x.dtype()}, {"H", hidden}, {"NT", kThreads}}, std::nullopt, false,
        to_stream(s));
    emit_all(outs, 2, std::move(outputs));
  });
}

}  // extern "C"
