//! Elementwise ops: unary and binary maps, compositions the reference builds from primitives
//! (GELU, SiLU, integer floor division), select, clip and dtype casts.

use mlx::ops::{self, BinaryOp, UnaryOp};
use mlx::{Array, Dtype};

use super::Ctx;
use crate::error::ExecError;
use crate::ir::Tid;

pub fn unary(cx: &mut Ctx<'_>, op: UnaryOp, x: Tid, out: Tid) -> Result<(), ExecError> {
    let r = ops::unary(op, cx.get(x)?, cx.s())?;
    cx.set(out, r)
}

pub fn binary(cx: &mut Ctx<'_>, op: BinaryOp, a: Tid, b: Tid, out: Tid) -> Result<(), ExecError> {
    let r = ops::binary(op, cx.get(a)?, cx.get(b)?, cx.s())?;
    cx.set(out, r)
}

pub fn round(cx: &mut Ctx<'_>, x: Tid, out: Tid, decimals: i32) -> Result<(), ExecError> {
    let r = ops::round(cx.get(x)?, decimals, cx.s())?;
    cx.set(out, r)
}

/// `x * sigmoid(x)`, as the reference composes it. With compiled SwiGLU on (the GPU default) it is one
/// fused kernel, and the slot remembers `x` so that a multiply of it ([`multiply`]) fuses too.
pub fn silu(cx: &mut Ctx<'_>, x: Tid, out: Tid) -> Result<(), ExecError> {
    let s = cx.s();
    let a = cx.get(x)?;
    if cx.compiles_swiglu() {
        let (r, input) = (ops::compiled_silu(a, s)?, a.clone());
        cx.set(out, r)?;
        cx.set_silu_input(out, input);
        return Ok(());
    }
    let r = ops::binary(
        BinaryOp::Multiply,
        a,
        &ops::unary(UnaryOp::Sigmoid, a, s)?,
        s,
    )?;
    cx.set(out, r)
}

/// `a * b`. When one side is a compiled SiLU's output of the other's shape and dtype (a gated MLP,
/// `silu(gate) * up`), one compiled kernel computes it from `gate` directly: the SiLU node then feeds
/// nothing and MLX never runs it. Floating-point products commute, so either order gives the same bits.
pub fn multiply(cx: &mut Ctx<'_>, a: Tid, b: Tid, out: Tid) -> Result<(), ExecError> {
    for (silu, other) in [(a, b), (b, a)] {
        let Some(gate) = cx.silu_input(silu) else {
            continue;
        };
        let up = cx.get(other)?;
        if gate.shape() == up.shape() && gate.dtype() == up.dtype() {
            let r = ops::compiled_swiglu(gate, up, cx.s())?;
            return cx.set(out, r);
        }
    }
    binary(cx, BinaryOp::Multiply, a, b, out)
}

/// GELU: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` when `approximate == "tanh"`, else the exact
/// `0.5·x·(1 + erf(x/√2))`. Constants are made in x's dtype so bf16/f16 graphs stay in that dtype.
pub fn gelu(cx: &mut Ctx<'_>, x: Tid, out: Tid, approximate: &str) -> Result<(), ExecError> {
    use BinaryOp::{Add, Multiply};
    let s = cx.s();
    let a = cx.get(x)?;
    let dt = a.dtype();
    let c = |v: f64| Array::scalar_f64_as(v, dt);
    let inner = if approximate == "tanh" {
        let cube = ops::binary(Multiply, &ops::binary(Multiply, a, a, s)?, a, s)?;
        let poly = ops::binary(Add, a, &ops::binary(Multiply, &cube, &c(0.044715)?, s)?, s)?;
        let scaled = ops::binary(Multiply, &poly, &c((2.0 / std::f64::consts::PI).sqrt())?, s)?;
        ops::unary(UnaryOp::Tanh, &scaled, s)?
    } else {
        let scaled = ops::binary(Multiply, a, &c(std::f64::consts::FRAC_1_SQRT_2)?, s)?;
        ops::unary(UnaryOp::Erf, &scaled, s)?
    };
    let one_plus = ops::binary(Add, &inner, &c(1.0)?, s)?;
    let half_x = ops::binary(Multiply, a, &c(0.5)?, s)?;
    let r = ops::binary(Multiply, &half_x, &one_plus, s)?;
    cx.set(out, r)
}

/// Python floor division. For integers MLX may truncate toward zero, so the quotient is fixed
/// up from the remainder, independent of which rounding MLX used: with `r = a - q·b`, Python's
/// result has `r == 0` or `sign(r) == sign(b)`; otherwise `q - 1` is the floor.
pub fn floor_divide(cx: &mut Ctx<'_>, a: Tid, b: Tid, out: Tid) -> Result<(), ExecError> {
    use BinaryOp::*;
    let s = cx.s();
    let (x, y) = (cx.get(a)?, cx.get(b)?);
    let q = ops::binary(FloorDivide, x, y, s)?;
    let r = if q.dtype().is_floating() {
        q
    } else {
        let zero = Array::scalar_i64_as(0, q.dtype())?;
        let rem = ops::binary(Subtract, x, &ops::binary(Multiply, &q, y, s)?, s)?;
        let inexact = ops::binary(NotEqual, &rem, &zero, s)?;
        let signs_differ = ops::binary(
            NotEqual,
            &ops::binary(Less, &rem, &zero, s)?,
            &ops::binary(Less, y, &zero, s)?,
            s,
        )?;
        let fix = ops::binary(LogicalAnd, &inexact, &signs_differ, s)?;
        ops::binary(Subtract, &q, &ops::astype(&fix, q.dtype(), s)?, s)?
    };
    cx.set(out, r)
}

pub fn where_(cx: &mut Ctx<'_>, cond: Tid, x: Tid, y: Tid, out: Tid) -> Result<(), ExecError> {
    let r = ops::where_(cx.get(cond)?, cx.get(x)?, cx.get(y)?, cx.s())?;
    cx.set(out, r)
}

pub fn clip(
    cx: &mut Ctx<'_>,
    x: Tid,
    out: Tid,
    lo: Option<Tid>,
    hi: Option<Tid>,
) -> Result<(), ExecError> {
    let r = ops::clip(cx.get(x)?, cx.get_opt(lo)?, cx.get_opt(hi)?, cx.s())?;
    cx.set(out, r)
}

pub fn astype(cx: &mut Ctx<'_>, x: Tid, out: Tid, scalar_type: i8) -> Result<(), ExecError> {
    let dt = cx.dtype(scalar_type)?;
    let r = ops::astype(cx.get(x)?, dt, cx.s())?;
    // A host copy survives a cast to an integer type that holds every value (a position cast to int32 for the
    // rope offset, see `exec::decode_attention`).
    let host = cx
        .host_ints(x)
        .filter(|h| h.values.iter().all(|&v| integer_holds(dt, v)))
        .cloned();
    cx.set(out, r)?;
    cx.set_host_ints(out, host);
    Ok(())
}

/// Whether integer dtype `dt` represents `v` exactly (false for non-integer dtypes).
fn integer_holds(dt: Dtype, v: i64) -> bool {
    match dt {
        Dtype::Int64 => true,
        Dtype::Int32 => i32::try_from(v).is_ok(),
        Dtype::Int16 => i16::try_from(v).is_ok(),
        Dtype::Int8 => i8::try_from(v).is_ok(),
        Dtype::Uint8 => u8::try_from(v).is_ok(),
        Dtype::Uint16 => u16::try_from(v).is_ok(),
        Dtype::Uint32 => u32::try_from(v).is_ok(),
        Dtype::Uint64 => v >= 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::integer_holds;
    use mlx::Dtype;

    /// Host copies follow a cast only where the cast keeps every value (MLX would wrap the others).
    #[test]
    fn host_copies_follow_value_preserving_integer_casts() {
        assert!(integer_holds(Dtype::Int32, 4095));
        assert!(!integer_holds(Dtype::Int32, i64::from(i32::MAX) + 1));
        assert!(!integer_holds(Dtype::Uint8, -1));
        assert!(!integer_holds(Dtype::Float32, 1), "not an integer type");
        assert!(!integer_holds(Dtype::Bool, 1));
    }
}
