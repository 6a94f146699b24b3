//! Reductions, arg-reductions, scans and sorts along axes.

use mlx::ops::{self, ReduceOp};

use super::Ctx;
use crate::error::ExecError;
use crate::ir::{IntOrVid, Tid};

/// Sum/Mean/Prod/Max/Min/Any/All/Median/Var/Std. An empty axis list reduces over every axis.
#[allow(clippy::too_many_arguments)]
pub fn reduce(
    cx: &mut Ctx<'_>,
    op: ReduceOp,
    x: Tid,
    out: Tid,
    axes: &[i32],
    keepdims: bool,
) -> Result<(), ExecError> {
    let axes = (!axes.is_empty()).then_some(axes);
    let r = ops::reduce(op, cx.get(x)?, axes, keepdims, cx.s())?;
    cx.set(out, r)
}

/// LogSumExp passes its axis list through unchanged, even when empty (the reference's one
/// exception to "empty means all").
pub fn logsumexp(
    cx: &mut Ctx<'_>,
    x: Tid,
    out: Tid,
    axes: &[i32],
    keepdims: bool,
) -> Result<(), ExecError> {
    let r = ops::reduce(
        ReduceOp::LogSumExp,
        cx.get(x)?,
        Some(axes),
        keepdims,
        cx.s(),
    )?;
    cx.set(out, r)
}

pub fn arg_reduce(
    cx: &mut Ctx<'_>,
    is_max: bool,
    x: Tid,
    out: Tid,
    axis: i32,
    keepdims: bool,
) -> Result<(), ExecError> {
    let a = cx.get(x)?;
    let r = if is_max {
        ops::argmax(a, axis, keepdims, cx.s())?
    } else {
        ops::argmin(a, axis, keepdims, cx.s())?
    };
    cx.set(out, r)
}

pub fn cumsum(
    cx: &mut Ctx<'_>,
    x: Tid,
    out: Tid,
    axis: i32,
    reverse: bool,
    inclusive: bool,
) -> Result<(), ExecError> {
    let r = ops::cumsum(cx.get(x)?, axis, reverse, inclusive, cx.s())?;
    cx.set(out, r)
}

pub fn softmax(
    cx: &mut Ctx<'_>,
    x: Tid,
    out: Tid,
    axis: i32,
    precise: bool,
) -> Result<(), ExecError> {
    let r = ops::softmax(cx.get(x)?, &[axis], precise, cx.s())?;
    cx.set(out, r)
}

pub fn sort(cx: &mut Ctx<'_>, x: Tid, out: Tid, axis: i32, indices: bool) -> Result<(), ExecError> {
    let a = cx.get(x)?;
    let r = if indices {
        ops::argsort(a, axis, cx.s())?
    } else {
        ops::sort(a, axis, cx.s())?
    };
    cx.set(out, r)
}

pub fn partition(
    cx: &mut Ctx<'_>,
    x: Tid,
    out: Tid,
    kth: IntOrVid,
    axis: i32,
    indices: bool,
) -> Result<(), ExecError> {
    let kth = cx.int(kth)?;
    let a = cx.get(x)?;
    let r = if indices {
        ops::argpartition(a, kth, axis, cx.s())?
    } else {
        ops::partition(a, kth, axis, cx.s())?
    };
    cx.set(out, r)
}
