//! `mlx::core::fast`: fused normalisation, RoPE, attention and custom Metal kernels.

use std::ffi::{c_char, CString};
use std::ptr::NonNull;

use crate::array::Array;
use crate::device::Stream;
use crate::dtype::Dtype;
use crate::error::{c_string, check, MlxError, Result};
use crate::ops::{collect_outputs, optional_ptr, raw_list};

/// `x * rsqrt(mean(x², -1) + eps) * weight` over the last axis.
pub fn rms_norm(x: &Array, weight: Option<&Array>, eps: f32, s: Stream) -> Result<Array> {
    // SAFETY: valid (or null) handles borrowed for the call.
    Array::produce("rms_norm", |out| unsafe {
        mlx_sys::etm_rms_norm(x.as_ptr(), optional_ptr(weight), eps, s.raw(), out)
    })
}

/// Layer normalisation over the last axis with optional affine `weight` / `bias`.
pub fn layer_norm(
    x: &Array,
    weight: Option<&Array>,
    bias: Option<&Array>,
    eps: f32,
    s: Stream,
) -> Result<Array> {
    // SAFETY: valid (or null) handles borrowed for the call.
    Array::produce("layer_norm", |out| unsafe {
        mlx_sys::etm_layer_norm(
            x.as_ptr(),
            optional_ptr(weight),
            optional_ptr(bias),
            eps,
            s.raw(),
            out,
        )
    })
}

/// Position offset for [`rope`]: one scalar for all rows, or an int array of per-row offsets.
#[derive(Clone, Copy, Debug)]
pub enum RopeOffset<'a> {
    Int(i32),
    Array(&'a Array),
}

/// Rotary embedding of the first `dims` features of the last axis. `traditional` rotates
/// adjacent pairs instead of the two halves. `base` must be `None` exactly when `freqs` is given.
#[allow(clippy::too_many_arguments)]
pub fn rope(
    x: &Array,
    dims: i32,
    traditional: bool,
    base: Option<f32>,
    scale: f32,
    offset: RopeOffset<'_>,
    freqs: Option<&Array>,
    s: Stream,
) -> Result<Array> {
    let (offset_int, offset_array) = match offset {
        RopeOffset::Int(value) => (value, std::ptr::null()),
        RopeOffset::Array(array) => (0, array.as_ptr()),
    };
    // SAFETY: valid (or null) handles borrowed for the call.
    Array::produce("rope", |out| unsafe {
        mlx_sys::etm_rope(
            x.as_ptr(),
            dims,
            traditional,
            base.is_some(),
            base.unwrap_or(0.0),
            scale,
            offset_int,
            offset_array,
            optional_ptr(freqs),
            s.raw(),
            out,
        )
    })
}

/// `softmax(q @ kᵀ * scale + mask) @ v` on `[B, H, L, D]` inputs; `k`/`v` may have fewer heads
/// (grouped-query attention). `mask_mode` is `""` or `"causal"` (lower-right aligned); a bool
/// `mask` means "attend where true", any other dtype is added to the scores.
#[allow(clippy::too_many_arguments)]
pub fn scaled_dot_product_attention(
    q: &Array,
    k: &Array,
    v: &Array,
    scale: f32,
    mask_mode: &str,
    mask: Option<&Array>,
    sinks: Option<&Array>,
    s: Stream,
) -> Result<Array> {
    let mode = c_string("scaled_dot_product_attention", mask_mode)?;
    // SAFETY: valid (or null) handles and a NUL-terminated string borrowed for the call.
    Array::produce("scaled_dot_product_attention", |out| unsafe {
        mlx_sys::etm_sdpa(
            q.as_ptr(),
            k.as_ptr(),
            v.as_ptr(),
            scale,
            mode.as_ptr(),
            optional_ptr(mask),
            optional_ptr(sinks),
            s.raw(),
            out,
        )
    })
}

/// The rotation and attention constants of [`decode_attention`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecodeAttention {
    pub q_heads: i32,
    pub kv_heads: i32,
    /// Rotate adjacent pairs instead of the two halves (as [`rope`]).
    pub traditional: bool,
    /// Positions are multiplied by this (as [`rope`]'s `scale`).
    pub rope_scale: f32,
    /// The rope base, used only without `freqs`.
    pub base: f32,
    /// Scores are multiplied by this (as [`scaled_dot_product_attention`]'s `scale`).
    pub attention_scale: f32,
}

/// The attention block of a one-token decode step as one CUDA kernel: rotates the q heads and the new k heads of
/// `heads` (`[B, HQ + 2 HK, 1, D]`: q, k, v heads) by [`rope`] at position `offset`, **writes** the rotated k and
/// the v into row `start` of `k_cache` / `v_cache` (`[B, HK, S, D]`, evaluated, row-contiguous), and returns
/// causal attention of q over rows `0..=start` (`[B, HQ, 1, D]`). `offset` and `start` are int32 scalars;
/// `freqs` (float32 `[D / 2]`) as in [`rope`], else `base`.
///
/// The caches are updated through the input arrays, which MLX believes unchanged (its custom kernels cannot
/// update an input in place). The caller must own the cache buffers alone, keep using the same cache arrays
/// afterwards, and not read them again in the same graph before this kernel (see
/// shim/ops_decode_attention.cpp). CUDA builds of MLX only.
#[allow(clippy::too_many_arguments)]
pub fn decode_attention(
    heads: &Array,
    k_cache: &Array,
    v_cache: &Array,
    offset: &Array,
    start: &Array,
    freqs: Option<&Array>,
    params: &DecodeAttention,
    s: Stream,
) -> Result<Array> {
    // SAFETY: valid (or null) handles borrowed for the call.
    Array::produce("decode_attention", |out| unsafe {
        mlx_sys::etm_decode_attention(
            heads.as_ptr(),
            k_cache.as_ptr(),
            v_cache.as_ptr(),
            offset.as_ptr(),
            start.as_ptr(),
            optional_ptr(freqs),
            params.q_heads,
            params.kv_heads,
            params.traditional,
            params.rope_scale,
            params.base.log2(),
            params.attention_scale,
            s.raw(),
            out,
        )
    })
}

/// `a + b` and `rms_norm(a + b) * weight` (over the last axis) as one CUDA kernel with two outputs: a residual
/// add and the norm that reads it, one node instead of two. `a` and `b` share a shape and float dtype; `weight`
/// is `[H]` of that dtype. Returns `(sum, normed)`. CUDA builds of MLX only.
pub fn residual_rms_norm(
    a: &Array,
    b: &Array,
    weight: &Array,
    eps: f32,
    s: Stream,
) -> Result<(Array, Array)> {
    let mut outs = vec![std::ptr::null_mut(); 2];
    // SAFETY: valid handles borrowed for the call; `outs` has room for the two handles written.
    let status = unsafe {
        mlx_sys::etm_residual_rms_norm(
            a.as_ptr(),
            b.as_ptr(),
            weight.as_ptr(),
            eps,
            s.raw(),
            outs.as_mut_ptr(),
        )
    };
    check("residual_rms_norm", status)?;
    let mut arrays = crate::ops::collect_outputs("residual_rms_norm", outs)?.into_iter();
    match (arrays.next(), arrays.next()) {
        (Some(sum), Some(normed)) => Ok((sum, normed)),
        _ => Err(MlxError::invalid(
            "residual_rms_norm",
            "expected two outputs",
        )),
    }
}

/// A template argument of a custom kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateArg {
    Int(i32),
    Bool(bool),
    Dtype(Dtype),
}

/// A custom Metal kernel (`fast::metal_kernel`). Only Metal builds of MLX can run it; elsewhere
/// creating or calling it returns an error.
pub struct MetalKernel {
    handle: NonNull<mlx_sys::etm_kernel>,
}

// SAFETY: the kernel object is an immutable std::function owned by this value.
unsafe impl Send for MetalKernel {}

impl Drop for MetalKernel {
    fn drop(&mut self) {
        // SAFETY: owned handle from etm_metal_kernel_new, freed once.
        unsafe { mlx_sys::etm_metal_kernel_free(self.handle.as_ptr()) }
    }
}

/// Arguments of one [`MetalKernel::call`].
#[derive(Debug)]
pub struct MetalKernelCall<'a> {
    pub inputs: &'a [&'a Array],
    pub output_shapes: &'a [Vec<i32>],
    pub output_dtypes: &'a [Dtype],
    pub grid: [i32; 3],
    pub threadgroup: [i32; 3],
    pub template_args: &'a [(&'a str, TemplateArg)],
    pub init_value: Option<f32>,
}

fn c_strings(op: &'static str, values: &[&str]) -> Result<Vec<CString>> {
    values.iter().map(|v| c_string(op, v)).collect()
}

fn pointers(values: &[CString]) -> Vec<*const c_char> {
    values.iter().map(|v| v.as_ptr()).collect()
}

impl MetalKernel {
    pub fn new(
        name: &str,
        input_names: &[&str],
        output_names: &[&str],
        source: &str,
        header: &str,
        ensure_row_contiguous: bool,
        atomic_outputs: bool,
    ) -> Result<MetalKernel> {
        const OP: &str = "metal_kernel";
        let name = c_string(OP, name)?;
        let source = c_string(OP, source)?;
        let header = c_string(OP, header)?;
        let inputs = c_strings(OP, input_names)?;
        let outputs = c_strings(OP, output_names)?;
        let (input_ptrs, output_ptrs) = (pointers(&inputs), pointers(&outputs));
        let mut raw = std::ptr::null_mut();
        // SAFETY: all strings are NUL-terminated and outlive the call; out-pointer is a local.
        check(OP, unsafe {
            mlx_sys::etm_metal_kernel_new(
                name.as_ptr(),
                input_ptrs.as_ptr(),
                input_ptrs.len(),
                output_ptrs.as_ptr(),
                output_ptrs.len(),
                source.as_ptr(),
                header.as_ptr(),
                ensure_row_contiguous,
                atomic_outputs,
                &mut raw,
            )
        })?;
        NonNull::new(raw)
            .map(|handle| MetalKernel { handle })
            .ok_or_else(|| MlxError::invalid(OP, "shim returned a null kernel"))
    }

    /// Runs the kernel; returns one array per output shape.
    pub fn call(&self, args: &MetalKernelCall<'_>, s: Stream) -> Result<Vec<Array>> {
        const OP: &str = "metal_kernel_call";
        if args.output_shapes.len() != args.output_dtypes.len() {
            return Err(MlxError::invalid(
                OP,
                format!(
                    "{} output shapes but {} output dtypes",
                    args.output_shapes.len(),
                    args.output_dtypes.len()
                ),
            ));
        }
        let shapes_flat: Vec<i32> = args.output_shapes.iter().flatten().copied().collect();
        let shape_lengths: Vec<i32> = args
            .output_shapes
            .iter()
            .map(|shape| i32::try_from(shape.len()).unwrap_or(i32::MAX))
            .collect();
        let dtypes: Vec<i32> = args.output_dtypes.iter().map(|d| d.code()).collect();
        let names: Vec<&str> = args.template_args.iter().map(|(name, _)| *name).collect();
        let names = c_strings(OP, &names)?;
        let name_ptrs = pointers(&names);
        let (kinds, values): (Vec<i32>, Vec<i32>) = args
            .template_args
            .iter()
            .map(|(_, arg)| match *arg {
                TemplateArg::Int(v) => (0, v),
                TemplateArg::Bool(v) => (1, i32::from(v)),
                TemplateArg::Dtype(d) => (2, d.code()),
            })
            .unzip();
        let inputs = raw_list(args.inputs);
        let mut outs = vec![std::ptr::null_mut(); args.output_shapes.len()];
        // SAFETY: every pointer/length pair describes a live buffer; `outs` has one slot per output.
        let status = unsafe {
            mlx_sys::etm_metal_kernel_call(
                self.handle.as_ptr(),
                inputs.as_ptr(),
                inputs.len(),
                shapes_flat.as_ptr(),
                shapes_flat.len(),
                shape_lengths.as_ptr(),
                dtypes.as_ptr(),
                dtypes.len(),
                args.grid.as_ptr(),
                args.threadgroup.as_ptr(),
                name_ptrs.as_ptr(),
                kinds.as_ptr(),
                values.as_ptr(),
                name_ptrs.len(),
                args.init_value.is_some(),
                args.init_value.unwrap_or(0.0),
                s.raw(),
                outs.as_mut_ptr(),
            )
        };
        check(OP, status)?;
        collect_outputs(OP, outs)
    }
}
