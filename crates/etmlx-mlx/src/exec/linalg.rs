//! Matrix products: addmm/matmul, quantized matmul, gathered (MoE) matmuls, dequantize.
//!
//! Shapes, group sizes, bit widths and modes are checked by MLX itself (its exceptions come back
//! as `ExecError::Mlx` naming the op), so these functions only resolve operands and forward them.

use mlx::ops::{self, Quantization};
use mlx::{DeviceType, Dtype};

use super::Ctx;
use crate::error::ExecError;
use crate::ir::{IntOrVid, Tid};

/// `beta·bias + alpha·(mat1 @ mat2)`; without a bias the reference ignores `alpha` and `beta` and
/// emits a plain matmul (the builder only sets them together with a bias).
pub fn addmm(
    cx: &mut Ctx<'_>,
    mat1: Tid,
    mat2: Tid,
    out: Tid,
    bias: Option<Tid>,
    alpha: f32,
    beta: f32,
) -> Result<(), ExecError> {
    let s = cx.s();
    let (a, b) = (cx.get(mat1)?, cx.get(mat2)?);
    let last = cx.last_position_product(a, out)?;
    let a = last.as_ref().unwrap_or(a);
    let r = match cx.get_opt(bias)? {
        Some(c) => ops::addmm(c, a, b, alpha, beta, s)?,
        None => ops::matmul(a, b, s)?,
    };
    cx.set(out, r)
}

/// `x @ dequantize(w).T` (`transpose`) or `x @ dequantize(w)`, with `w` packed in MLX's layout.
#[allow(clippy::too_many_arguments)]
pub fn quantized_matmul(
    cx: &mut Ctx<'_>,
    x: Tid,
    w: Tid,
    scales: Tid,
    out: Tid,
    biases: Option<Tid>,
    group_size: i32,
    bits: i32,
    mode: &str,
    transpose: bool,
) -> Result<(), ExecError> {
    let quant = Quantization {
        group_size,
        bits,
        mode,
    };
    let (xa, wa, sa, ba, s) = (
        cx.get(x)?,
        cx.get(w)?,
        cx.get(scales)?,
        cx.get_opt(biases)?,
        cx.s(),
    );
    let last = cx.last_position_product(xa, out)?;
    let xa = last.as_ref().unwrap_or(xa);
    // MLX 0.32.4's CUDA quantized matmul gives wrong results when each weight row is a single
    // quantization group (official suite on an H100: int4 with in_features == group_size, bf16).
    // Such layers are tiny, so they take the always-correct dequantize + matmul path there.
    let one_group_per_row = transpose && sa.shape().last() == Some(&1);
    let r = if cx.on_cuda() && one_group_per_row {
        let dense = ops::dequantize(wa, sa, ba, &quant, None, Some(xa.dtype()), s)?;
        let rank = dense.ndim() as i32;
        let mut perm: Vec<i32> = (0..rank).collect();
        perm.swap((rank - 1) as usize, (rank - 2) as usize);
        ops::matmul(xa, &ops::transpose(&dense, &perm, s)?, s)?
    } else {
        ops::quantized_matmul(xa, wa, sa, ba, transpose, &quant, s)?
    };
    cx.set(out, r)
}

/// Unpacks quantized weights (quantized embeddings: rows are taken first, then dequantized).
/// Without `dtype`, MLX picks the scales' dtype.
#[allow(clippy::too_many_arguments)]
pub fn dequantize(
    cx: &mut Ctx<'_>,
    w: Tid,
    scales: Tid,
    out: Tid,
    biases: Option<Tid>,
    group_size: i32,
    bits: i32,
    mode: &str,
    global_scale: Option<Tid>,
    dtype: Option<i8>,
) -> Result<(), ExecError> {
    let dtype = dtype.map(|d| cx.dtype(d)).transpose()?;
    let quant = Quantization {
        group_size,
        bits,
        mode,
    };
    let r = ops::dequantize(
        cx.get(w)?,
        cx.get(scales)?,
        cx.get_opt(biases)?,
        &quant,
        cx.get_opt(global_scale)?,
        dtype,
        cx.s(),
    )?;
    cx.set(out, r)
}

/// The `sorted` promise of the gathered matmuls: a run-time flag (a Vid from the MoE routing,
/// non-zero = sorted) overrides the static bool when present.
fn sorted_flag(
    cx: &Ctx<'_>,
    sorted_indices: bool,
    flag: Option<IntOrVid>,
) -> Result<bool, ExecError> {
    Ok(match flag {
        Some(v) => cx.int(v)? != 0,
        None => sorted_indices,
    })
}

/// Matmul with index-selected batches of `a` and `b` (mixture-of-experts).
#[allow(clippy::too_many_arguments)]
pub fn gather_mm(
    cx: &mut Ctx<'_>,
    a: Tid,
    b: Tid,
    out: Tid,
    lhs_indices: Option<Tid>,
    rhs_indices: Option<Tid>,
    sorted_indices: bool,
    sorted_indices_flag: Option<IntOrVid>,
) -> Result<(), ExecError> {
    // `sorted` only promises that the indices are grouped (a speed hint). MLX 0.32.4's CUDA
    // GatherMM gives wrong rows with it (official suite: gather_mm_*_sorted on an H100), so CUDA
    // always takes the general path; the result is the same by definition.
    let sorted = sorted_flag(cx, sorted_indices, sorted_indices_flag)? && !cx.on_cuda();
    let s = cx.s();
    let (lhs, rhs) = (cx.get(a)?, cx.get(b)?);
    let (lhs_indices, rhs_indices) = (cx.get_opt(lhs_indices)?, cx.get_opt(rhs_indices)?);
    // MLX's CPU GatherMM kernel only takes float32. For same-dtype half-precision operands the
    // product is computed in float32 (exact upcast, float32 accumulation as the GPU kernels do)
    // and rounded back to the dtype MLX would have produced.
    let dtype = lhs.dtype();
    let r = if s.device().device_type == DeviceType::Cpu
        && dtype == rhs.dtype()
        && matches!(dtype, Dtype::Float16 | Dtype::Bfloat16)
    {
        let wide = |x: &mlx::Array| ops::astype(x, Dtype::Float32, s);
        let product = ops::gather_mm(
            &wide(lhs)?,
            &wide(rhs)?,
            lhs_indices,
            rhs_indices,
            sorted,
            s,
        )?;
        ops::astype(&product, dtype, s)?
    } else {
        ops::gather_mm(lhs, rhs, lhs_indices, rhs_indices, sorted, s)?
    };
    cx.set(out, r)
}

/// Operands of `GatherQmm` (too many for a plain argument list).
pub struct GatherQmmArgs<'a> {
    pub x: Tid,
    pub w: Tid,
    pub scales: Tid,
    pub out: Tid,
    pub mode: &'a str,
    pub biases: Option<Tid>,
    pub lhs_indices: Option<Tid>,
    pub rhs_indices: Option<Tid>,
    pub transpose: bool,
    pub group_size: i32,
    pub bits: i32,
    pub sorted_indices: bool,
    pub sorted_indices_flag: Option<IntOrVid>,
}

/// Quantized matmul with per-row expert selection: `w` is `[E, out, in_packed]` and
/// `rhs_indices` picks the expert of each row.
pub fn gather_qmm(cx: &mut Ctx<'_>, args: GatherQmmArgs<'_>) -> Result<(), ExecError> {
    let sorted = sorted_flag(cx, args.sorted_indices, args.sorted_indices_flag)?;
    let quant = Quantization {
        group_size: args.group_size,
        bits: args.bits,
        mode: args.mode,
    };
    let r = ops::gather_qmm(
        cx.get(args.x)?,
        cx.get(args.w)?,
        cx.get(args.scales)?,
        cx.get_opt(args.biases)?,
        cx.get_opt(args.lhs_indices)?,
        cx.get_opt(args.rhs_indices)?,
        args.transpose,
        &quant,
        sorted,
        cx.s(),
    )?;
    cx.set(args.out, r)
}
