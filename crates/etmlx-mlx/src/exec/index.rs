//! Indexing: slices, in-place slice updates, take/gather/scatter.
//!
//! MLX's gather and scatter kernels do not bounds-check index *values* (an out-of-range index
//! reads or writes outside the buffer), and checking them on the host would cost a sync. So
//! index tensors are clipped into range lazily ([`bounded_indices`]): valid indices (negative
//! ones included, which MLX wraps like PyTorch) are unchanged, invalid ones stay in bounds.

use mlx::ops::{self, BinaryOp};
use mlx::{Array, Dtype};

use super::shape::{check_allocation, normalize_axis};
use super::Ctx;
use crate::error::ExecError;
use crate::ir::{IntOrVid, IntOrVidOrTid, Tid};

/// Inclusive value range of an integer dtype (`None` for non-integers).
fn int_range(dtype: Dtype) -> Option<(i128, i128)> {
    let bits = 8 * dtype.size() as u32;
    match dtype {
        Dtype::Uint8 | Dtype::Uint16 | Dtype::Uint32 | Dtype::Uint64 => {
            Some((0, (1i128 << bits) - 1))
        }
        Dtype::Int8 | Dtype::Int16 | Dtype::Int32 | Dtype::Int64 => {
            Some((-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1))
        }
        _ => None,
    }
}

/// `indices` clipped into `[lo, hi]` (in their own dtype), skipping the clip when the dtype
/// cannot leave that range anyway.
fn clip_indices(
    op: &'static str,
    indices: &Array,
    lo: i64,
    hi: i64,
    s: mlx::Stream,
) -> Result<Array, ExecError> {
    let dt = indices.dtype();
    let (dmin, dmax) = int_range(dt)
        .ok_or_else(|| ExecError::invalid(op, format!("indices must be integers, got {dt}")))?;
    let lo_bound = (dmin < i128::from(lo))
        .then(|| Array::scalar_i64_as(lo.max(dmin as i64), dt))
        .transpose()?;
    let hi_bound = (dmax > i128::from(hi))
        .then(|| Array::scalar_i64_as(hi, dt))
        .transpose()?;
    if lo_bound.is_none() && hi_bound.is_none() {
        return Ok(indices.clone());
    }
    Ok(ops::clip(indices, lo_bound.as_ref(), hi_bound.as_ref(), s)?)
}

/// Indices into an axis of size `n`, kept inside `[-n, n-1]` (see the module doc). An empty axis
/// admits no index, so there only empty index arrays pass.
fn bounded_indices(
    op: &'static str,
    indices: &Array,
    n: i32,
    s: mlx::Stream,
) -> Result<Array, ExecError> {
    if n == 0 {
        if indices.size() != 0 {
            return Err(ExecError::invalid(op, "indexing into an empty axis"));
        }
        return Ok(indices.clone());
    }
    clip_indices(op, indices, -i64::from(n), i64::from(n) - 1, s)
}

/// Start/stop/stride vectors selecting `start..stop` by `step` on `axis` and everything elsewhere.
fn one_axis_bounds(
    shape: &[i32],
    axis: usize,
    start: i32,
    stop: i32,
    step: i32,
) -> (Vec<i32>, Vec<i32>, Vec<i32>) {
    let mut starts = vec![0; shape.len()];
    let mut stops = shape.to_vec();
    let mut strides = vec![1; shape.len()];
    starts[axis] = start;
    stops[axis] = stop;
    strides[axis] = step;
    (starts, stops, strides)
}

/// Strided slice on one axis, with MLX's own normalisation of negative and out-of-range bounds
/// (`stop = i32::MAX` from an `i64::MAX` literal means "to the end"). A negative step walks
/// backwards: the exporter reverses an axis (top-k) with `start=k-1, stop=-(k+1), step=-1`.
pub fn slice(
    cx: &mut Ctx<'_>,
    x: Tid,
    out: Tid,
    axis: IntOrVid,
    start: IntOrVid,
    stop: IntOrVid,
    step: i32,
) -> Result<(), ExecError> {
    let (axis, start, stop) = (cx.int(axis)?, cx.int(start)?, cx.int(stop)?);
    if step == 0 {
        return Err(ExecError::invalid("Slice", "step is 0"));
    }
    let a = cx.get(x)?;
    let shape = a.shape();
    let ax = normalize_axis("Slice", axis, shape.len())?;
    let (starts, stops, strides) = one_axis_bounds(&shape, ax, start, stop, step);
    let r = ops::slice(a, &starts, &stops, &strides, cx.s())?;
    cx.set(out, r)
}

/// Python-style bound: negatives count from the end, then clamped into `[0, n]`.
fn clamp_bound(v: i32, n: i32) -> i32 {
    let v = i64::from(v);
    let n = i64::from(n);
    (if v < 0 { v + n } else { v }).clamp(0, n) as i32
}

/// Takes `dst` for an update written to `out`: moved out of its slot when updating in place (so
/// MLX may donate the buffer), else a second handle.
fn take_dst(cx: &mut Ctx<'_>, dst: Tid, out: Tid) -> Result<Array, ExecError> {
    if out == dst {
        cx.take(dst)
    } else {
        cx.get(dst).cloned()
    }
}

/// Stores the result of an update; on failure an in-place `dst` is put back first, so a failed
/// execute does not leave a mutable buffer slot empty.
pub(super) fn finish_update(
    cx: &mut Ctx<'_>,
    dst: Tid,
    out: Tid,
    original: Array,
    result: Result<Array, ExecError>,
) -> Result<(), ExecError> {
    match result {
        Ok(updated) => {
            drop(original);
            cx.set(out, updated)
        }
        Err(e) => {
            if out == dst {
                cx.set(dst, original)?;
            }
            Err(e)
        }
    }
}

/// `dst` with `dst[.., start:stop:step, ..] = update` on `axis`. Bounds are clamped the Python
/// way; `start == stop` (after clamping) is a no-op, which ring-buffer KV caches rely on.
#[allow(clippy::too_many_arguments)]
pub fn slice_update(
    cx: &mut Ctx<'_>,
    dst: Tid,
    update: Tid,
    out: Tid,
    axis: IntOrVid,
    start: IntOrVid,
    stop: IntOrVid,
    step: i32,
) -> Result<(), ExecError> {
    let (axis, start, stop) = (cx.int(axis)?, cx.int(start)?, cx.int(stop)?);
    if step < 1 {
        return Err(ExecError::invalid(
            "SliceUpdate",
            format!("step {step} must be >= 1"),
        ));
    }
    let upd = cx.get(update)?.clone();
    let base = take_dst(cx, dst, out)?;
    let s = cx.s();
    let result = (|| {
        let shape = base.shape();
        let ax = normalize_axis("SliceUpdate", axis, shape.len())?;
        let (lo, hi) = (clamp_bound(start, shape[ax]), clamp_bound(stop, shape[ax]));
        if lo == hi {
            return Ok(base.clone());
        }
        let (starts, stops, strides) = one_axis_bounds(&shape, ax, lo, hi, step);
        Ok(ops::slice_update(
            &base, &upd, &starts, &stops, &strides, s,
        )?)
    })();
    finish_update(cx, dst, out, base, result)
}

/// Maximal runs of consecutive indices: `(position in indices, first index, length)`.
fn contiguous_runs(indices: &[i64]) -> Vec<(usize, i64, usize)> {
    let mut runs: Vec<(usize, i64, usize)> = Vec::new();
    for (pos, &idx) in indices.iter().enumerate() {
        match runs.last_mut() {
            Some((_, first, len)) if *first + *len as i64 == idx => *len += 1,
            _ => runs.push((pos, idx, 1)),
        }
    }
    runs
}

/// `dst[.., indices[i], ..] = update[.., i, ..]` on `axis`. Reads the (int64) indices on the
/// host (a sync, as in the reference) and issues one slice update per run of consecutive
/// indices; later entries win on duplicates.
pub fn index_copy(
    cx: &mut Ctx<'_>,
    dst: Tid,
    update: Tid,
    indices: Tid,
    out: Tid,
    axis: i32,
) -> Result<(), ExecError> {
    const OP: &str = "IndexCopy";
    let idx_array = cx.get(indices)?;
    if idx_array.dtype() != Dtype::Int64 {
        return Err(ExecError::invalid(
            OP,
            format!("indices must be int64, got {}", idx_array.dtype()),
        ));
    }
    if idx_array.ndim() > 1 {
        return Err(ExecError::invalid(
            OP,
            format!(
                "indices must be 0-d or 1-d, got shape {:?}",
                idx_array.shape()
            ),
        ));
    }
    let idx: Vec<i64> = idx_array.to_vec()?;
    let upd = cx.get(update)?.clone();
    let base = take_dst(cx, dst, out)?;
    let s = cx.s();
    let result = (|| {
        let shape = base.shape();
        let ax = normalize_axis(OP, axis, shape.len())?;
        let upd_shape = upd.shape();
        let n = i64::from(shape[ax]);
        // A 0-d index means an update without the indexed axis (PyTorch allows both).
        let upd = if upd_shape.len() + 1 == shape.len() {
            ops::expand_dims(&upd, ax as i32, s)?
        } else {
            upd
        };
        let upd_shape = upd.shape();
        if upd_shape.len() != shape.len() || i64::from(upd_shape[ax]) != idx.len() as i64 {
            return Err(ExecError::invalid(
                OP,
                format!("update {upd_shape:?} does not match dst {shape:?} with {} indices on axis {ax}", idx.len()),
            ));
        }
        // PyTorch refuses negative indices here too (unlike most indexing ops).
        if let Some(bad) = idx.iter().find(|&&i| !(0..n).contains(&i)) {
            return Err(ExecError::invalid(
                OP,
                format!("index {bad} is out of range for axis {ax} of size {n}"),
            ));
        }
        let runs = contiguous_runs(&idx);
        let mut acc = base.clone();
        for &(pos, first, len) in &runs {
            let piece = if runs.len() == 1 {
                upd.clone()
            } else {
                let (starts, stops, strides) =
                    one_axis_bounds(&upd_shape, ax, pos as i32, (pos + len) as i32, 1);
                ops::slice(&upd, &starts, &stops, &strides, s)?
            };
            // In range: first + len <= n, and n fits in i32.
            let (starts, stops, strides) =
                one_axis_bounds(&shape, ax, first as i32, (first + len as i64) as i32, 1);
            acc = ops::slice_update(&acc, &piece, &starts, &stops, &strides, s)?;
        }
        Ok(acc)
    })();
    finish_update(cx, dst, out, base, result)
}

/// Selects along `axis`: a scalar index removes the axis (negatives count from the end), a tensor
/// index replaces it by the index's shape.
pub fn take(
    cx: &mut Ctx<'_>,
    x: Tid,
    out: Tid,
    index: IntOrVidOrTid,
    axis: i32,
) -> Result<(), ExecError> {
    let s = cx.s();
    let scalar = match index {
        IntOrVidOrTid::Lit(v) => Some(cx.int(IntOrVid::Lit(v))?),
        IntOrVidOrTid::Vid(v) => Some(cx.int(IntOrVid::Vid(v))?),
        IntOrVidOrTid::Tid(_) => None,
    };
    let a = cx.get(x)?;
    let ax = normalize_axis("Take", axis, a.ndim())?;
    let n = a.shape()[ax];
    let r = match (scalar, index) {
        (Some(i), _) => {
            let i = if i < 0 {
                i64::from(i) + i64::from(n)
            } else {
                i64::from(i)
            };
            if !(0..i64::from(n)).contains(&i) {
                return Err(ExecError::invalid(
                    "Take",
                    format!("index {i} is out of range for axis {ax} of size {n}"),
                ));
            }
            let r = ops::take_index(a, i as i32, ax as i32, s)?;
            let host = cx.host_ints(x).and_then(|h| h.take(i as usize, ax));
            cx.set(out, r)?;
            cx.set_host_ints(out, host);
            return Ok(());
        }
        (None, IntOrVidOrTid::Tid(t)) => {
            let idx = bounded_indices("Take", cx.get(t)?, n, s)?;
            ops::take(a, &idx, ax as i32, s)?
        }
        (None, IntOrVidOrTid::Lit(_) | IntOrVidOrTid::Vid(_)) => {
            return Err(ExecError::invalid("Take", "unresolved scalar index"));
        }
    };
    cx.set(out, r)
}

pub fn take_along_axis(
    cx: &mut Ctx<'_>,
    x: Tid,
    indices: Tid,
    out: Tid,
    axis: i32,
) -> Result<(), ExecError> {
    let s = cx.s();
    let a = cx.get(x)?;
    let ax = normalize_axis("TakeAlongAxis", axis, a.ndim())?;
    let idx = bounded_indices("TakeAlongAxis", cx.get(indices)?, a.shape()[ax], s)?;
    let r = ops::take_along_axis(a, &idx, ax as i32, s)?;
    cx.set(out, r)
}

/// MLX gather: `indices[i]` index axis `axes[i]`, each picking a block of `slice_sizes`.
/// Output shape = broadcast(indices) ++ slice_sizes.
pub fn gather(
    cx: &mut Ctx<'_>,
    x: Tid,
    indices: &[Tid],
    out: Tid,
    axes: &[i32],
    slice_sizes: &[i32],
) -> Result<(), ExecError> {
    const OP: &str = "Gather";
    let s = cx.s();
    let a = cx.get(x)?;
    let shape = a.shape();
    if indices.len() != axes.len() || slice_sizes.len() != shape.len() {
        return Err(ExecError::invalid(
            OP,
            format!(
                "{} index arrays, {} axes, {} slice sizes for {} dimensions",
                indices.len(),
                axes.len(),
                slice_sizes.len(),
                shape.len()
            ),
        ));
    }
    check_allocation(OP, slice_sizes, a.dtype())?;
    let mut bounded = Vec::with_capacity(indices.len());
    for (&t, &axis) in indices.iter().zip(axes) {
        let ax = normalize_axis(OP, axis, shape.len())?;
        let (n, size) = (shape[ax], slice_sizes[ax]);
        if size > n {
            return Err(ExecError::invalid(
                OP,
                format!("slice size {size} exceeds axis {ax} of size {n}"),
            ));
        }
        let idx = cx.get(t)?;
        let idx = if size == 1 {
            bounded_indices(OP, idx, n, s)?
        } else {
            // Blocks wider than 1 must start in [0, n - size]: wrap negatives first, then clip.
            let zero = Array::scalar_i64_as(0, idx.dtype())?;
            let wrapped = ops::where_(
                &ops::binary(BinaryOp::Less, idx, &zero, s)?,
                &ops::binary(
                    BinaryOp::Add,
                    idx,
                    &Array::scalar_i64_as(i64::from(n), idx.dtype())?,
                    s,
                )?,
                idx,
                s,
            )?;
            clip_indices(OP, &wrapped, 0, i64::from(n - size), s)?
        };
        bounded.push(idx);
    }
    let refs: Vec<&Array> = bounded.iter().collect();
    let r = ops::gather(a, &refs, axes, slice_sizes, s)?;
    cx.set(out, r)
}

/// PyTorch `scatter_add` along one axis: `out[.., indices[i], ..] += updates[i]`.
pub fn scatter_add(
    cx: &mut Ctx<'_>,
    x: Tid,
    indices: Tid,
    updates: Tid,
    out: Tid,
    axis: i32,
) -> Result<(), ExecError> {
    let s = cx.s();
    let a = cx.get(x)?;
    let ax = normalize_axis("ScatterAdd", axis, a.ndim())?;
    let idx = bounded_indices("ScatterAdd", cx.get(indices)?, a.shape()[ax], s)?;
    let r = ops::scatter_add_axis(a, &idx, cx.get(updates)?, ax as i32, s)?;
    cx.set(out, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_split_at_gaps_and_reorders() {
        assert_eq!(contiguous_runs(&[3, 4, 5]), vec![(0, 3, 3)]);
        assert_eq!(
            contiguous_runs(&[0, 1, 5, 6, 2]),
            vec![(0, 0, 2), (2, 5, 2), (4, 2, 1)]
        );
        assert_eq!(contiguous_runs(&[]), vec![]);
    }

    #[test]
    fn bounds_clamp_python_style() {
        assert_eq!(clamp_bound(-1, 10), 9);
        assert_eq!(clamp_bound(-20, 10), 0);
        assert_eq!(clamp_bound(i32::MAX, 10), 10);
        assert_eq!(clamp_bound(3, 10), 3);
    }

    #[test]
    fn integer_ranges() {
        assert_eq!(int_range(Dtype::Int8), Some((-128, 127)));
        assert_eq!(int_range(Dtype::Uint32), Some((0, u32::MAX as i128)));
        assert_eq!(
            int_range(Dtype::Int64),
            Some((i64::MIN as i128, i64::MAX as i128))
        );
        assert_eq!(int_range(Dtype::Float32), None);
    }
}
