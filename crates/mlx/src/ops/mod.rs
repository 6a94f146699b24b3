//! MLX ops. Every function takes its stream explicitly and returns a lazy [`Array`]; nothing runs
//! until evaluation. Axes may be negative (counted from the end) unless a function says otherwise.

mod conv;
mod elementwise;
mod linalg;
mod reduce;
mod shape;

pub use conv::{conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d, conv_transpose3d};
pub use elementwise::{
    astype, binary, clip, compiled_silu, compiled_swiglu, round, unary, where_, BinaryOp, UnaryOp,
};
pub use linalg::{
    addmm, dequantize, gather_mm, gather_qmm, matmul, quantize, quantized_matmul, Quantization,
    Quantized,
};
pub use reduce::{
    arg_reduce, argmax, argmin, argpartition, argsort, cumsum, partition, reduce, softmax, sort,
    ReduceOp,
};
pub use shape::{
    arange, arange_i32, as_strided, broadcast_to, concatenate, contiguous, expand_dims, flip, full,
    full_f64, gather, pad, pad_pairs, repeat, reshape, roll, scatter_add_axis, slice, slice_update,
    split_at_indices, split_equal, squeeze, squeeze_all, stack, take, take_along_axis, take_index,
    tile, transpose, tri, tril, triu, zeros,
};

use crate::array::Array;
use mlx_sys::etm_array;

pub(crate) fn optional_ptr(array: Option<&Array>) -> *const etm_array {
    array.map_or(std::ptr::null(), Array::as_ptr)
}

pub(crate) fn raw_list(arrays: &[&Array]) -> Vec<*const etm_array> {
    arrays.iter().map(|a| a.as_ptr()).collect()
}

/// Wraps `count` handles a shim call wrote into `outs` (all or none are written).
pub(crate) fn collect_outputs(
    op: &'static str,
    outs: Vec<*mut etm_array>,
) -> crate::Result<Vec<Array>> {
    let mut arrays = Vec::with_capacity(outs.len());
    let mut failure = None;
    for raw in outs {
        // Wrap every non-null handle even after a failure so none leaks.
        match Array::from_raw(op, raw) {
            Ok(array) => arrays.push(array),
            Err(e) => failure = Some(e),
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(arrays),
    }
}
