use crate::array::Array;
use crate::device::Stream;
use crate::dtype::{optional_code, Dtype};
use crate::error::{c_string, MlxError, Result};
use crate::ops::{collect_outputs, raw_list};

fn same_lengths(op: &'static str, lengths: &[(&str, usize)]) -> Result<()> {
    match lengths.first() {
        Some(&(_, first)) if lengths.iter().any(|&(_, len)| len != first) => {
            let listed: Vec<String> = lengths
                .iter()
                .map(|(name, len)| format!("{name}={len}"))
                .collect();
            Err(MlxError::invalid(
                op,
                format!("lists must have equal lengths, got {}", listed.join(", ")),
            ))
        }
        _ => Ok(()),
    }
}

pub fn reshape(x: &Array, shape: &[i32], s: Stream) -> Result<Array> {
    // SAFETY: valid handle and slice borrowed for the call.
    Array::produce("reshape", |out| unsafe {
        mlx_sys::etm_reshape(x.as_ptr(), shape.as_ptr(), shape.len(), s.raw(), out)
    })
}

/// Permutes axes: output axis `i` is input axis `perm[i]`.
pub fn transpose(x: &Array, perm: &[i32], s: Stream) -> Result<Array> {
    // SAFETY: valid handle and slice borrowed for the call.
    Array::produce("transpose", |out| unsafe {
        mlx_sys::etm_transpose(x.as_ptr(), perm.as_ptr(), perm.len(), s.raw(), out)
    })
}

pub fn expand_dims(x: &Array, axis: i32, s: Stream) -> Result<Array> {
    // SAFETY: valid handle borrowed for the call.
    Array::produce("expand_dims", |out| unsafe {
        mlx_sys::etm_expand_dims(x.as_ptr(), axis, s.raw(), out)
    })
}

/// Removes the listed axes, each of which must have size 1 (MLX errors otherwise; PyTorch's
/// "skip non-1 dims" rule is the caller's job).
pub fn squeeze(x: &Array, axes: &[i32], s: Stream) -> Result<Array> {
    // SAFETY: valid handle and slice borrowed for the call.
    Array::produce("squeeze", |out| unsafe {
        mlx_sys::etm_squeeze(x.as_ptr(), axes.as_ptr(), axes.len(), false, s.raw(), out)
    })
}

/// Removes every size-1 axis.
pub fn squeeze_all(x: &Array, s: Stream) -> Result<Array> {
    // SAFETY: valid handle borrowed for the call.
    Array::produce("squeeze", |out| unsafe {
        mlx_sys::etm_squeeze(x.as_ptr(), std::ptr::null(), 0, true, s.raw(), out)
    })
}

pub fn broadcast_to(x: &Array, shape: &[i32], s: Stream) -> Result<Array> {
    // SAFETY: valid handle and slice borrowed for the call.
    Array::produce("broadcast_to", |out| unsafe {
        mlx_sys::etm_broadcast_to(x.as_ptr(), shape.as_ptr(), shape.len(), s.raw(), out)
    })
}

pub fn concatenate(xs: &[&Array], axis: i32, s: Stream) -> Result<Array> {
    let raw = raw_list(xs);
    // SAFETY: `raw` holds valid handles borrowed for the call.
    Array::produce("concatenate", |out| unsafe {
        mlx_sys::etm_concatenate(raw.as_ptr(), raw.len(), axis, s.raw(), out)
    })
}

/// Stacks equal-shaped arrays along a new axis.
pub fn stack(xs: &[&Array], axis: i32, s: Stream) -> Result<Array> {
    let raw = raw_list(xs);
    // SAFETY: `raw` holds valid handles borrowed for the call.
    Array::produce("stack", |out| unsafe {
        mlx_sys::etm_stack(raw.as_ptr(), raw.len(), axis, s.raw(), out)
    })
}

/// Splits before each of the (ascending) `indices` along `axis`: `indices.len() + 1` pieces.
pub fn split_at_indices(x: &Array, indices: &[i32], axis: i32, s: Stream) -> Result<Vec<Array>> {
    let mut outs = vec![std::ptr::null_mut(); indices.len() + 1];
    // SAFETY: valid handle; `outs` has room for exactly the number of pieces.
    let status = unsafe {
        mlx_sys::etm_split_indices(
            x.as_ptr(),
            indices.as_ptr(),
            indices.len(),
            axis,
            s.raw(),
            outs.as_mut_ptr(),
            outs.len(),
        )
    };
    crate::error::check("split", status)?;
    collect_outputs("split", outs)
}

/// Splits into `parts` equal pieces along `axis` (the axis size must divide evenly).
pub fn split_equal(x: &Array, parts: i32, axis: i32, s: Stream) -> Result<Vec<Array>> {
    let count = usize::try_from(parts)
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            MlxError::invalid("split", format!("parts must be positive, got {parts}"))
        })?;
    let mut outs = vec![std::ptr::null_mut(); count];
    // SAFETY: valid handle; `outs` has room for `parts` handles.
    let status = unsafe {
        mlx_sys::etm_split_equal(x.as_ptr(), parts, axis, s.raw(), outs.as_mut_ptr(), count)
    };
    crate::error::check("split", status)?;
    collect_outputs("split", outs)
}

pub fn tile(x: &Array, reps: &[i32], s: Stream) -> Result<Array> {
    // SAFETY: valid handle and slice borrowed for the call.
    Array::produce("tile", |out| unsafe {
        mlx_sys::etm_tile(x.as_ptr(), reps.as_ptr(), reps.len(), s.raw(), out)
    })
}

/// Repeats each element `repeats` times along `axis` (`[a, b]` → `[a, a, b, b]`).
pub fn repeat(x: &Array, repeats: i32, axis: i32, s: Stream) -> Result<Array> {
    // SAFETY: valid handle borrowed for the call.
    Array::produce("repeat", |out| unsafe {
        mlx_sys::etm_repeat(x.as_ptr(), repeats, axis, s.raw(), out)
    })
}

/// Strided slice over every axis (`start`, `stop`, `strides` each have one entry per axis).
/// Negative starts/stops count from the end and are clamped by MLX; negative strides walk
/// backwards (so `start=-1, stop=-(n+1), stride=-1` reverses an axis).
pub fn slice(x: &Array, start: &[i32], stop: &[i32], strides: &[i32], s: Stream) -> Result<Array> {
    same_lengths(
        "slice",
        &[
            ("start", start.len()),
            ("stop", stop.len()),
            ("strides", strides.len()),
        ],
    )?;
    // SAFETY: valid handle; three slices of equal length borrowed for the call.
    Array::produce("slice", |out| unsafe {
        mlx_sys::etm_slice(
            x.as_ptr(),
            start.as_ptr(),
            stop.as_ptr(),
            strides.as_ptr(),
            start.len(),
            s.raw(),
            out,
        )
    })
}

/// `src` with the region `start..stop` (step `strides`) replaced by `update`.
///
/// Donation: when the caller drops (or replaces) its handle to `src` before the result is
/// evaluated and no other handle to `src` is alive, MLX writes into `src`'s buffer in place
/// instead of copying it — this is how KV caches stay O(update).
pub fn slice_update(
    src: &Array,
    update: &Array,
    start: &[i32],
    stop: &[i32],
    strides: &[i32],
    s: Stream,
) -> Result<Array> {
    same_lengths(
        "slice_update",
        &[
            ("start", start.len()),
            ("stop", stop.len()),
            ("strides", strides.len()),
        ],
    )?;
    // SAFETY: valid handles; three slices of equal length borrowed for the call.
    Array::produce("slice_update", |out| unsafe {
        mlx_sys::etm_slice_update(
            src.as_ptr(),
            update.as_ptr(),
            start.as_ptr(),
            stop.as_ptr(),
            strides.as_ptr(),
            start.len(),
            s.raw(),
            out,
        )
    })
}

/// A view of `x`'s (row-major) data with the given shape, element strides and element offset.
/// MLX does not bounds-check this; callers must keep it inside `x`.
pub fn as_strided(
    x: &Array,
    shape: &[i32],
    strides: &[i64],
    offset: usize,
    s: Stream,
) -> Result<Array> {
    same_lengths(
        "as_strided",
        &[("shape", shape.len()), ("strides", strides.len())],
    )?;
    // SAFETY: valid handle and slices borrowed for the call.
    Array::produce("as_strided", |out| unsafe {
        mlx_sys::etm_as_strided(
            x.as_ptr(),
            shape.as_ptr(),
            shape.len(),
            strides.as_ptr(),
            strides.len(),
            offset,
            s.raw(),
            out,
        )
    })
}

/// A row-contiguous copy when `x` is not (column-major also accepted if `allow_col_major`).
pub fn contiguous(x: &Array, allow_col_major: bool, s: Stream) -> Result<Array> {
    // SAFETY: valid handle borrowed for the call.
    Array::produce("contiguous", |out| unsafe {
        mlx_sys::etm_contiguous(x.as_ptr(), allow_col_major, s.raw(), out)
    })
}

/// Pads `axes[i]` with `low[i]` elements before and `high[i]` after. `mode` is `"constant"`
/// (fill with `value`) or `"edge"` (repeat the border). MLX 0.32 also accepts other modes
/// (e.g. `"reflect"`), so the delegate validates the mode itself; unknown modes are errors.
pub fn pad(
    x: &Array,
    axes: &[i32],
    low: &[i32],
    high: &[i32],
    value: &Array,
    mode: &str,
    s: Stream,
) -> Result<Array> {
    same_lengths(
        "pad",
        &[
            ("axes", axes.len()),
            ("low", low.len()),
            ("high", high.len()),
        ],
    )?;
    let mode = c_string("pad", mode)?;
    // SAFETY: valid handles, equal-length slices and a NUL-terminated string for the call.
    Array::produce("pad", |out| unsafe {
        mlx_sys::etm_pad(
            x.as_ptr(),
            axes.as_ptr(),
            low.as_ptr(),
            high.as_ptr(),
            axes.len(),
            value.as_ptr(),
            mode.as_ptr(),
            s.raw(),
            out,
        )
    })
}

/// [`pad`] with `(before, after)` widths for the leading axes `0..widths.len()`.
pub fn pad_pairs(
    x: &Array,
    widths: &[(i32, i32)],
    value: &Array,
    mode: &str,
    s: Stream,
) -> Result<Array> {
    let axes: Vec<i32> = (0..widths.len())
        .map(|i| i32::try_from(i).map_err(|_| MlxError::invalid("pad", "too many axes")))
        .collect::<Result<_>>()?;
    let low: Vec<i32> = widths.iter().map(|w| w.0).collect();
    let high: Vec<i32> = widths.iter().map(|w| w.1).collect();
    pad(x, &axes, &low, &high, value, mode, s)
}

/// Rolls `axes[i]` by `shifts[i]` (elements leaving one end re-enter at the other).
pub fn roll(x: &Array, shifts: &[i32], axes: &[i32], s: Stream) -> Result<Array> {
    same_lengths("roll", &[("shifts", shifts.len()), ("axes", axes.len())])?;
    // SAFETY: valid handle and equal-length slices borrowed for the call.
    Array::produce("roll", |out| unsafe {
        mlx_sys::etm_roll(
            x.as_ptr(),
            shifts.as_ptr(),
            axes.as_ptr(),
            axes.len(),
            s.raw(),
            out,
        )
    })
}

/// Reverses the order of elements along each of `axes`.
pub fn flip(x: &Array, axes: &[i32], s: Stream) -> Result<Array> {
    // SAFETY: valid handle and slice borrowed for the call.
    Array::produce("flip", |out| unsafe {
        mlx_sys::etm_flip(x.as_ptr(), axes.as_ptr(), axes.len(), s.raw(), out)
    })
}

/// Selects `indices` (any integer array) along `axis`; the axis is replaced by the indices' shape.
pub fn take(x: &Array, indices: &Array, axis: i32, s: Stream) -> Result<Array> {
    // SAFETY: valid handles borrowed for the call.
    Array::produce("take", |out| unsafe {
        mlx_sys::etm_take(x.as_ptr(), indices.as_ptr(), axis, s.raw(), out)
    })
}

/// Selects one position along `axis`, removing the axis. The caller normalises negative
/// indices (as the delegate does) before calling.
pub fn take_index(x: &Array, index: i32, axis: i32, s: Stream) -> Result<Array> {
    // SAFETY: valid handle borrowed for the call.
    Array::produce("take", |out| unsafe {
        mlx_sys::etm_take_index(x.as_ptr(), index, axis, s.raw(), out)
    })
}

pub fn take_along_axis(x: &Array, indices: &Array, axis: i32, s: Stream) -> Result<Array> {
    // SAFETY: valid handles borrowed for the call.
    Array::produce("take_along_axis", |out| unsafe {
        mlx_sys::etm_take_along_axis(x.as_ptr(), indices.as_ptr(), axis, s.raw(), out)
    })
}

/// MLX `gather`: `indices[i]` index axis `axes[i]`; each gathered slice has `slice_sizes`
/// (one entry per axis of `x`). Output shape = broadcast(indices) ++ slice_sizes.
pub fn gather(
    x: &Array,
    indices: &[&Array],
    axes: &[i32],
    slice_sizes: &[i32],
    s: Stream,
) -> Result<Array> {
    let raw = raw_list(indices);
    // SAFETY: valid handles and slices borrowed for the call.
    Array::produce("gather", |out| unsafe {
        mlx_sys::etm_gather(
            x.as_ptr(),
            raw.as_ptr(),
            raw.len(),
            axes.as_ptr(),
            axes.len(),
            slice_sizes.as_ptr(),
            slice_sizes.len(),
            s.raw(),
            out,
        )
    })
}

/// PyTorch `scatter_add` along one axis: `out[.., indices[i], ..] += updates[i]`.
pub fn scatter_add_axis(
    x: &Array,
    indices: &Array,
    updates: &Array,
    axis: i32,
    s: Stream,
) -> Result<Array> {
    // SAFETY: valid handles borrowed for the call.
    Array::produce("scatter_add_axis", |out| unsafe {
        mlx_sys::etm_scatter_add_axis(
            x.as_ptr(),
            indices.as_ptr(),
            updates.as_ptr(),
            axis,
            s.raw(),
            out,
        )
    })
}

/// Zeroes elements above the `k`-th diagonal of the last two axes.
pub fn tril(x: &Array, k: i32, s: Stream) -> Result<Array> {
    // SAFETY: valid handle borrowed for the call.
    Array::produce("tril", |out| unsafe {
        mlx_sys::etm_triangle(false, x.as_ptr(), k, s.raw(), out)
    })
}

/// Zeroes elements below the `k`-th diagonal of the last two axes.
pub fn triu(x: &Array, k: i32, s: Stream) -> Result<Array> {
    // SAFETY: valid handle borrowed for the call.
    Array::produce("triu", |out| unsafe {
        mlx_sys::etm_triangle(true, x.as_ptr(), k, s.raw(), out)
    })
}

/// `n x m` matrix with ones at and below the `k`-th diagonal.
pub fn tri(n: i32, m: i32, k: i32, dtype: Dtype, s: Stream) -> Result<Array> {
    // SAFETY: plain arguments; out-pointer supplied by `produce`.
    Array::produce("tri", |out| unsafe {
        mlx_sys::etm_tri(n, m, k, dtype.code(), s.raw(), out)
    })
}

/// `shape` filled with `value` (broadcast), cast to `dtype` (`None`: the value's dtype).
pub fn full(shape: &[i32], value: &Array, dtype: Option<Dtype>, s: Stream) -> Result<Array> {
    // SAFETY: valid handle and slice borrowed for the call.
    Array::produce("full", |out| unsafe {
        mlx_sys::etm_full(
            shape.as_ptr(),
            shape.len(),
            value.as_ptr(),
            optional_code(dtype),
            s.raw(),
            out,
        )
    })
}

/// `shape` filled with `value` converted to `dtype`.
pub fn full_f64(shape: &[i32], value: f64, dtype: Dtype, s: Stream) -> Result<Array> {
    let scalar = Array::scalar_f64_as(value, dtype)?;
    full(shape, &scalar, Some(dtype), s)
}

pub fn zeros(shape: &[i32], dtype: Dtype, s: Stream) -> Result<Array> {
    // SAFETY: slice borrowed for the call.
    Array::produce("zeros", |out| unsafe {
        mlx_sys::etm_zeros(shape.as_ptr(), shape.len(), dtype.code(), s.raw(), out)
    })
}

/// `[start, stop)` by `step`; `dtype` `None` lets MLX choose (float32 for these f64 bounds).
pub fn arange(start: f64, stop: f64, step: f64, dtype: Option<Dtype>, s: Stream) -> Result<Array> {
    // SAFETY: plain arguments.
    Array::produce("arange", |out| unsafe {
        mlx_sys::etm_arange(start, stop, step, optional_code(dtype), s.raw(), out)
    })
}

/// Integer `arange`: int32 result (what the delegate's ARange without a dtype produces).
pub fn arange_i32(start: i32, stop: i32, step: i32, s: Stream) -> Result<Array> {
    // SAFETY: plain arguments.
    Array::produce("arange", |out| unsafe {
        mlx_sys::etm_arange_int(start, stop, step, s.raw(), out)
    })
}
