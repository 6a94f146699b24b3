//! Shape manipulation and array creation.
//!
//! Most ops map one-to-one onto MLX, which validates shapes and axes itself (its exceptions come
//! back as errors). This file adds what MLX leaves to the caller: PyTorch's rules where they differ
//! from MLX's (Squeeze skips non-1 dims, Split's chunk-size form, BroadcastTo's `-1`), the
//! reference's allocation guard on arrays sized by the file, and bounds for `AsStrided`, which
//! MLX does not check at all.

use mlx::ops;
use mlx::{Array, Dtype};

use super::Ctx;
use crate::error::ExecError;
use crate::ir::{FloatOrVid, IntOrVid, Tid};

/// The reference's allocation guard (`check_allocation_bounded`) for arrays whose shape comes
/// from the file or from run-time values: every dimension must be positive and the total at most
/// [`crate::MAX_ALLOCATION_BYTES`].
pub(crate) fn check_allocation(
    op: &'static str,
    dims: &[i32],
    dtype: Dtype,
) -> Result<(), ExecError> {
    if let Some(d) = dims.iter().find(|&&d| d <= 0) {
        return Err(ExecError::invalid(
            op,
            format!("shape {dims:?} has a dimension {d} <= 0"),
        ));
    }
    check_bytes(op, dims, dtype)
}

/// Only the size half of [`check_allocation`] (empty arrays allowed), for ops the reference does
/// not guard but whose output size the file controls (Tile, Pad, AsStrided).
pub(crate) fn check_bytes(op: &'static str, dims: &[i32], dtype: Dtype) -> Result<(), ExecError> {
    let bytes = dims
        .iter()
        .try_fold(dtype.size() as u64, |acc, &d| {
            acc.checked_mul(u64::try_from(d).ok()?)
        })
        .ok_or_else(|| {
            ExecError::invalid(op, format!("shape {dims:?} is negative or overflows"))
        })?;
    if bytes > crate::MAX_ALLOCATION_BYTES {
        return Err(ExecError::invalid(
            op,
            format!("shape {dims:?} of {dtype} needs {bytes} bytes, over the 4 GiB limit"),
        ));
    }
    Ok(())
}

/// `axis` (negative counts from the end) as an index below `ndim`.
pub(crate) fn normalize_axis(op: &'static str, axis: i32, ndim: usize) -> Result<usize, ExecError> {
    let n = i64::try_from(ndim).unwrap_or(i64::MAX);
    let a = i64::from(axis);
    let a = if a < 0 { a + n } else { a };
    if (0..n).contains(&a) {
        Ok(a as usize)
    } else {
        Err(ExecError::invalid(
            op,
            format!("axis {axis} is out of range for {ndim} dimensions"),
        ))
    }
}

/// Reshape; a single `-1` is left for MLX to infer.
pub fn reshape(cx: &mut Ctx<'_>, x: Tid, out: Tid, shape: &[IntOrVid]) -> Result<(), ExecError> {
    let shape = cx.ints(shape)?;
    let r = ops::reshape(cx.get(x)?, &shape, cx.s())?;
    cx.set(out, r)
}

pub fn transpose(cx: &mut Ctx<'_>, x: Tid, out: Tid, perm: &[i32]) -> Result<(), ExecError> {
    let r = ops::transpose(cx.get(x)?, perm, cx.s())?;
    cx.set(out, r)
}

/// Inserts a size-1 axis; a negative `axis` counts in the output's dimensions (PyTorch `unsqueeze`
/// and MLX agree on this).
pub fn expand_dims(cx: &mut Ctx<'_>, x: Tid, out: Tid, axis: i32) -> Result<(), ExecError> {
    let a = cx.get(x)?;
    let rank = a.ndim();
    let r = ops::expand_dims(a, axis, cx.s())?;
    // MLX accepted the axis, so it lies in -(rank+1)..=rank.
    let normalized = if axis < 0 {
        axis + rank as i32 + 1
    } else {
        axis
    };
    let host = usize::try_from(normalized)
        .ok()
        .and_then(|ax| cx.host_ints(x)?.expand_dims(ax));
    cx.set(out, r)?;
    cx.set_host_ints(out, host);
    Ok(())
}

/// PyTorch squeeze: listed dims that are not size 1 are left alone (MLX would throw); no dims
/// means every size-1 dim.
pub fn squeeze(cx: &mut Ctx<'_>, x: Tid, out: Tid, dims: &[i32]) -> Result<(), ExecError> {
    let a = cx.get(x)?;
    let r = if dims.is_empty() {
        ops::squeeze_all(a, cx.s())?
    } else {
        let shape = a.shape();
        let mut axes = Vec::with_capacity(dims.len());
        for &d in dims {
            let axis = normalize_axis("Squeeze", d, shape.len())?;
            let axis_i32 = axis as i32; // below the rank, which MLX keeps small
            if shape[axis] == 1 && !axes.contains(&axis_i32) {
                axes.push(axis_i32);
            }
        }
        ops::squeeze(a, &axes, cx.s())?
    };
    cx.set(out, r)
}

/// Broadcast; a `-1` entry keeps the input's size of the matching (right-aligned) dimension.
pub fn broadcast_to(
    cx: &mut Ctx<'_>,
    x: Tid,
    out: Tid,
    shape: &[IntOrVid],
) -> Result<(), ExecError> {
    let mut target = cx.ints(shape)?;
    let a = cx.get(x)?;
    let in_shape = a.shape();
    let lead = target.len().checked_sub(in_shape.len()).ok_or_else(|| {
        ExecError::invalid(
            "BroadcastTo",
            format!("target {target:?} has fewer dimensions than the input {in_shape:?}"),
        )
    })?;
    for (i, d) in target.iter_mut().enumerate() {
        if *d == -1 {
            *d = i.checked_sub(lead).map(|j| in_shape[j]).ok_or_else(|| {
                ExecError::invalid("BroadcastTo", format!("-1 at new leading dimension {i}"))
            })?;
        }
    }
    let r = ops::broadcast_to(a, &target, cx.s())?;
    cx.set(out, r)
}

/// PyTorch `repeat` (whole-array tiling).
pub fn tile(cx: &mut Ctx<'_>, x: Tid, out: Tid, reps: &[IntOrVid]) -> Result<(), ExecError> {
    let reps = cx.ints(reps)?;
    let a = cx.get(x)?;
    if let Some(r) = reps.iter().find(|&&r| r < 0) {
        return Err(ExecError::invalid(
            "Tile",
            format!("negative repetition {r} in {reps:?}"),
        ));
    }
    // Output shape: input right-aligned against reps (both padded with leading 1s).
    let shape = a.shape();
    let rank = reps.len().max(shape.len());
    let pad = |v: &[i32], i: usize| -> i64 {
        i.checked_sub(rank - v.len()).map_or(1, |j| i64::from(v[j]))
    };
    let out_dims: Vec<i32> = (0..rank)
        .map(|i| i32::try_from(pad(&shape, i) * pad(&reps, i)).unwrap_or(i32::MAX))
        .collect();
    check_bytes("Tile", &out_dims, a.dtype())?;
    let r = ops::tile(a, &reps, cx.s())?;
    cx.set(out, r)
}

/// Repeats each element `repeats` times along `axis` (`repeat_interleave`).
pub fn repeat(
    cx: &mut Ctx<'_>,
    x: Tid,
    out: Tid,
    repeats: IntOrVid,
    axis: i32,
) -> Result<(), ExecError> {
    let repeats = cx.int(repeats)?;
    let a = cx.get(x)?;
    let mut dims = a.shape();
    let ax = normalize_axis("Repeat", axis, dims.len())?;
    dims[ax] = i32::try_from(i64::from(dims[ax]) * i64::from(repeats)).unwrap_or(i32::MAX);
    check_allocation("Repeat", &dims, a.dtype())?;
    let r = ops::repeat(a, repeats, axis, cx.s())?;
    cx.set(out, r)
}

fn operands<'c>(cx: &'c Ctx<'_>, tensors: &[Tid]) -> Result<Vec<&'c Array>, ExecError> {
    tensors.iter().map(|&t| cx.get(t)).collect()
}

pub fn concatenate(
    cx: &mut Ctx<'_>,
    tensors: &[Tid],
    out: Tid,
    axis: i32,
) -> Result<(), ExecError> {
    let r = ops::concatenate(&operands(cx, tensors)?, axis, cx.s())?;
    cx.set(out, r)
}

pub fn stack(cx: &mut Ctx<'_>, tensors: &[Tid], out: Tid, axis: i32) -> Result<(), ExecError> {
    let r = ops::stack(&operands(cx, tensors)?, axis, cx.s())?;
    cx.set(out, r)
}

/// Split points along an axis of size `dim`: one size is PyTorch's chunk size (the last chunk may
/// be shorter), several are the section sizes, which must sum to `dim`.
fn split_points(sizes: &[i32], dim: i32) -> Result<Vec<i32>, ExecError> {
    let invalid = |m: String| ExecError::invalid("Split", m);
    if let [chunk] = sizes {
        if *chunk <= 0 {
            return Err(invalid(format!("chunk size {chunk} must be positive")));
        }
        return Ok((1..).map(|i| i * chunk).take_while(|&p| p < dim).collect());
    }
    let mut points = Vec::with_capacity(sizes.len().saturating_sub(1));
    let mut total = 0i64;
    for (i, &s) in sizes.iter().enumerate() {
        if s < 0 {
            return Err(invalid(format!("size {s} in {sizes:?} is negative")));
        }
        total += i64::from(s);
        if i + 1 < sizes.len() {
            points.push(i32::try_from(total).unwrap_or(i32::MAX));
        }
    }
    if total != i64::from(dim) {
        return Err(invalid(format!(
            "sizes {sizes:?} sum to {total}, the axis has {dim}"
        )));
    }
    Ok(points)
}

pub fn split(
    cx: &mut Ctx<'_>,
    x: Tid,
    outs: &[Tid],
    sizes: &[IntOrVid],
    axis: i32,
) -> Result<(), ExecError> {
    let sizes = cx.ints(sizes)?;
    let a = cx.get(x)?;
    let shape = a.shape();
    let ax = normalize_axis("Split", axis, shape.len())?;
    let points = split_points(&sizes, shape[ax])?;
    if points.len() + 1 != outs.len() {
        return Err(ExecError::invalid(
            "Split",
            format!(
                "sizes {sizes:?} on an axis of {} give {} pieces, the node has {} outputs",
                shape[ax],
                points.len() + 1,
                outs.len()
            ),
        ));
    }
    let pieces = ops::split_at_indices(a, &points, ax as i32, cx.s())?;
    for (&t, piece) in outs.iter().zip(pieces) {
        cx.set(t, piece)?;
    }
    Ok(())
}

/// `pad_width` is flat `[before0, after0, before1, after1, ...]` for the leading axes; the mode
/// is "constant" (fill with `constant_value` in x's dtype) or "edge".
pub fn pad(
    cx: &mut Ctx<'_>,
    x: Tid,
    out: Tid,
    pad_width: &[IntOrVid],
    mode: &str,
    constant_value: f32,
) -> Result<(), ExecError> {
    let widths = cx.ints(pad_width)?;
    let a = cx.get(x)?;
    let shape = a.shape();
    if widths.len() % 2 != 0 || widths.len() / 2 > shape.len() {
        return Err(ExecError::invalid(
            "Pad",
            format!("pad_width {widths:?} is not one (before, after) pair per leading axis of {shape:?}"),
        ));
    }
    if mode != "constant" && mode != "edge" {
        return Err(ExecError::invalid(
            "Pad",
            format!("mode {mode:?} is not \"constant\" or \"edge\""),
        ));
    }
    let pairs: Vec<(i32, i32)> = widths.chunks_exact(2).map(|p| (p[0], p[1])).collect();
    let mut out_dims = shape.clone();
    for (i, &(before, after)) in pairs.iter().enumerate() {
        if before < 0 || after < 0 {
            return Err(ExecError::invalid(
                "Pad",
                format!("negative width in {widths:?}"),
            ));
        }
        if mode == "edge" && shape[i] == 0 && before + after > 0 {
            return Err(ExecError::invalid(
                "Pad",
                format!("edge padding of empty axis {i}"),
            ));
        }
        out_dims[i] = i32::try_from(i64::from(shape[i]) + i64::from(before) + i64::from(after))
            .unwrap_or(i32::MAX);
    }
    check_bytes("Pad", &out_dims, a.dtype())?;
    let value = Array::scalar_f64_as(f64::from(constant_value), a.dtype())?;
    let r = ops::pad_pairs(a, &pairs, &value, mode, cx.s())?;
    cx.set(out, r)
}

pub fn roll(
    cx: &mut Ctx<'_>,
    x: Tid,
    out: Tid,
    shift: &[IntOrVid],
    axes: &[i32],
) -> Result<(), ExecError> {
    let shifts = cx.ints(shift)?;
    let r = ops::roll(cx.get(x)?, &shifts, axes, cx.s())?;
    cx.set(out, r)
}

pub fn flip(cx: &mut Ctx<'_>, x: Tid, out: Tid, axes: &[i32]) -> Result<(), ExecError> {
    let r = ops::flip(cx.get(x)?, axes, cx.s())?;
    cx.set(out, r)
}

pub fn contiguous(cx: &mut Ctx<'_>, x: Tid, out: Tid) -> Result<(), ExecError> {
    let r = ops::contiguous(cx.get(x)?, false, cx.s())?;
    cx.set(out, r)
}

/// A strided view of x's row-major elements. MLX reads wherever the strides point, so every
/// element the view can reach must lie inside x.
pub fn as_strided(
    cx: &mut Ctx<'_>,
    x: Tid,
    out: Tid,
    shape: &[IntOrVid],
    strides: &[IntOrVid],
    offset: u64,
) -> Result<(), ExecError> {
    let shape = cx.ints(shape)?;
    let strides: Vec<i64> = cx.ints(strides)?.into_iter().map(i64::from).collect();
    let a = cx.get(x)?;
    if shape.len() != strides.len() {
        return Err(ExecError::invalid(
            "AsStrided",
            format!("shape {shape:?} and strides {strides:?} differ in length"),
        ));
    }
    check_bytes("AsStrided", &shape, a.dtype())?;
    if !shape.contains(&0) {
        let (mut lo, mut hi) = (i128::from(offset), i128::from(offset));
        for (&d, &s) in shape.iter().zip(&strides) {
            let reach = i128::from(d - 1) * i128::from(s);
            if reach < 0 {
                lo += reach;
            } else {
                hi += reach;
            }
        }
        if lo < 0 || hi >= a.size() as i128 {
            return Err(ExecError::invalid(
                "AsStrided",
                format!(
                    "shape {shape:?}, strides {strides:?}, offset {offset} reach elements {lo}..={hi} of an array of {}",
                    a.size()
                ),
            ));
        }
    }
    let offset =
        usize::try_from(offset).map_err(|_| ExecError::invalid("AsStrided", "offset overflows"))?;
    let r = ops::as_strided(a, &shape, &strides, offset, cx.s())?;
    cx.set(out, r)
}

pub fn tril_triu(cx: &mut Ctx<'_>, x: Tid, out: Tid, k: i32, lower: bool) -> Result<(), ExecError> {
    let a = cx.get(x)?;
    let r = if lower {
        ops::tril(a, k, cx.s())?
    } else {
        ops::triu(a, k, cx.s())?
    };
    cx.set(out, r)
}

pub fn tri(
    cx: &mut Ctx<'_>,
    out: Tid,
    n: IntOrVid,
    m: IntOrVid,
    k: i32,
    scalar_type: i8,
) -> Result<(), ExecError> {
    let (n, m) = (cx.int(n)?, cx.int(m)?);
    let dtype = cx.dtype(scalar_type)?;
    check_allocation("Tri", &[n, m], dtype)?;
    let r = ops::tri(n, m, k, dtype, cx.s())?;
    cx.set(out, r)
}

/// `shape` filled with the (f32) value, converted to the dtype.
pub fn full(
    cx: &mut Ctx<'_>,
    out: Tid,
    shape: &[IntOrVid],
    v: FloatOrVid,
    scalar_type: i8,
) -> Result<(), ExecError> {
    let shape = cx.ints(shape)?;
    let dtype = cx.dtype(scalar_type)?;
    check_allocation("Full", &shape, dtype)?;
    let r = ops::full_f64(&shape, f64::from(cx.float(v)?), dtype, cx.s())?;
    cx.set(out, r)
}

/// x's shape filled with the value, in `scalar_type` or else x's dtype.
pub fn full_like(
    cx: &mut Ctx<'_>,
    x: Tid,
    out: Tid,
    v: FloatOrVid,
    scalar_type: Option<i8>,
) -> Result<(), ExecError> {
    let value = f64::from(cx.float(v)?);
    let a = cx.get(x)?;
    let dtype = match scalar_type {
        Some(code) => cx.dtype(code)?,
        None => a.dtype(),
    };
    let r = ops::full_f64(&a.shape(), value, dtype, cx.s())?;
    cx.set(out, r)
}

/// `[start, stop)` by `step` on int32 bounds; without a dtype MLX's integer arange gives int32.
pub fn arange(
    cx: &mut Ctx<'_>,
    out: Tid,
    start: IntOrVid,
    stop: IntOrVid,
    step: IntOrVid,
    scalar_type: Option<i8>,
) -> Result<(), ExecError> {
    let (start, stop, step) = (cx.int(start)?, cx.int(stop)?, cx.int(step)?);
    if step == 0 {
        return Err(ExecError::invalid("ARange", "step is 0"));
    }
    let (span, step64) = (i64::from(stop) - i64::from(start), i64::from(step));
    // ceil(span / step), in exact integer arithmetic.
    let len = span.div_euclid(step64) + i64::from(span.rem_euclid(step64) != 0);
    let dtype = scalar_type.map(|code| cx.dtype(code)).transpose()?;
    let len = i32::try_from(len).unwrap_or(if len < 0 { 0 } else { i32::MAX });
    check_allocation("ARange", &[len], dtype.unwrap_or(Dtype::Int32))?;
    let r = match dtype {
        Some(dt) => ops::arange(
            f64::from(start),
            f64::from(stop),
            f64::from(step),
            Some(dt),
            cx.s(),
        )?,
        None => ops::arange_i32(start, stop, step, cx.s())?,
    };
    cx.set(out, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_size_gives_shorter_last_piece() {
        // torch.split(arange(10), 4) -> sizes 4, 4, 2.
        assert_eq!(split_points(&[4], 10).unwrap(), vec![4, 8]);
        assert_eq!(split_points(&[5], 10).unwrap(), vec![5]);
        assert_eq!(split_points(&[16], 10).unwrap(), Vec::<i32>::new());
        assert!(split_points(&[0], 10).is_err());
    }

    #[test]
    fn section_sizes_become_cumulative_points() {
        // torch.split(x, [2, 3, 5]) on 10 -> pieces [0,2) [2,5) [5,10).
        assert_eq!(split_points(&[2, 3, 5], 10).unwrap(), vec![2, 5]);
        assert!(split_points(&[2, 3], 10).is_err());
        assert!(split_points(&[12, -2], 10).is_err());
    }

    #[test]
    fn allocation_guard_matches_reference_rule() {
        assert!(check_allocation("t", &[2, 3], Dtype::Float32).is_ok());
        assert!(check_allocation("t", &[2, 0], Dtype::Float32).is_err());
        // 2^30 float32 = 4 GiB exactly is allowed; one more element is not.
        assert!(check_allocation("t", &[1 << 30], Dtype::Float32).is_ok());
        assert!(check_allocation("t", &[(1 << 30) + 1], Dtype::Float32).is_err());
        assert!(check_bytes("t", &[0, 5], Dtype::Float32).is_ok());
    }

    #[test]
    fn axes_normalize_like_python() {
        assert_eq!(normalize_axis("t", -1, 3).unwrap(), 2);
        assert_eq!(normalize_axis("t", 0, 3).unwrap(), 0);
        assert!(normalize_axis("t", 3, 3).is_err());
        assert!(normalize_axis("t", -4, 3).is_err());
        assert!(normalize_axis("t", 0, 0).is_err());
    }
}
