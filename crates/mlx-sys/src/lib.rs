//! Raw C ABI over Apple's MLX C++ library, through the C++20 shim in `shim/`.
//!
//! Everything here is `unsafe` and unchecked; use the safe `mlx` crate instead. Conventions:
//! - every function returning `c_int` returns 0 on success; on failure [`etm_last_error`] gives
//!   the C++ exception message (thread-local, valid until the next failing call on this thread)
//!   and no out-pointer was written;
//! - arrays are opaque heap handles freed with [`etm_array_free`];
//! - optional array arguments are null pointers when absent;
//! - `dtype` arguments are [`dtype`] codes (MLX's `Dtype::Val` order); `-1` means "default"
//!   where a function says so.
//!
//! Linking: `build.rs` links `libmlx` dynamically and gives this crate's own test/bench binaries
//! a RUNPATH to it. Dependents that build binaries read `DEP_MLX_LIB_DIR` (the lib dir) and
//! `DEP_MLX_INCLUDE` (the headers) from their build script; [`MLX_LIB_DIR`] has the same path.

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void};

/// Directory of the `libmlx` this crate was linked against at build time.
pub const MLX_LIB_DIR: &str = env!("ETMLX_MLX_LIB_DIR");

/// Opaque `mlx::core::array` handle.
#[repr(C)]
pub struct etm_array {
    _private: [u8; 0],
}

/// Opaque compiled custom kernel (`fast::metal_kernel`'s callable).
#[repr(C)]
pub struct etm_kernel {
    _private: [u8; 0],
}

/// A stream crosses the boundary by value; the shim rebuilds `mlx::core::Stream` from it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct etm_stream {
    pub index: c_int,
    /// 0 = cpu, 1 = gpu.
    pub device_type: c_int,
    pub device_index: c_int,
}

pub const DEVICE_CPU: c_int = 0;
pub const DEVICE_GPU: c_int = 1;

/// Dtype codes (`mlx::core::Dtype::Val` order).
pub mod dtype {
    use std::ffi::c_int;
    pub const BOOL: c_int = 0;
    pub const UINT8: c_int = 1;
    pub const UINT16: c_int = 2;
    pub const UINT32: c_int = 3;
    pub const UINT64: c_int = 4;
    pub const INT8: c_int = 5;
    pub const INT16: c_int = 6;
    pub const INT32: c_int = 7;
    pub const INT64: c_int = 8;
    pub const FLOAT16: c_int = 9;
    pub const FLOAT32: c_int = 10;
    pub const FLOAT64: c_int = 11;
    pub const BFLOAT16: c_int = 12;
    pub const COMPLEX64: c_int = 13;
    /// "Use MLX's default" where a function accepts it.
    pub const DEFAULT: c_int = -1;
}

/// Op codes for [`etm_unary`] (mirrors `etm_unary_op` in shim/shim.h).
pub mod unary {
    use std::ffi::c_int;
    pub const ABS: c_int = 0;
    pub const NEGATIVE: c_int = 1;
    pub const SIGN: c_int = 2;
    pub const FLOOR: c_int = 3;
    pub const CEIL: c_int = 4;
    pub const TRUNC: c_int = 5;
    pub const SQUARE: c_int = 6;
    pub const SQRT: c_int = 7;
    pub const RSQRT: c_int = 8;
    pub const RECIPROCAL: c_int = 9;
    pub const EXP: c_int = 10;
    pub const EXPM1: c_int = 11;
    pub const LOG: c_int = 12;
    pub const LOG2: c_int = 13;
    pub const LOG10: c_int = 14;
    pub const LOG1P: c_int = 15;
    pub const SIN: c_int = 16;
    pub const COS: c_int = 17;
    pub const TAN: c_int = 18;
    pub const ARCSIN: c_int = 19;
    pub const ARCCOS: c_int = 20;
    pub const ARCTAN: c_int = 21;
    pub const SINH: c_int = 22;
    pub const COSH: c_int = 23;
    pub const TANH: c_int = 24;
    pub const ARCSINH: c_int = 25;
    pub const ARCCOSH: c_int = 26;
    pub const ARCTANH: c_int = 27;
    pub const ERF: c_int = 28;
    pub const SIGMOID: c_int = 29;
    pub const LOGICAL_NOT: c_int = 30;
    pub const BITWISE_INVERT: c_int = 31;
}

/// Op codes for [`etm_binary`] (mirrors `etm_binary_op` in shim/shim.h).
pub mod binary {
    use std::ffi::c_int;
    pub const ADD: c_int = 0;
    pub const SUBTRACT: c_int = 1;
    pub const MULTIPLY: c_int = 2;
    pub const DIVIDE: c_int = 3;
    pub const FLOOR_DIVIDE: c_int = 4;
    pub const REMAINDER: c_int = 5;
    pub const POWER: c_int = 6;
    pub const MAXIMUM: c_int = 7;
    pub const MINIMUM: c_int = 8;
    pub const ARCTAN2: c_int = 9;
    pub const LOGADDEXP: c_int = 10;
    pub const EQUAL: c_int = 11;
    pub const NOT_EQUAL: c_int = 12;
    pub const LESS: c_int = 13;
    pub const LESS_EQUAL: c_int = 14;
    pub const GREATER: c_int = 15;
    pub const GREATER_EQUAL: c_int = 16;
    pub const LOGICAL_AND: c_int = 17;
    pub const LOGICAL_OR: c_int = 18;
    pub const BITWISE_AND: c_int = 19;
    pub const BITWISE_OR: c_int = 20;
    pub const BITWISE_XOR: c_int = 21;
}

/// Op codes for [`etm_reduce`] (mirrors `etm_reduce_op` in shim/shim.h).
pub mod reduce {
    use std::ffi::c_int;
    pub const SUM: c_int = 0;
    pub const MEAN: c_int = 1;
    pub const PROD: c_int = 2;
    pub const MAX: c_int = 3;
    pub const MIN: c_int = 4;
    pub const ANY: c_int = 5;
    pub const ALL: c_int = 6;
    pub const LOGSUMEXP: c_int = 7;
    pub const VAR: c_int = 8;
    pub const STD: c_int = 9;
    pub const MEDIAN: c_int = 10;
}

unsafe extern "C" {
    // ---- errors, version, library ----
    pub fn etm_last_error() -> *const c_char;
    pub fn etm_version(out: *mut *const c_char) -> c_int;
    pub fn etm_header_version(major: *mut c_int, minor: *mut c_int, patch: *mut c_int) -> c_int;
    pub fn etm_library_path(out: *mut *const c_char) -> c_int;

    // ---- arrays ----
    pub fn etm_array_free(a: *mut etm_array);
    pub fn etm_array_clone(a: *const etm_array, out: *mut *mut etm_array) -> c_int;
    pub fn etm_array_from_bytes(
        data: *const u8,
        nbytes: usize,
        shape: *const i32,
        ndim: usize,
        dtype: c_int,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_array_scalar_f64(value: f64, dtype: c_int, out: *mut *mut etm_array) -> c_int;
    pub fn etm_array_scalar_i64(value: i64, dtype: c_int, out: *mut *mut etm_array) -> c_int;
    pub fn etm_array_ndim(a: *const etm_array, out: *mut usize) -> c_int;
    pub fn etm_array_shape(a: *const etm_array, dims: *mut i32, cap: usize) -> c_int;
    pub fn etm_array_dtype(a: *const etm_array, out: *mut c_int) -> c_int;
    pub fn etm_array_size(a: *const etm_array, out: *mut usize) -> c_int;
    pub fn etm_array_id(a: *const etm_array, out: *mut usize) -> c_int;
    /// Whether the array holds data laid out row-major without gaps from a 16-byte aligned start (false while
    /// unevaluated).
    pub fn etm_array_dense_aligned_data(a: *const etm_array, out: *mut bool) -> c_int;
    pub fn etm_eval(arrays: *const *const etm_array, n: usize) -> c_int;
    pub fn etm_async_eval(arrays: *const *const etm_array, n: usize) -> c_int;
    pub fn etm_graph_primitives(
        arrays: *const *const etm_array,
        n: usize,
        visit: extern "C" fn(ctx: *mut c_void, name: *const c_char, count: usize),
        ctx: *mut c_void,
    ) -> c_int;
    pub fn etm_array_wait(a: *mut etm_array) -> c_int;
    pub fn etm_array_read(a: *mut etm_array, dst: *mut u8, dst_len: usize) -> c_int;
    pub fn etm_array_item_i64(a: *mut etm_array, out: *mut i64) -> c_int;
    pub fn etm_array_item_f64(a: *mut etm_array, out: *mut f64) -> c_int;

    // ---- devices, streams ----
    pub fn etm_is_available(device_type: c_int, out: *mut bool) -> c_int;
    pub fn etm_default_device(device_type: *mut c_int, device_index: *mut c_int) -> c_int;
    pub fn etm_default_stream(device_type: c_int, out: *mut etm_stream) -> c_int;
    pub fn etm_new_stream(device_type: c_int, out: *mut etm_stream) -> c_int;
    pub fn etm_new_thread_unsafe_stream(device_type: c_int, out: *mut etm_stream) -> c_int;
    pub fn etm_synchronize(s: etm_stream) -> c_int;

    // ---- memory ----
    pub fn etm_active_memory(out: *mut usize) -> c_int;
    pub fn etm_peak_memory(out: *mut usize) -> c_int;
    pub fn etm_reset_peak_memory() -> c_int;
    pub fn etm_cache_memory(out: *mut usize) -> c_int;
    pub fn etm_clear_cache() -> c_int;

    // ---- random ----
    pub fn etm_random_key(seed: u64, out: *mut *mut etm_array) -> c_int;
    pub fn etm_random_bits(
        shape: *const i32,
        ndim: usize,
        width: c_int,
        key: *const etm_array,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;

    // ---- element-wise ----
    pub fn etm_unary(
        op: c_int,
        x: *const etm_array,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    /// `x * sigmoid(x)` as one compiled (fused) kernel.
    pub fn etm_compiled_silu(x: *const etm_array, s: etm_stream, out: *mut *mut etm_array)
        -> c_int;
    /// Rope + KV-cache write + attention of a one-token decode step as one CUDA kernel (writes row `start` of
    /// both caches through the inputs; see shim/ops_decode_attention.cpp). `freqs` may be null.
    pub fn etm_decode_attention(
        heads: *const etm_array,
        k_cache: *const etm_array,
        v_cache: *const etm_array,
        offset: *const etm_array,
        start: *const etm_array,
        freqs: *const etm_array,
        q_heads: c_int,
        kv_heads: c_int,
        traditional: bool,
        rope_scale: f32,
        log2_base: f32,
        sdpa_scale: f32,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    /// `a + b` and `rms_norm(a + b) * weight` as one CUDA kernel; `outs` receives two handles.
    pub fn etm_residual_rms_norm(
        a: *const etm_array,
        b: *const etm_array,
        weight: *const etm_array,
        eps: f32,
        s: etm_stream,
        outs: *mut *mut etm_array,
    ) -> c_int;
    /// `silu(gate) * up` as one compiled (fused) kernel.
    pub fn etm_compiled_swiglu(
        gate: *const etm_array,
        up: *const etm_array,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_binary(
        op: c_int,
        a: *const etm_array,
        b: *const etm_array,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_round(
        x: *const etm_array,
        decimals: c_int,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_where(
        cond: *const etm_array,
        x: *const etm_array,
        y: *const etm_array,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_clip(
        x: *const etm_array,
        a_min: *const etm_array,
        a_max: *const etm_array,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_astype(
        x: *const etm_array,
        dtype: c_int,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;

    // ---- reductions, scans, sorting ----
    pub fn etm_reduce(
        op: c_int,
        x: *const etm_array,
        axes: *const i32,
        n_axes: usize,
        all_axes: bool,
        keepdims: bool,
        ddof: c_int,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_arg_reduce(
        is_max: bool,
        x: *const etm_array,
        axis: c_int,
        keepdims: bool,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_cumsum(
        x: *const etm_array,
        axis: c_int,
        reverse: bool,
        inclusive: bool,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_softmax(
        x: *const etm_array,
        axes: *const i32,
        n_axes: usize,
        precise: bool,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_sort(
        is_arg: bool,
        x: *const etm_array,
        axis: c_int,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_partition(
        is_arg: bool,
        x: *const etm_array,
        kth: c_int,
        axis: c_int,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;

    // ---- shape, indexing, creation ----
    pub fn etm_reshape(
        x: *const etm_array,
        shape: *const i32,
        ndim: usize,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_transpose(
        x: *const etm_array,
        perm: *const i32,
        n: usize,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_expand_dims(
        x: *const etm_array,
        axis: c_int,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_squeeze(
        x: *const etm_array,
        axes: *const i32,
        n: usize,
        all_axes: bool,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_broadcast_to(
        x: *const etm_array,
        shape: *const i32,
        ndim: usize,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_concatenate(
        xs: *const *const etm_array,
        n: usize,
        axis: c_int,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_stack(
        xs: *const *const etm_array,
        n: usize,
        axis: c_int,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_split_indices(
        x: *const etm_array,
        indices: *const i32,
        n_indices: usize,
        axis: c_int,
        s: etm_stream,
        outs: *mut *mut etm_array,
        n_outs: usize,
    ) -> c_int;
    pub fn etm_split_equal(
        x: *const etm_array,
        parts: c_int,
        axis: c_int,
        s: etm_stream,
        outs: *mut *mut etm_array,
        n_outs: usize,
    ) -> c_int;
    pub fn etm_tile(
        x: *const etm_array,
        reps: *const i32,
        n: usize,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_repeat(
        x: *const etm_array,
        repeats: c_int,
        axis: c_int,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_slice(
        x: *const etm_array,
        start: *const i32,
        stop: *const i32,
        strides: *const i32,
        ndim: usize,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_slice_update(
        src: *const etm_array,
        update: *const etm_array,
        start: *const i32,
        stop: *const i32,
        strides: *const i32,
        ndim: usize,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_as_strided(
        x: *const etm_array,
        shape: *const i32,
        ndim: usize,
        strides: *const i64,
        n_strides: usize,
        offset: usize,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_contiguous(
        x: *const etm_array,
        allow_col_major: bool,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_pad(
        x: *const etm_array,
        axes: *const i32,
        low: *const i32,
        high: *const i32,
        n: usize,
        value: *const etm_array,
        mode: *const c_char,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_roll(
        x: *const etm_array,
        shifts: *const i32,
        axes: *const i32,
        n: usize,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_flip(
        x: *const etm_array,
        axes: *const i32,
        n: usize,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_take(
        x: *const etm_array,
        indices: *const etm_array,
        axis: c_int,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_take_index(
        x: *const etm_array,
        index: c_int,
        axis: c_int,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_take_along_axis(
        x: *const etm_array,
        indices: *const etm_array,
        axis: c_int,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_gather(
        x: *const etm_array,
        indices: *const *const etm_array,
        n_indices: usize,
        axes: *const i32,
        n_axes: usize,
        slice_sizes: *const i32,
        n_slice: usize,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_scatter_add_axis(
        x: *const etm_array,
        indices: *const etm_array,
        updates: *const etm_array,
        axis: c_int,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_triangle(
        upper: bool,
        x: *const etm_array,
        k: c_int,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_tri(
        n: c_int,
        m: c_int,
        k: c_int,
        dtype: c_int,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_full(
        shape: *const i32,
        ndim: usize,
        value: *const etm_array,
        dtype: c_int,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_zeros(
        shape: *const i32,
        ndim: usize,
        dtype: c_int,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_arange(
        start: f64,
        stop: f64,
        step: f64,
        dtype: c_int,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_arange_int(
        start: c_int,
        stop: c_int,
        step: c_int,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;

    // ---- linear algebra, quantization ----
    pub fn etm_matmul(
        a: *const etm_array,
        b: *const etm_array,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_addmm(
        c: *const etm_array,
        a: *const etm_array,
        b: *const etm_array,
        alpha: f32,
        beta: f32,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_quantized_matmul(
        x: *const etm_array,
        w: *const etm_array,
        scales: *const etm_array,
        biases: *const etm_array,
        transpose: bool,
        group_size: c_int,
        bits: c_int,
        mode: *const c_char,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_gather_qmm(
        x: *const etm_array,
        w: *const etm_array,
        scales: *const etm_array,
        biases: *const etm_array,
        lhs_indices: *const etm_array,
        rhs_indices: *const etm_array,
        transpose: bool,
        group_size: c_int,
        bits: c_int,
        mode: *const c_char,
        sorted_indices: bool,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_gather_mm(
        a: *const etm_array,
        b: *const etm_array,
        lhs_indices: *const etm_array,
        rhs_indices: *const etm_array,
        sorted_indices: bool,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_dequantize(
        w: *const etm_array,
        scales: *const etm_array,
        biases: *const etm_array,
        group_size: c_int,
        bits: c_int,
        mode: *const c_char,
        global_scale: *const etm_array,
        dtype: c_int,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_quantize(
        w: *const etm_array,
        group_size: c_int,
        bits: c_int,
        mode: *const c_char,
        s: etm_stream,
        outs: *mut *mut etm_array,
        cap: usize,
        n_out: *mut usize,
    ) -> c_int;

    // ---- convolution ----
    pub fn etm_conv(
        spatial_dims: c_int,
        transposed: bool,
        x: *const etm_array,
        w: *const etm_array,
        stride: *const i32,
        padding: *const i32,
        dilation: *const i32,
        output_padding: *const i32,
        groups: c_int,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;

    // ---- fast ----
    pub fn etm_rms_norm(
        x: *const etm_array,
        weight: *const etm_array,
        eps: f32,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_layer_norm(
        x: *const etm_array,
        weight: *const etm_array,
        bias: *const etm_array,
        eps: f32,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_rope(
        x: *const etm_array,
        dims: c_int,
        traditional: bool,
        has_base: bool,
        base: f32,
        scale: f32,
        offset_int: c_int,
        offset_array: *const etm_array,
        freqs: *const etm_array,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_sdpa(
        q: *const etm_array,
        k: *const etm_array,
        v: *const etm_array,
        scale: f32,
        mask_mode: *const c_char,
        mask: *const etm_array,
        sinks: *const etm_array,
        s: etm_stream,
        out: *mut *mut etm_array,
    ) -> c_int;
    pub fn etm_metal_kernel_new(
        name: *const c_char,
        input_names: *const *const c_char,
        n_inputs: usize,
        output_names: *const *const c_char,
        n_outputs: usize,
        source: *const c_char,
        header: *const c_char,
        ensure_row_contiguous: bool,
        atomic_outputs: bool,
        out: *mut *mut etm_kernel,
    ) -> c_int;
    pub fn etm_metal_kernel_free(kernel: *mut etm_kernel);
    pub fn etm_metal_kernel_call(
        kernel: *const etm_kernel,
        inputs: *const *const etm_array,
        n_inputs: usize,
        shapes_flat: *const i32,
        n_shapes_flat: usize,
        shape_lengths: *const i32,
        dtypes: *const c_int,
        n_outputs: usize,
        grid: *const i32,
        threadgroup: *const i32,
        template_names: *const *const c_char,
        template_kinds: *const c_int,
        template_values: *const c_int,
        n_template: usize,
        has_init_value: bool,
        init_value: f32,
        s: etm_stream,
        outs: *mut *mut etm_array,
    ) -> c_int;
}
