// One CUDA kernel for the attention block of a one-token decode step: rotate q and k (RoPE), write k and v into
// the layer's caches, and attend over the cache (grouped-query, causal for the single query).
//
// Why: on a GPU every MLX node costs microseconds of host time and a batch-1 decode step of a ~1B model is
// bound by it (docs/benchmarks.md). Unfused, this block is eight nodes per layer (two head splits, a rope, two
// cache writes, two cache views, attention); fused it is one `fast::cuda_kernel` node.
//
// The cache write goes *through* the cache inputs: MLX custom kernels cannot update an input in place, so the
// kernel writes the new rows into buffers MLX believes it only reads. That is sound here because
// - the executor only fuses caches it owns alone: a handle's zero-filled mutable buffers, which the IR analysis
//   (`passes/decode_attention.rs`) proves no op but the block's own writes and reads touches, so they only ever
//   hold this kernel's writes or `slice_update` results; it keeps the same array in the cache slot afterwards;
// - nothing later in the same step reads the cache (the kernel is the step's only reader of its rows), and the
//   rows a step reads [0, start) are never the row it writes (start); the next step is ordered after this one on
//   the stream;
// - each block reads the newest key and value from its own registers, never from the row being written.
//
// Numerics follow MLX's own kernels: the rope as in `rope.cu` (fp32 angle, inverse frequency 1 / freqs[i] or
// exp2(-i/half * log2(base))), rotated q and k rounded to the input dtype as `fast::rope` outputs them, scores,
// softmax and the weighted sum in fp32 (online softmax, merged across threads at the end).
#include <cstdio>

#include "shim.h"

using namespace etm;

namespace {

// Threads per block (one block per batch row and query head). 128 keeps four warps of keys in flight.
constexpr int kThreads = 128;

// The kernel body; MLX's `cuda_kernel` writes the signature from the input and output names. Template
// constants: T (dtype), D (head dim), HQ / HK (query / key-value heads), NT (threads), TRAD (adjacent-pair
// rope), HAS_FREQS (inverse frequencies from `freqs`, else from the base). ROPE_SCALE, LOG2_BASE and
// SDPA_SCALE are spliced in as float bit patterns (custom kernels take no float template arguments).
constexpr const char* kBody = R"(
  constexpr int HALF = D / 2;
  constexpr int NW = NT / 32;
  constexpr int VEC = 16 / sizeof(T);
  constexpr int G = HQ / HK;
  __shared__ float q_s[D];
  __shared__ float k_s[D];
  __shared__ float v_s[D];
  __shared__ float part_m[NW];
  __shared__ float part_l[NW];
  __shared__ float part_acc[NW][D];
  const float rope_scale = __int_as_float(ROPE_SCALE);
  const float log2_base = __int_as_float(LOG2_BASE);
  const float sdpa_scale = __int_as_float(SDPA_SCALE);

  const int bh = blockIdx.x;
  const int b = bh / HQ;
  const int h = bh - b * HQ;
  const int kvh = h / G;
  const int t = threadIdx.x;
  const int64_t head_stride = heads_strides[1];
  const int64_t dim_stride = heads_strides[3];
  const T* q_in = heads + b * heads_strides[0] + h * head_stride;
  const T* k_in = heads + b * heads_strides[0] + (HQ + kvh) * head_stride;
  const T* v_in = heads + b * heads_strides[0] + (HQ + HK + kvh) * head_stride;
  const int position = offset[0];
  const int row = start[0];
  const int cache_len = k_cache_shape[2];

  // Rotate this head's q and its key-value head's new k; keep them (rounded as a rope output) and v in
  // shared memory.
  const float angle_base = rope_scale * static_cast<float>(position);
  for (int i = t; i < HALF; i += NT) {
    float inv_freq;
    if (HAS_FREQS) {
      inv_freq = 1.0 / static_cast<float>(freqs[i * freqs_strides[0]]);
    } else {
      inv_freq = exp2(-(static_cast<float>(i) / static_cast<float>(HALF)) * log2_base);
    }
    const float theta = angle_base * inv_freq;
    const float c = cos(theta);
    const float s = sin(theta);
    const int i1 = TRAD ? 2 * i : i;
    const int i2 = TRAD ? 2 * i + 1 : i + HALF;
    float x1 = static_cast<float>(q_in[i1 * dim_stride]);
    float x2 = static_cast<float>(q_in[i2 * dim_stride]);
    q_s[i1] = static_cast<float>(static_cast<T>(x1 * c - x2 * s));
    q_s[i2] = static_cast<float>(static_cast<T>(x1 * s + x2 * c));
    x1 = static_cast<float>(k_in[i1 * dim_stride]);
    x2 = static_cast<float>(k_in[i2 * dim_stride]);
    k_s[i1] = static_cast<float>(static_cast<T>(x1 * c - x2 * s));
    k_s[i2] = static_cast<float>(static_cast<T>(x1 * s + x2 * c));
  }
  for (int i = t; i < D; i += NT) {
    v_s[i] = static_cast<float>(v_in[i * dim_stride]);
  }
  __syncthreads();

  // The first query head of each group writes the new row (see the file comment: through an input).
  const size_t first_row = static_cast<size_t>(b * HK + kvh) * cache_len;
  if (h % G == 0) {
    T* k_out = const_cast<T*>(k_cache) + (first_row + row) * D;
    T* v_out = const_cast<T*>(v_cache) + (first_row + row) * D;
    for (int i = t; i < D; i += NT) {
      k_out[i] = static_cast<T>(k_s[i]);
      v_out[i] = static_cast<T>(v_s[i]);
    }
  }

  // Keys 0..=row, strided over the threads; each thread keeps its own running max, sum and weighted values.
  float m = -INFINITY;
  float l = 0.f;
  float acc[D];
#pragma unroll
  for (int d = 0; d < D; ++d) {
    acc[d] = 0.f;
  }
  const T* k_rows = k_cache + first_row * D;
  const T* v_rows = v_cache + first_row * D;
  for (int j = t; j <= row; j += NT) {
    float score = 0.f;
    if (j < row) {
      const T* kr = k_rows + static_cast<size_t>(j) * D;
#pragma unroll
      for (int d0 = 0; d0 < D; d0 += VEC) {
        const uint4 raw = *reinterpret_cast<const uint4*>(kr + d0);
        const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
        for (int u = 0; u < VEC; ++u) {
          score += q_s[d0 + u] * static_cast<float>(e[u]);
        }
      }
    } else {
#pragma unroll
      for (int d = 0; d < D; ++d) {
        score += q_s[d] * k_s[d];
      }
    }
    score *= sdpa_scale;
    const float m_new = fmaxf(m, score);
    const float correction = expf(m - m_new);
    const float p = expf(score - m_new);
    l = l * correction + p;
    if (j < row) {
      const T* vr = v_rows + static_cast<size_t>(j) * D;
#pragma unroll
      for (int d0 = 0; d0 < D; d0 += VEC) {
        const uint4 raw = *reinterpret_cast<const uint4*>(vr + d0);
        const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
        for (int u = 0; u < VEC; ++u) {
          acc[d0 + u] = acc[d0 + u] * correction + p * static_cast<float>(e[u]);
        }
      }
    } else {
#pragma unroll
      for (int d = 0; d < D; ++d) {
        acc[d] = acc[d] * correction + p * v_s[d];
      }
    }
    m = m_new;
  }

  // Merge: across the lanes of a warp, then across warps.
  float warp_m = m;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    warp_m = fmaxf(warp_m, __shfl_xor_sync(0xffffffff, warp_m, o));
  }
  const float f = (m == -INFINITY) ? 0.f : expf(m - warp_m);
  l *= f;
#pragma unroll
  for (int d = 0; d < D; ++d) {
    acc[d] *= f;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    l += __shfl_xor_sync(0xffffffff, l, o);
#pragma unroll
    for (int d = 0; d < D; ++d) {
      acc[d] += __shfl_xor_sync(0xffffffff, acc[d], o);
    }
  }
  const int warp = t / 32;
  if (t % 32 == 0) {
    part_m[warp] = warp_m;
    part_l[warp] = l;
#pragma unroll
    for (int d = 0; d < D; ++d) {
      part_acc[warp][d] = acc[d];
    }
  }
  __syncthreads();
  for (int d = t; d < D; d += NT) {
    float block_m = -INFINITY;
    for (int w = 0; w < NW; ++w) {
      block_m = fmaxf(block_m, part_m[w]);
    }
    float total_l = 0.f;
    float total = 0.f;
    for (int w = 0; w < NW; ++w) {
      const float fw = (part_m[w] == -INFINITY) ? 0.f : expf(part_m[w] - block_m);
      total_l += part_l[w] * fw;
      total += part_acc[w][d] * fw;
    }
    out[static_cast<size_t>(bh) * D + d] = static_cast<T>(total / total_l);
  }
)";


// The kernel source for one set of float constants (one per model in practice).
std::string kernel_source(float rope_scale, float log2_base, float sdpa_scale) {
  char defines[256];
  std::snprintf(
      defines, sizeof(defines),
      "  constexpr int ROPE_SCALE = 0x%08x;\n  constexpr int LOG2_BASE = 0x%08x;\n"
      "  constexpr int SDPA_SCALE = 0x%08x;\n",
      float_bits(rope_scale), float_bits(log2_base), float_bits(sdpa_scale));
  return std::string(defines) + kBody;
}

bool dense_and_aligned(const mx::array& x) {
  return x.status() != mx::array::Status::unscheduled && x.flags().row_contiguous &&
      x.offset() % 16 == 0;  // offset() counts bytes
}

void require(bool condition, const std::string& message) {
  if (!condition) {
    throw std::invalid_argument("[decode_attention] " + message);
  }
}

}  // namespace

extern "C" {

// heads [B, HQ + 2 HK, 1, D] (q heads, then k, then v; any strides); caches [B, HK, S, D] row-contiguous and
// evaluated; offset and start int32 scalars (rope position, cache row); freqs float32 [D / 2] or null (then
// the base). Writes row `start` of both caches and returns the attention output [B, HQ, 1, D].
int etm_decode_attention(
    const etm_array* heads, const etm_array* k_cache, const etm_array* v_cache,
    const etm_array* offset, const etm_array* start, const etm_array* freqs, int q_heads,
    int kv_heads, bool traditional, float rope_scale, float log2_base, float sdpa_scale,
    etm_stream s, etm_array** out) noexcept {
  return guarded([&] {
    const auto& h = deref(heads);
    const auto& kc = deref(k_cache);
    const auto& vc = deref(v_cache);
    const auto& off = deref(offset);
    const auto& row = deref(start);
    require(h.ndim() == 4 && h.shape(2) == 1, "heads must be [B, H, 1, D]");
    require(q_heads > 0 && kv_heads > 0 && q_heads % kv_heads == 0, "query heads must be a multiple of kv heads");
    const int batch = h.shape(0);
    const int dim = h.shape(3);
    require(h.shape(1) == q_heads + 2 * kv_heads, "heads must hold q, k and v heads");
    require(h.dtype() == mx::bfloat16 || h.dtype() == mx::float16 || h.dtype() == mx::float32,
        "heads must be a float type");
    require(dim % 2 == 0 && dim <= 256 && (dim * static_cast<int>(h.itemsize())) % 16 == 0,
        "head dim must be even, at most 256 and a multiple of 16 bytes");
    for (const auto* cache : {&kc, &vc}) {
      require(cache->ndim() == 4 && cache->shape(0) == batch && cache->shape(1) == kv_heads &&
                  cache->shape(3) == dim && cache->dtype() == h.dtype(),
          "caches must be [B, HK, S, D] of the heads' dtype");
      require(dense_and_aligned(*cache), "caches must be evaluated, row-contiguous and 16-byte aligned");
    }
    require(off.dtype() == mx::int32 && off.size() == 1, "offset must be one int32");
    require(row.dtype() == mx::int32 && row.size() == 1, "start must be one int32");
    const bool has_freqs = freqs != nullptr;
    if (has_freqs) {
      const auto& fq = deref(freqs);
      require(fq.dtype() == mx::float32 && fq.size() == static_cast<size_t>(dim / 2),
          "freqs must be float32 [D / 2]");
    }
    const auto& kernel = cached_cuda_kernel(
        "etmlx_decode_attention", {"heads", "k_cache", "v_cache", "offset", "start", "freqs"}, {"out"},
        kernel_source(rope_scale, log2_base, sdpa_scale), /*ensure_row_contiguous=*/false);
    // Without freqs the kernel reads none; the heads stand in (any input of rank > 0 gets its strides passed).
    const mx::array& freqs_input = has_freqs ? deref(freqs) : h;
    auto outputs = kernel(
        {h, kc, vc, off, row, freqs_input}, {mx::Shape{batch, q_heads, 1, dim}}, {h.dtype()},
        {kThreads * batch * q_heads, 1, 1}, {kThreads, 1, 1},
        {{"T", h.dtype()},
         {"D", dim},
         {"HQ", q_heads},
         {"HK", kv_heads},
         {"NT", kThreads},
         {"TRAD", traditional},
         {"HAS_FREQS", has_freqs}},
        std::nullopt, false, to_stream(s));
    emit(out, std::move(outputs.at(0)));
  });
}

// Whether `a` holds data laid out row-major without gaps from a 16-byte aligned start (false while it is still
// unevaluated): what the kernel's vector loads of cache rows need.
int etm_array_dense_aligned_data(const etm_array* a, bool* out) noexcept {
  return guarded([&] { *out = dense_and_aligned(deref(a)); });
}

}  // extern "C"
