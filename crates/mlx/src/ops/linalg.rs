use crate::array::Array;
use crate::device::Stream;
use crate::dtype::{optional_code, Dtype};
use crate::error::{c_string, check, Result};
use crate::ops::{collect_outputs, optional_ptr};

/// How weights are quantized: `mode` is MLX's name (`"affine"`, `"mxfp4"`, `"nvfp4"`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantization<'a> {
    pub group_size: i32,
    pub bits: i32,
    pub mode: &'a str,
}

/// Output of [`quantize`]: packed uint32 weights, per-group scales and (affine) biases.
#[derive(Debug)]
pub struct Quantized {
    pub weights: Array,
    pub scales: Array,
    pub biases: Option<Array>,
}

/// Matrix product with batch broadcasting over leading axes.
pub fn matmul(a: &Array, b: &Array, s: Stream) -> Result<Array> {
    // SAFETY: valid handles borrowed for the call.
    Array::produce("matmul", |out| unsafe {
        mlx_sys::etm_matmul(a.as_ptr(), b.as_ptr(), s.raw(), out)
    })
}

/// `beta * c + alpha * (a @ b)`.
pub fn addmm(c: &Array, a: &Array, b: &Array, alpha: f32, beta: f32, s: Stream) -> Result<Array> {
    // SAFETY: valid handles borrowed for the call.
    Array::produce("addmm", |out| unsafe {
        mlx_sys::etm_addmm(
            c.as_ptr(),
            a.as_ptr(),
            b.as_ptr(),
            alpha,
            beta,
            s.raw(),
            out,
        )
    })
}

/// `x @ dequantize(w).T` when `transpose` (the linear-layer layout), else `x @ dequantize(w)`.
pub fn quantized_matmul(
    x: &Array,
    w: &Array,
    scales: &Array,
    biases: Option<&Array>,
    transpose: bool,
    quant: &Quantization<'_>,
    s: Stream,
) -> Result<Array> {
    let mode = c_string("quantized_matmul", quant.mode)?;
    // SAFETY: valid (or null) handles and a NUL-terminated string borrowed for the call.
    Array::produce("quantized_matmul", |out| unsafe {
        mlx_sys::etm_quantized_matmul(
            x.as_ptr(),
            w.as_ptr(),
            scales.as_ptr(),
            optional_ptr(biases),
            transpose,
            quant.group_size,
            quant.bits,
            mode.as_ptr(),
            s.raw(),
            out,
        )
    })
}

/// Quantized matmul with per-row expert selection (`rhs_indices` pick `w[e]`, `lhs_indices`
/// pick rows of `x`). `sorted_indices` promises ascending `rhs_indices` (faster kernels).
#[allow(clippy::too_many_arguments)]
pub fn gather_qmm(
    x: &Array,
    w: &Array,
    scales: &Array,
    biases: Option<&Array>,
    lhs_indices: Option<&Array>,
    rhs_indices: Option<&Array>,
    transpose: bool,
    quant: &Quantization<'_>,
    sorted_indices: bool,
    s: Stream,
) -> Result<Array> {
    let mode = c_string("gather_qmm", quant.mode)?;
    // SAFETY: valid (or null) handles and a NUL-terminated string borrowed for the call.
    Array::produce("gather_qmm", |out| unsafe {
        mlx_sys::etm_gather_qmm(
            x.as_ptr(),
            w.as_ptr(),
            scales.as_ptr(),
            optional_ptr(biases),
            optional_ptr(lhs_indices),
            optional_ptr(rhs_indices),
            transpose,
            quant.group_size,
            quant.bits,
            mode.as_ptr(),
            sorted_indices,
            s.raw(),
            out,
        )
    })
}

/// Matmul with index-selected batches of `a` (`lhs_indices`) and `b` (`rhs_indices`).
pub fn gather_mm(
    a: &Array,
    b: &Array,
    lhs_indices: Option<&Array>,
    rhs_indices: Option<&Array>,
    sorted_indices: bool,
    s: Stream,
) -> Result<Array> {
    // SAFETY: valid (or null) handles borrowed for the call.
    Array::produce("gather_mm", |out| unsafe {
        mlx_sys::etm_gather_mm(
            a.as_ptr(),
            b.as_ptr(),
            optional_ptr(lhs_indices),
            optional_ptr(rhs_indices),
            sorted_indices,
            s.raw(),
            out,
        )
    })
}

/// Unpacks quantized weights; `dtype` `None` keeps MLX's default (the scales' dtype).
pub fn dequantize(
    w: &Array,
    scales: &Array,
    biases: Option<&Array>,
    quant: &Quantization<'_>,
    global_scale: Option<&Array>,
    dtype: Option<Dtype>,
    s: Stream,
) -> Result<Array> {
    let mode = c_string("dequantize", quant.mode)?;
    // SAFETY: valid (or null) handles and a NUL-terminated string borrowed for the call.
    Array::produce("dequantize", |out| unsafe {
        mlx_sys::etm_dequantize(
            w.as_ptr(),
            scales.as_ptr(),
            optional_ptr(biases),
            quant.group_size,
            quant.bits,
            mode.as_ptr(),
            optional_ptr(global_scale),
            optional_code(dtype),
            s.raw(),
            out,
        )
    })
}

/// Quantizes `w` along its last axis (mainly for tests and tooling).
pub fn quantize(w: &Array, quant: &Quantization<'_>, s: Stream) -> Result<Quantized> {
    const OP: &str = "quantize";
    let mode = c_string(OP, quant.mode)?;
    let mut outs = [std::ptr::null_mut(); 3];
    let mut count = 0usize;
    // SAFETY: valid handle; `outs` holds 3 slots and `count` reports how many were written.
    let status = unsafe {
        mlx_sys::etm_quantize(
            w.as_ptr(),
            quant.group_size,
            quant.bits,
            mode.as_ptr(),
            s.raw(),
            outs.as_mut_ptr(),
            outs.len(),
            &mut count,
        )
    };
    check(OP, status)?;
    let mut parts = collect_outputs(OP, outs.get(..count).unwrap_or_default().to_vec())?;
    let biases = (parts.len() == 3).then(|| parts.pop()).flatten();
    let scales = parts.pop();
    let weights = parts.pop();
    match (weights, scales) {
        (Some(weights), Some(scales)) => Ok(Quantized {
            weights,
            scales,
            biases,
        }),
        _ => Err(crate::MlxError::invalid(
            OP,
            format!("MLX returned {count} outputs, expected 2 or 3"),
        )),
    }
}
