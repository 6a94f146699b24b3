use mlx_sys::reduce as code;

use crate::array::Array;
use crate::device::Stream;
use crate::error::Result;

/// Reductions over a set of axes ([`reduce`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Mean,
    Prod,
    Max,
    Min,
    Any,
    All,
    LogSumExp,
    /// Variance with `ddof` delta degrees of freedom (divisor `n - ddof`).
    Var {
        ddof: i32,
    },
    /// Standard deviation with `ddof` delta degrees of freedom.
    Std {
        ddof: i32,
    },
    Median,
}

impl ReduceOp {
    fn code_and_ddof(self) -> (i32, i32) {
        match self {
            ReduceOp::Sum => (code::SUM, 0),
            ReduceOp::Mean => (code::MEAN, 0),
            ReduceOp::Prod => (code::PROD, 0),
            ReduceOp::Max => (code::MAX, 0),
            ReduceOp::Min => (code::MIN, 0),
            ReduceOp::Any => (code::ANY, 0),
            ReduceOp::All => (code::ALL, 0),
            ReduceOp::LogSumExp => (code::LOGSUMEXP, 0),
            ReduceOp::Var { ddof } => (code::VAR, ddof),
            ReduceOp::Std { ddof } => (code::STD, ddof),
            ReduceOp::Median => (code::MEDIAN, 0),
        }
    }
}

/// Reduces over `axes`; `None` reduces over every axis. `Some(&[])` is passed to MLX as an
/// empty axis list unchanged (for most ops that reduces nothing; the delegate maps an empty
/// schema list to `None` except for LogSumExp, which passes it through).
pub fn reduce(
    op: ReduceOp,
    x: &Array,
    axes: Option<&[i32]>,
    keepdims: bool,
    s: Stream,
) -> Result<Array> {
    let (op_code, ddof) = op.code_and_ddof();
    let (ptr, len, all) = match axes {
        Some(list) => (list.as_ptr(), list.len(), false),
        None => (std::ptr::null(), 0, true),
    };
    // SAFETY: valid handle and (possibly empty) slice borrowed for the call.
    Array::produce("reduce", |out| unsafe {
        mlx_sys::etm_reduce(
            op_code,
            x.as_ptr(),
            ptr,
            len,
            all,
            keepdims,
            ddof,
            s.raw(),
            out,
        )
    })
    .map_err(|e| e.with_detail(op))
}

/// `argmax` (`is_max`) or `argmin` along one axis; result dtype uint32.
pub fn arg_reduce(is_max: bool, x: &Array, axis: i32, keepdims: bool, s: Stream) -> Result<Array> {
    let op = if is_max { "argmax" } else { "argmin" };
    // SAFETY: valid handle borrowed for the call.
    Array::produce(op, |out| unsafe {
        mlx_sys::etm_arg_reduce(is_max, x.as_ptr(), axis, keepdims, s.raw(), out)
    })
}

pub fn argmax(x: &Array, axis: i32, keepdims: bool, s: Stream) -> Result<Array> {
    arg_reduce(true, x, axis, keepdims, s)
}

pub fn argmin(x: &Array, axis: i32, keepdims: bool, s: Stream) -> Result<Array> {
    arg_reduce(false, x, axis, keepdims, s)
}

/// Cumulative sum along `axis`; `reverse` scans from the end, `inclusive=false` shifts by one
/// (first output 0).
pub fn cumsum(x: &Array, axis: i32, reverse: bool, inclusive: bool, s: Stream) -> Result<Array> {
    // SAFETY: valid handle borrowed for the call.
    Array::produce("cumsum", |out| unsafe {
        mlx_sys::etm_cumsum(x.as_ptr(), axis, reverse, inclusive, s.raw(), out)
    })
}

/// Softmax over `axes`; `precise` accumulates in float32 for half inputs.
pub fn softmax(x: &Array, axes: &[i32], precise: bool, s: Stream) -> Result<Array> {
    // SAFETY: valid handle and slice borrowed for the call.
    Array::produce("softmax", |out| unsafe {
        mlx_sys::etm_softmax(x.as_ptr(), axes.as_ptr(), axes.len(), precise, s.raw(), out)
    })
}

pub fn sort(x: &Array, axis: i32, s: Stream) -> Result<Array> {
    // SAFETY: valid handle borrowed for the call.
    Array::produce("sort", |out| unsafe {
        mlx_sys::etm_sort(false, x.as_ptr(), axis, s.raw(), out)
    })
}

/// Indices that sort `x` along `axis` (uint32).
pub fn argsort(x: &Array, axis: i32, s: Stream) -> Result<Array> {
    // SAFETY: valid handle borrowed for the call.
    Array::produce("argsort", |out| unsafe {
        mlx_sys::etm_sort(true, x.as_ptr(), axis, s.raw(), out)
    })
}

/// Reorders so that element `kth` is in sorted position, smaller ones before, larger after.
pub fn partition(x: &Array, kth: i32, axis: i32, s: Stream) -> Result<Array> {
    // SAFETY: valid handle borrowed for the call.
    Array::produce("partition", |out| unsafe {
        mlx_sys::etm_partition(false, x.as_ptr(), kth, axis, s.raw(), out)
    })
}

pub fn argpartition(x: &Array, kth: i32, axis: i32, s: Stream) -> Result<Array> {
    // SAFETY: valid handle borrowed for the call.
    Array::produce("argpartition", |out| unsafe {
        mlx_sys::etm_partition(true, x.as_ptr(), kth, axis, s.raw(), out)
    })
}
