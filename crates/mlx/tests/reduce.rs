//! Reductions, arg-reductions, scans, softmax, sorting, partitioning.
mod common;

use common::*;
use mlx::ops::{self, ReduceOp};
use mlx::Dtype;

fn grid() -> mlx::Array {
    // [[1, 2, 3], [4, 5, 6]]
    f32s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])
}

#[test]
fn sum_mean_prod_max_min() {
    let _g = lock();
    let s = cpu();
    let x = grid();
    let r = |op, axes: Option<&[i32]>, keep| ops::reduce(op, &x, axes, keep, s).unwrap();
    let total = r(ReduceOp::Sum, None, false);
    assert_eq!(total.shape(), Vec::<i32>::new());
    assert_eq!(read_f32(&total), vec![21.0]);
    let cols = r(ReduceOp::Sum, Some(&[0]), false);
    assert_eq!(read_f32(&cols), vec![5.0, 7.0, 9.0]);
    let kept = r(ReduceOp::Sum, Some(&[0]), true);
    assert_eq!(kept.shape(), vec![1, 3]);
    assert_eq!(
        read_f32(&r(ReduceOp::Sum, Some(&[-1]), false)),
        vec![6.0, 15.0]
    );
    assert_eq!(
        read_f32(&r(ReduceOp::Mean, Some(&[1]), false)),
        vec![2.0, 5.0]
    );
    assert_eq!(read_f32(&r(ReduceOp::Prod, None, false)), vec![720.0]);
    assert_eq!(
        read_f32(&r(ReduceOp::Max, Some(&[1]), false)),
        vec![3.0, 6.0]
    );
    assert_eq!(
        read_f32(&r(ReduceOp::Min, Some(&[0]), false)),
        vec![1.0, 2.0, 3.0]
    );
    let all_kept = r(ReduceOp::Max, None, true);
    assert_eq!(all_kept.shape(), vec![1, 1]);
    assert_eq!(read_f32(&all_kept), vec![6.0]);
    assert!(ops::reduce(ReduceOp::Sum, &x, Some(&[2]), false, s).is_err());
}

#[test]
fn any_all() {
    let _g = lock();
    let s = cpu();
    let b = bools(&[true, false, false, false], &[2, 2]);
    assert_eq!(
        read_bool(&ops::reduce(ReduceOp::Any, &b, Some(&[1]), false, s).unwrap()),
        vec![true, false]
    );
    assert_eq!(
        read_bool(&ops::reduce(ReduceOp::All, &b, None, false, s).unwrap()),
        vec![false]
    );
    let t = bools(&[true, true], &[2]);
    assert_eq!(
        read_bool(&ops::reduce(ReduceOp::All, &t, None, false, s).unwrap()),
        vec![true]
    );
}

#[test]
fn logsumexp_var_std_median() {
    let _g = lock();
    let s = cpu();
    // log(e^0 + e^(ln 3)) = ln 4.
    let x = f32s(&[0.0, 3f32.ln()], &[2]);
    let lse = ops::reduce(ReduceOp::LogSumExp, &x, None, false, s).unwrap();
    assert_close(&read_f32(&lse), &[4f32.ln()], TOL);
    // An empty axis list reaches MLX unchanged: nothing is reduced, shape is kept.
    let lse_empty = ops::reduce(ReduceOp::LogSumExp, &x, Some(&[]), false, s).unwrap();
    assert_eq!(lse_empty.shape(), vec![2]);
    assert_close(&read_f32(&lse_empty), &[0.0, 3f32.ln()], TOL);

    // [1, 2, 3, 4]: mean 2.5, squared deviations sum 5 → var 5/4 (ddof 0), 5/3 (ddof 1).
    let v = f32s(&[1.0, 2.0, 3.0, 4.0], &[4]);
    let var0 = ops::reduce(ReduceOp::Var { ddof: 0 }, &v, None, false, s).unwrap();
    assert_close(&read_f32(&var0), &[1.25], TOL);
    let var1 = ops::reduce(ReduceOp::Var { ddof: 1 }, &v, Some(&[0]), false, s).unwrap();
    assert_close(&read_f32(&var1), &[5.0 / 3.0], TOL);
    let std0 = ops::reduce(ReduceOp::Std { ddof: 0 }, &v, None, false, s).unwrap();
    assert_close(&read_f32(&std0), &[1.25f32.sqrt()], TOL);
    let std1 = ops::reduce(ReduceOp::Std { ddof: 1 }, &v, None, true, s).unwrap();
    assert_eq!(std1.shape(), vec![1]);
    assert_close(&read_f32(&std1), &[(5.0f32 / 3.0).sqrt()], TOL);

    // Even count: mean of the two middle values (2 and 3).
    let m = f32s(&[3.0, 1.0, 10.0, 2.0], &[4]);
    assert_close(
        &read_f32(&ops::reduce(ReduceOp::Median, &m, None, false, s).unwrap()),
        &[2.5],
        TOL,
    );
    let m2 = f32s(&[5.0, 1.0, 3.0, 9.0, 7.0, 8.0], &[2, 3]);
    assert_close(
        &read_f32(&ops::reduce(ReduceOp::Median, &m2, Some(&[1]), false, s).unwrap()),
        &[3.0, 8.0],
        TOL,
    );
}

#[test]
fn argmax_argmin() {
    let _g = lock();
    let s = cpu();
    let x = f32s(&[1.0, 9.0, 3.0, 7.0, 2.0, 8.0], &[2, 3]);
    let amax = ops::argmax(&x, 1, false, s).unwrap();
    assert_eq!(amax.dtype(), Dtype::Uint32);
    assert_eq!(amax.to_vec::<u32>().unwrap(), vec![1, 2]);
    let amin = ops::argmin(&x, 0, true, s).unwrap();
    assert_eq!(amin.shape(), vec![1, 3]);
    assert_eq!(amin.to_vec::<u32>().unwrap(), vec![0, 1, 0]);
}

#[test]
fn cumsum_variants() {
    let _g = lock();
    let s = cpu();
    let x = f32s(&[1.0, 2.0, 3.0, 4.0], &[4]);
    assert_eq!(
        read_f32(&ops::cumsum(&x, 0, false, true, s).unwrap()),
        vec![1.0, 3.0, 6.0, 10.0]
    );
    assert_eq!(
        read_f32(&ops::cumsum(&x, 0, false, false, s).unwrap()),
        vec![0.0, 1.0, 3.0, 6.0]
    );
    assert_eq!(
        read_f32(&ops::cumsum(&x, 0, true, true, s).unwrap()),
        vec![10.0, 9.0, 7.0, 4.0]
    );
    assert_eq!(
        read_f32(&ops::cumsum(&x, 0, true, false, s).unwrap()),
        vec![9.0, 7.0, 4.0, 0.0]
    );
    let g = grid();
    assert_eq!(
        read_f32(&ops::cumsum(&g, 1, false, true, s).unwrap()),
        vec![1.0, 3.0, 6.0, 4.0, 9.0, 15.0]
    );
}

#[test]
fn softmax_matches_closed_form() {
    let _g = lock();
    let s = cpu();
    // softmax([0, ln 3]) = [1/4, 3/4].
    let x = f32s(&[0.0, 3f32.ln(), 0.0, 0.0], &[2, 2]);
    for precise in [false, true] {
        let y = ops::softmax(&x, &[1], precise, s).unwrap();
        assert_close(&read_f32(&y), &[0.25, 0.75, 0.5, 0.5], TOL);
    }
    let col = ops::softmax(&x, &[0], false, s).unwrap();
    // Column 1: softmax([ln 3, 0]) = [3/4, 1/4].
    assert_close(&read_f32(&col), &[0.5, 0.75, 0.5, 0.25], TOL);
}

#[test]
fn sort_and_argsort() {
    let _g = lock();
    let s = cpu();
    let x = f32s(&[3.0, 1.0, 2.0, 0.0, 5.0, 4.0], &[2, 3]);
    assert_eq!(
        read_f32(&ops::sort(&x, 1, s).unwrap()),
        vec![1.0, 2.0, 3.0, 0.0, 4.0, 5.0]
    );
    assert_eq!(
        read_f32(&ops::sort(&x, 0, s).unwrap()),
        vec![0.0, 1.0, 2.0, 3.0, 5.0, 4.0]
    );
    let idx = ops::argsort(&x, -1, s).unwrap();
    assert_eq!(idx.to_vec::<u32>().unwrap(), vec![1, 2, 0, 0, 2, 1]);
}

#[test]
fn partition_places_kth_element() {
    let _g = lock();
    let s = cpu();
    let values = [7.0f32, 2.0, 9.0, 4.0, 1.0, 8.0];
    let x = f32s(&values, &[6]);
    let kth = 2;
    let p = read_f32(&ops::partition(&x, kth, 0, s).unwrap());
    // Sorted: [1, 2, 4, 7, 8, 9] → position 2 holds 4, smaller before, larger after.
    assert_eq!(p[2], 4.0);
    assert!(p[..2].iter().all(|&v| v < 4.0), "{p:?}");
    assert!(p[3..].iter().all(|&v| v > 4.0), "{p:?}");
    let ap = ops::argpartition(&x, kth, 0, s)
        .unwrap()
        .to_vec::<u32>()
        .unwrap();
    assert_eq!(ap[2], 3, "index of 4.0 in the input");
    let mut seen = ap.clone();
    seen.sort_unstable();
    assert_eq!(seen, vec![0, 1, 2, 3, 4, 5]);
    assert!(ap[..2].iter().all(|&i| values[i as usize] < 4.0));
}
