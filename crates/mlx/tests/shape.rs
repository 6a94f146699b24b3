//! Shape, layout, indexing and creation ops.
mod common;

use common::*;
use mlx::ops;
use mlx::{Array, Dtype, MlxError};

fn iota(n: i32, shape: &[i32]) -> Array {
    let values: Vec<f32> = (0..n).map(|v| v as f32).collect();
    f32s(&values, shape)
}

#[test]
fn reshape_transpose_expand_squeeze() {
    let _g = lock();
    let s = cpu();
    let x = iota(6, &[2, 3]);
    let r = ops::reshape(&x, &[3, -1], s).unwrap();
    assert_eq!(r.shape(), vec![3, 2]);
    assert_eq!(read_f32(&r), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    let err = ops::reshape(&x, &[5], s).unwrap_err();
    assert!(matches!(err, MlxError::Mlx { op: "reshape", .. }), "{err}");

    let y = iota(6, &[1, 2, 3]);
    let t = ops::transpose(&y, &[2, 0, 1], s).unwrap();
    assert_eq!(t.shape(), vec![3, 1, 2]);
    assert_eq!(read_f32(&t), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);

    let e = ops::expand_dims(&x, -1, s).unwrap();
    assert_eq!(e.shape(), vec![2, 3, 1]);
    let sq = ops::squeeze(&y, &[0], s).unwrap();
    assert_eq!(sq.shape(), vec![2, 3]);
    assert!(ops::squeeze(&y, &[1], s).is_err(), "axis 1 has size 2");
    let z = iota(3, &[1, 3, 1]);
    assert_eq!(ops::squeeze_all(&z, s).unwrap().shape(), vec![3]);
}

#[test]
fn broadcast_concatenate_stack() {
    let _g = lock();
    let s = cpu();
    let col = f32s(&[1.0, 2.0], &[2, 1]);
    let b = ops::broadcast_to(&col, &[2, 3], s).unwrap();
    assert_eq!(read_f32(&b), vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    assert!(ops::broadcast_to(&col, &[3, 3], s).is_err());

    let a = f32s(&[1.0, 2.0], &[1, 2]);
    let c = f32s(&[3.0, 4.0, 5.0, 6.0], &[2, 2]);
    let cat0 = ops::concatenate(&[&a, &c], 0, s).unwrap();
    assert_eq!(cat0.shape(), vec![3, 2]);
    assert_eq!(read_f32(&cat0), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert!(ops::concatenate(&[&a, &c], 1, s).is_err());

    let p = f32s(&[1.0, 2.0], &[2]);
    let q = f32s(&[3.0, 4.0], &[2]);
    let st0 = ops::stack(&[&p, &q], 0, s).unwrap();
    assert_eq!(st0.shape(), vec![2, 2]);
    assert_eq!(read_f32(&st0), vec![1.0, 2.0, 3.0, 4.0]);
    let st1 = ops::stack(&[&p, &q], 1, s).unwrap();
    assert_eq!(read_f32(&st1), vec![1.0, 3.0, 2.0, 4.0]);
}

#[test]
fn split_by_indices_and_equal_parts() {
    let _g = lock();
    let s = cpu();
    let x = iota(6, &[6]);
    let parts = ops::split_at_indices(&x, &[1, 4], 0, s).unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(read_f32(&parts[0]), vec![0.0]);
    assert_eq!(read_f32(&parts[1]), vec![1.0, 2.0, 3.0]);
    assert_eq!(read_f32(&parts[2]), vec![4.0, 5.0]);
    let halves = ops::split_equal(&iota(6, &[2, 3]), 3, 1, s).unwrap();
    assert_eq!(halves.len(), 3);
    assert_eq!(halves[1].shape(), vec![2, 1]);
    assert_eq!(read_f32(&halves[1]), vec![1.0, 4.0]);
    assert!(
        ops::split_equal(&x, 4, 0, s).is_err(),
        "6 is not divisible by 4"
    );
    assert!(ops::split_equal(&x, 0, 0, s).is_err());
}

#[test]
fn tile_and_repeat() {
    let _g = lock();
    let s = cpu();
    let x = f32s(&[1.0, 2.0], &[2]);
    assert_eq!(
        read_f32(&ops::tile(&x, &[2], s).unwrap()),
        vec![1.0, 2.0, 1.0, 2.0]
    );
    let t2 = ops::tile(&x, &[2, 1], s).unwrap();
    assert_eq!(t2.shape(), vec![2, 2]);
    assert_eq!(
        read_f32(&ops::repeat(&x, 2, 0, s).unwrap()),
        vec![1.0, 1.0, 2.0, 2.0]
    );
}

#[test]
fn slice_with_strides_and_negative_steps() {
    let _g = lock();
    let s = cpu();
    let x = iota(12, &[3, 4]);
    let sl = ops::slice(&x, &[1, 0], &[3, 4], &[1, 2], s).unwrap();
    assert_eq!(sl.shape(), vec![2, 2]);
    assert_eq!(read_f32(&sl), vec![4.0, 6.0, 8.0, 10.0]);
    // Negative start counts from the end.
    let last = ops::slice(&x, &[-1, 0], &[3, 4], &[1, 1], s).unwrap();
    assert_eq!(read_f32(&last), vec![8.0, 9.0, 10.0, 11.0]);
    // Reverse the last axis with a negative stride.
    let rev = ops::slice(&x, &[0, -1], &[1, -5], &[1, -1], s).unwrap();
    assert_eq!(read_f32(&rev), vec![3.0, 2.0, 1.0, 0.0]);
    let err = ops::slice(&x, &[0], &[1, 1], &[1, 1], s).unwrap_err();
    assert!(
        matches!(err, MlxError::InvalidArgument { op: "slice", .. }),
        "{err}"
    );
}

#[test]
fn flip_reverses_axes() {
    let _g = lock();
    let s = cpu();
    let x = iota(6, &[2, 3]);
    assert_eq!(
        read_f32(&ops::flip(&x, &[1], s).unwrap()),
        vec![2.0, 1.0, 0.0, 5.0, 4.0, 3.0]
    );
    assert_eq!(
        read_f32(&ops::flip(&x, &[0, 1], s).unwrap()),
        vec![5.0, 4.0, 3.0, 2.0, 1.0, 0.0]
    );
}

#[test]
fn slice_update_writes_the_region() {
    let _g = lock();
    let s = cpu();
    let cache = ops::zeros(&[2, 4], Dtype::Float32, s).unwrap();
    let update = f32s(&[1.0, 2.0], &[1, 2]);
    let out = ops::slice_update(&cache, &update, &[1, 1], &[2, 3], &[1, 1], s).unwrap();
    assert_eq!(read_f32(&out), vec![0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 0.0]);
    // The source is untouched (it is still referenced).
    assert_eq!(read_f32(&cache), vec![0.0; 8]);
    // Strided update: every other column of row 0.
    let out2 = ops::slice_update(&out, &update, &[0, 0], &[1, 4], &[1, 2], s).unwrap();
    assert_eq!(
        read_f32(&out2),
        vec![1.0, 0.0, 2.0, 0.0, 0.0, 1.0, 2.0, 0.0]
    );
    assert!(
        ops::slice_update(&cache, &update, &[0, 0], &[1, 3], &[1, 1], s).is_err(),
        "region 1x3 vs update 1x2"
    );
}

#[test]
fn as_strided_and_contiguous() {
    let _g = lock();
    let s = cpu();
    let x = iota(6, &[6]);
    // Overlapping windows of 3 with step 1, starting at element 1.
    let w = ops::as_strided(&x, &[2, 3], &[1, 1], 1, s).unwrap();
    assert_eq!(read_f32(&w), vec![1.0, 2.0, 3.0, 2.0, 3.0, 4.0]);
    let t = ops::transpose(&iota(6, &[2, 3]), &[1, 0], s).unwrap();
    let c = ops::contiguous(&t, false, s).unwrap();
    assert_eq!(read_f32(&c), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    assert!(ops::as_strided(&x, &[2, 3], &[1], 0, s).is_err());
}

#[test]
fn pad_constant_and_edge() {
    let _g = lock();
    let s = cpu();
    let x = f32s(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let nine = Array::scalar_f32(9.0).unwrap();
    let p = ops::pad(&x, &[1], &[1], &[2], &nine, "constant", s).unwrap();
    assert_eq!(p.shape(), vec![2, 5]);
    assert_eq!(
        read_f32(&p),
        vec![9.0, 1.0, 2.0, 9.0, 9.0, 9.0, 3.0, 4.0, 9.0, 9.0]
    );
    let e = ops::pad_pairs(&x, &[(1, 0), (0, 1)], &nine, "edge", s).unwrap();
    assert_eq!(e.shape(), vec![3, 3]);
    assert_eq!(
        read_f32(&e),
        vec![1.0, 2.0, 2.0, 1.0, 2.0, 2.0, 3.0, 4.0, 4.0]
    );
    // MLX itself accepts more modes than the delegate (e.g. "reflect"); unknown ones fail.
    let err = ops::pad(&x, &[0], &[1], &[1], &nine, "bogus", s).unwrap_err();
    assert!(matches!(err, MlxError::Mlx { op: "pad", .. }), "{err}");
    assert!(ops::pad(&x, &[0], &[1], &[1], &nine, "con\0stant", s).is_err());
}

#[test]
fn roll_shifts_cyclically() {
    let _g = lock();
    let s = cpu();
    let x = iota(6, &[2, 3]);
    assert_eq!(
        read_f32(&ops::roll(&x, &[1], &[1], s).unwrap()),
        vec![2.0, 0.0, 1.0, 5.0, 3.0, 4.0]
    );
    assert_eq!(
        read_f32(&ops::roll(&x, &[-1, 1], &[1, 0], s).unwrap()),
        vec![4.0, 5.0, 3.0, 1.0, 2.0, 0.0]
    );
    assert!(ops::roll(&x, &[1, 2], &[0], s).is_err());
}

#[test]
fn take_variants_and_take_along_axis() {
    let _g = lock();
    let s = cpu();
    let x = iota(6, &[2, 3]);
    let idx = i32s(&[2, 0], &[2]);
    let t = ops::take(&x, &idx, 1, s).unwrap();
    assert_eq!(read_f32(&t), vec![2.0, 0.0, 5.0, 3.0]);
    let row = ops::take_index(&x, 1, 0, s).unwrap();
    assert_eq!(row.shape(), vec![3]);
    assert_eq!(read_f32(&row), vec![3.0, 4.0, 5.0]);
    let idx64 = Array::from_slice(&[1i64], &[1]).unwrap();
    assert_eq!(
        read_f32(&ops::take(&x, &idx64, 0, s).unwrap()),
        vec![3.0, 4.0, 5.0]
    );
    let along = i32s(&[2, 1], &[2, 1]);
    let ta = ops::take_along_axis(&x, &along, 1, s).unwrap();
    assert_eq!(ta.shape(), vec![2, 1]);
    assert_eq!(read_f32(&ta), vec![2.0, 4.0]);
}

#[test]
fn gather_slices() {
    let _g = lock();
    let s = cpu();
    let x = iota(12, &[3, 4]);
    let rows = i32s(&[2, 0], &[2]);
    // Gather rows 2 and 0, each a [1, 4] slice: output [2, 1, 4].
    let g = ops::gather(&x, &[&rows], &[0], &[1, 4], s).unwrap();
    assert_eq!(g.shape(), vec![2, 1, 4]);
    assert_eq!(read_f32(&g), vec![8.0, 9.0, 10.0, 11.0, 0.0, 1.0, 2.0, 3.0]);
    let cols = i32s(&[1, 3], &[2]);
    let points = ops::gather(&x, &[&rows, &cols], &[0, 1], &[1, 1], s).unwrap();
    assert_eq!(read_f32(&points), vec![9.0, 3.0]);
}

#[test]
fn scatter_add_axis_accumulates_duplicates() {
    let _g = lock();
    let s = cpu();
    let x = f32s(&[0.0; 4], &[1, 4]);
    let idx = i32s(&[1, 3, 1], &[1, 3]);
    let upd = f32s(&[1.0, 2.0, 3.0], &[1, 3]);
    let out = ops::scatter_add_axis(&x, &idx, &upd, 1, s).unwrap();
    assert_eq!(read_f32(&out), vec![0.0, 4.0, 0.0, 2.0]);
}

#[test]
fn triangles() {
    let _g = lock();
    let s = cpu();
    let x = iota(9, &[3, 3]).clone();
    let ones = ops::full_f64(&[3, 3], 1.0, Dtype::Float32, s).unwrap();
    let x = ops::binary(mlx::ops::BinaryOp::Add, &x, &ones, s).unwrap(); // 1..=9
    assert_eq!(
        read_f32(&ops::tril(&x, 0, s).unwrap()),
        vec![1.0, 0.0, 0.0, 4.0, 5.0, 0.0, 7.0, 8.0, 9.0]
    );
    assert_eq!(
        read_f32(&ops::triu(&x, 1, s).unwrap()),
        vec![0.0, 2.0, 3.0, 0.0, 0.0, 6.0, 0.0, 0.0, 0.0]
    );
    assert_eq!(
        read_f32(&ops::tril(&x, -1, s).unwrap()),
        vec![0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 7.0, 8.0, 0.0]
    );
    let t = ops::tri(2, 3, 0, Dtype::Int32, s).unwrap();
    assert_eq!(t.dtype(), Dtype::Int32);
    assert_eq!(read_i32(&t), vec![1, 0, 0, 1, 1, 0]);
    let b = ops::tri(2, 2, 1, Dtype::Bool, s).unwrap();
    assert_eq!(read_bool(&b), vec![true, true, true, true]);
}

#[test]
fn full_zeros_arange() {
    let _g = lock();
    let s = cpu();
    let f = ops::full_f64(&[2, 2], 2.5, Dtype::Float32, s).unwrap();
    assert_eq!(read_f32(&f), vec![2.5; 4]);
    let fi = ops::full_f64(&[3], 2.9, Dtype::Int32, s).unwrap();
    assert_eq!(read_i32(&fi), vec![2; 3]);
    let v = Array::scalar_i32(7).unwrap();
    let same = ops::full(&[2], &v, None, s).unwrap();
    assert_eq!(same.dtype(), Dtype::Int32);
    let row = f32s(&[1.0, 2.0], &[2]);
    let tiled = ops::full(&[2, 2], &row, Some(Dtype::Float32), s).unwrap();
    assert_eq!(read_f32(&tiled), vec![1.0, 2.0, 1.0, 2.0]);
    let z = ops::zeros(&[2, 1], Dtype::Int64, s).unwrap();
    assert_eq!(z.to_vec::<i64>().unwrap(), vec![0, 0]);

    let a = ops::arange(0.0, 1.0, 0.25, None, s).unwrap();
    assert_eq!(a.dtype(), Dtype::Float32);
    assert_eq!(read_f32(&a), vec![0.0, 0.25, 0.5, 0.75]);
    let ai = ops::arange(5.0, 0.0, -2.0, Some(Dtype::Int64), s).unwrap();
    assert_eq!(ai.to_vec::<i64>().unwrap(), vec![5, 3, 1]);
    let a32 = ops::arange_i32(2, 7, 2, s).unwrap();
    assert_eq!(a32.dtype(), Dtype::Int32);
    assert_eq!(read_i32(&a32), vec![2, 4, 6]);
}

/// A transpose that only moves size-1 axes is a reshape, and reshapes of unevaluated reshapes are taken from
/// the first input: `[1, T=1, H, D] → transpose(0, 2, 1, 3) → reshape [1, 1, H·D]` is one MLX node holding
/// the same row-major values. A transpose that moves real axes stays a transpose.
#[test]
fn unit_axis_transposes_and_reshape_chains_become_one_reshape() {
    let _g = lock();
    let values: Vec<f32> = (0..12).map(|v| v as f32).collect();
    let zero = f32s(&[0.0; 12], &[1, 1, 3, 4]);
    let x = ops::binary(
        ops::BinaryOp::Add,
        &f32s(&values, &[1, 1, 3, 4]),
        &zero,
        cpu(),
    )
    .unwrap();
    let heads = ops::transpose(&x, &[0, 2, 1, 3], cpu()).unwrap();
    assert_eq!(heads.shape(), vec![1, 3, 1, 4]);
    let flat = ops::reshape(&heads, &[1, 1, 12], cpu()).unwrap();
    let nodes = mlx::graph_primitive_counts(&[&flat]).unwrap();
    assert_eq!(
        nodes,
        vec![("Add".to_string(), 1), ("Reshape".to_string(), 1)],
        "the transpose and the reshape merged"
    );
    assert_eq!(read_f32(&flat), values);
    assert_eq!(read_f32(&heads), values);

    let moved = ops::transpose(&f32s(&values, &[1, 3, 4]), &[0, 2, 1], cpu()).unwrap();
    let nodes = mlx::graph_primitive_counts(&[&moved]).unwrap();
    assert_eq!(nodes, vec![("Transpose".to_string(), 1)]);
    let want: Vec<f32> = (0..4)
        .flat_map(|c| (0..3).map(move |r| (r * 4 + c) as f32))
        .collect();
    assert_eq!(
        read_f32(&ops::contiguous(&moved, false, cpu()).unwrap()),
        want
    );
}
