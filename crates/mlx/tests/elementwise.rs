//! Element-wise ops against hand-computed values (closed forms / known constants).
mod common;

use common::*;
use mlx::ops::{self, BinaryOp, UnaryOp};
use mlx::{Array, Dtype};
use std::f32::consts::{E, FRAC_PI_2, FRAC_PI_4, LN_2, PI};

fn unary_f32(op: UnaryOp, input: &[f32]) -> Vec<f32> {
    let x = f32s(input, &[input.len() as i32]);
    read_f32(&ops::unary(op, &x, cpu()).unwrap())
}

#[test]
fn unary_float_ops_match_closed_forms() {
    let _g = lock();
    let cases: &[(UnaryOp, &[f32], &[f32])] = &[
        (UnaryOp::Abs, &[-1.5, 2.0, 0.0], &[1.5, 2.0, 0.0]),
        (UnaryOp::Negative, &[-1.5, 2.0], &[1.5, -2.0]),
        (UnaryOp::Sign, &[-3.0, 0.0, 4.5], &[-1.0, 0.0, 1.0]),
        (UnaryOp::Floor, &[-1.5, 1.5, 2.0], &[-2.0, 1.0, 2.0]),
        (UnaryOp::Ceil, &[-1.5, 1.5, 2.0], &[-1.0, 2.0, 2.0]),
        (UnaryOp::Trunc, &[-1.7, 1.7, -0.2], &[-1.0, 1.0, 0.0]),
        (UnaryOp::Square, &[-3.0, 0.5], &[9.0, 0.25]),
        (UnaryOp::Sqrt, &[4.0, 9.0, 0.0], &[2.0, 3.0, 0.0]),
        (UnaryOp::Rsqrt, &[4.0, 0.25], &[0.5, 2.0]),
        (UnaryOp::Reciprocal, &[4.0, -0.5], &[0.25, -2.0]),
        (UnaryOp::Exp, &[0.0, 1.0, LN_2], &[1.0, E, 2.0]),
        (UnaryOp::Expm1, &[0.0, LN_2], &[0.0, 1.0]),
        (UnaryOp::Log, &[1.0, E, 0.5], &[0.0, 1.0, -LN_2]),
        (UnaryOp::Log2, &[8.0, 0.5], &[3.0, -1.0]),
        (UnaryOp::Log10, &[100.0, 0.001], &[2.0, -3.0]),
        (UnaryOp::Log1p, &[0.0, E - 1.0], &[0.0, 1.0]),
        (
            UnaryOp::Sin,
            &[0.0, FRAC_PI_2, -FRAC_PI_2],
            &[0.0, 1.0, -1.0],
        ),
        (UnaryOp::Cos, &[0.0, PI], &[1.0, -1.0]),
        (UnaryOp::Tan, &[0.0, FRAC_PI_4], &[0.0, 1.0]),
        (UnaryOp::Arcsin, &[0.0, 1.0], &[0.0, FRAC_PI_2]),
        (UnaryOp::Arccos, &[1.0, 0.0], &[0.0, FRAC_PI_2]),
        (UnaryOp::Arctan, &[0.0, 1.0], &[0.0, FRAC_PI_4]),
        // sinh(1) = (e - 1/e)/2, cosh(1) = (e + 1/e)/2, tanh(0.5) = (e - 1)/(e + 1).
        (UnaryOp::Sinh, &[0.0, 1.0], &[0.0, 1.175_201_2]),
        (UnaryOp::Cosh, &[0.0, 1.0], &[1.0, 1.543_080_6]),
        (UnaryOp::Tanh, &[0.0, 0.5], &[0.0, 0.462_117_16]),
        // arcsinh(1) = ln(1 + √2), arccosh(2) = ln(2 + √3), arctanh(0.5) = ln(3)/2.
        (UnaryOp::Arcsinh, &[0.0, 1.0], &[0.0, 0.881_373_6]),
        (UnaryOp::Arccosh, &[1.0, 2.0], &[0.0, 1.316_958]),
        (UnaryOp::Arctanh, &[0.0, 0.5], &[0.0, 0.549_306_15]),
        // erf(1) from tables; erf is odd.
        (
            UnaryOp::Erf,
            &[0.0, 1.0, -1.0],
            &[0.0, 0.842_700_8, -0.842_700_8],
        ),
        // sigmoid(ln 3) = 3/4.
        (UnaryOp::Sigmoid, &[0.0, 1.098_612_3], &[0.5, 0.75]),
    ];
    for (op, input, expected) in cases {
        let actual = unary_f32(*op, input);
        assert_eq!(actual.len(), expected.len(), "{op:?}");
        for (a, e) in actual.iter().zip(expected.iter()) {
            assert!(
                (a - e).abs() <= TOL * (1.0 + e.abs()),
                "{op:?}: got {actual:?}, expected {expected:?}"
            );
        }
    }
}

#[test]
fn unary_logical_and_bitwise() {
    let _g = lock();
    let s = cpu();
    let b = bools(&[true, false], &[2]);
    assert_eq!(
        read_bool(&ops::unary(UnaryOp::LogicalNot, &b, s).unwrap()),
        vec![false, true]
    );
    let i = i32s(&[5, 0, -1], &[3]);
    // Two's complement: !5 = -6, !0 = -1, !-1 = 0.
    assert_eq!(
        read_i32(&ops::unary(UnaryOp::BitwiseInvert, &i, s).unwrap()),
        vec![-6, -1, 0]
    );
    let f = f32s(&[1.0], &[1]);
    assert!(ops::unary(UnaryOp::BitwiseInvert, &f, s).is_err());
}

#[test]
fn round_is_half_to_even_with_decimals() {
    let _g = lock();
    let x = f32s(&[0.5, 1.5, 2.5, -2.5, 2.7], &[5]);
    assert_eq!(
        read_f32(&ops::round(&x, 0, cpu()).unwrap()),
        vec![0.0, 2.0, 2.0, -2.0, 3.0]
    );
    let y = f32s(&[1.26, -1.23456], &[2]);
    assert_close(
        &read_f32(&ops::round(&y, 2, cpu()).unwrap()),
        &[1.26, -1.23],
        1e-6,
    );
}

fn binary_f32(op: BinaryOp, a: &[f32], b: &[f32]) -> Vec<f32> {
    let x = f32s(a, &[a.len() as i32]);
    let y = f32s(b, &[b.len() as i32]);
    read_f32(&ops::binary(op, &x, &y, cpu()).unwrap())
}

#[test]
fn binary_float_arithmetic() {
    let _g = lock();
    assert_eq!(
        binary_f32(BinaryOp::Add, &[1.0, 2.0], &[0.5, -3.0]),
        vec![1.5, -1.0]
    );
    assert_eq!(
        binary_f32(BinaryOp::Subtract, &[1.0, 2.0], &[0.5, -3.0]),
        vec![0.5, 5.0]
    );
    assert_eq!(
        binary_f32(BinaryOp::Multiply, &[1.5, 2.0], &[2.0, -3.0]),
        vec![3.0, -6.0]
    );
    assert_eq!(
        binary_f32(BinaryOp::Divide, &[1.0, -7.0], &[4.0, 2.0]),
        vec![0.25, -3.5]
    );
    // Python: -7.0 // 2.0 == -4.0, 7.0 // -2.0 == -4.0.
    assert_eq!(
        binary_f32(BinaryOp::FloorDivide, &[-7.0, 7.0, 7.0], &[2.0, -2.0, 2.0]),
        vec![-4.0, -4.0, 3.0]
    );
    // Python: -7.0 % 2.0 == 1.0, 7.0 % -2.0 == -1.0.
    assert_eq!(
        binary_f32(BinaryOp::Remainder, &[-7.0, 7.0, 7.5], &[2.0, -2.0, 2.0]),
        vec![1.0, -1.0, 1.5]
    );
    assert_eq!(
        binary_f32(BinaryOp::Power, &[2.0, 9.0], &[3.0, 0.5]),
        vec![8.0, 3.0]
    );
    assert_eq!(
        binary_f32(BinaryOp::Maximum, &[1.0, 5.0], &[3.0, -2.0]),
        vec![3.0, 5.0]
    );
    assert_eq!(
        binary_f32(BinaryOp::Minimum, &[1.0, 5.0], &[3.0, -2.0]),
        vec![1.0, -2.0]
    );
    assert_close(
        &binary_f32(BinaryOp::Arctan2, &[1.0, 1.0], &[1.0, -1.0]),
        &[FRAC_PI_4, 3.0 * FRAC_PI_4],
        TOL,
    );
    // log(e^0 + e^0) = ln 2; log(e^1 + e^1) = 1 + ln 2.
    assert_close(
        &binary_f32(BinaryOp::LogAddExp, &[0.0, 1.0], &[0.0, 1.0]),
        &[LN_2, 1.0 + LN_2],
        TOL,
    );
}

#[test]
fn binary_broadcasts() {
    let _g = lock();
    let a = f32s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let b = f32s(&[10.0, 20.0, 30.0], &[3]);
    let c = ops::binary(BinaryOp::Add, &a, &b, cpu()).unwrap();
    assert_eq!(c.shape(), vec![2, 3]);
    assert_eq!(read_f32(&c), vec![11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
}

#[test]
fn integer_division_floors_and_remainder_follows_divisor() {
    let _g = lock();
    let s = cpu();
    let a = i32s(&[-7, 7, 7], &[3]);
    let b = i32s(&[2, -2, 2], &[3]);
    // MLX 0.32 integer floor_divide has Python semantics: -7 // 2 == -4, 7 // -2 == -4.
    let q = ops::binary(BinaryOp::FloorDivide, &a, &b, s).unwrap();
    assert_eq!(q.dtype(), Dtype::Int32);
    assert_eq!(read_i32(&q), vec![-4, -4, 3]);
    // Python: -7 % 2 == 1, 7 % -2 == -1.
    let r = ops::binary(BinaryOp::Remainder, &a, &b, s).unwrap();
    assert_eq!(read_i32(&r), vec![1, -1, 1]);
    // True division promotes integers to float.
    let d = ops::binary(BinaryOp::Divide, &a, &b, s).unwrap();
    assert_eq!(d.dtype(), Dtype::Float32);
    assert_eq!(read_f32(&d), vec![-3.5, -3.5, 3.5]);
}

#[test]
fn comparisons_and_logic() {
    let _g = lock();
    let s = cpu();
    let a = f32s(&[1.0, 2.0, 3.0], &[3]);
    let b = f32s(&[2.0, 2.0, 2.0], &[3]);
    let cmp = |op| read_bool(&ops::binary(op, &a, &b, s).unwrap());
    assert_eq!(cmp(BinaryOp::Equal), vec![false, true, false]);
    assert_eq!(cmp(BinaryOp::NotEqual), vec![true, false, true]);
    assert_eq!(cmp(BinaryOp::Less), vec![true, false, false]);
    assert_eq!(cmp(BinaryOp::LessEqual), vec![true, true, false]);
    assert_eq!(cmp(BinaryOp::Greater), vec![false, false, true]);
    assert_eq!(cmp(BinaryOp::GreaterEqual), vec![false, true, true]);
    let p = bools(&[true, true, false, false], &[4]);
    let q = bools(&[true, false, true, false], &[4]);
    assert_eq!(
        read_bool(&ops::binary(BinaryOp::LogicalAnd, &p, &q, s).unwrap()),
        vec![true, false, false, false]
    );
    assert_eq!(
        read_bool(&ops::binary(BinaryOp::LogicalOr, &p, &q, s).unwrap()),
        vec![true, true, true, false]
    );
    let x = i32s(&[12], &[1]);
    let y = i32s(&[10], &[1]);
    assert_eq!(
        read_i32(&ops::binary(BinaryOp::BitwiseAnd, &x, &y, s).unwrap()),
        vec![8]
    );
    assert_eq!(
        read_i32(&ops::binary(BinaryOp::BitwiseOr, &x, &y, s).unwrap()),
        vec![14]
    );
    assert_eq!(
        read_i32(&ops::binary(BinaryOp::BitwiseXor, &x, &y, s).unwrap()),
        vec![6]
    );
}

#[test]
fn where_clip_and_astype() {
    let _g = lock();
    let s = cpu();
    let cond = bools(&[true, false, true], &[3]);
    let x = f32s(&[1.0, 2.0, 3.0], &[3]);
    let y = Array::scalar_f32(-1.0).unwrap();
    assert_eq!(
        read_f32(&ops::where_(&cond, &x, &y, s).unwrap()),
        vec![1.0, -1.0, 3.0]
    );

    let v = f32s(&[-5.0, 0.5, 5.0], &[3]);
    let lo = Array::scalar_f32(-1.0).unwrap();
    let hi = Array::scalar_f32(1.0).unwrap();
    assert_eq!(
        read_f32(&ops::clip(&v, Some(&lo), Some(&hi), s).unwrap()),
        vec![-1.0, 0.5, 1.0]
    );
    assert_eq!(
        read_f32(&ops::clip(&v, Some(&lo), None, s).unwrap()),
        vec![-1.0, 0.5, 5.0]
    );
    assert_eq!(
        read_f32(&ops::clip(&v, None, Some(&hi), s).unwrap()),
        vec![-5.0, 0.5, 1.0]
    );
    let per_element = f32s(&[0.0, 0.0, 10.0], &[3]);
    assert_eq!(
        read_f32(&ops::clip(&v, Some(&per_element), None, s).unwrap()),
        vec![0.0, 0.5, 10.0]
    );

    let f = f32s(&[2.7, -2.7, 0.0], &[3]);
    let i = ops::astype(&f, Dtype::Int32, s).unwrap();
    assert_eq!(i.dtype(), Dtype::Int32);
    assert_eq!(read_i32(&i), vec![2, -2, 0]);
    let b = ops::astype(&f, Dtype::Bool, s).unwrap();
    assert_eq!(read_bool(&b), vec![true, true, false]);
    let h = ops::astype(&f32s(&[0.5], &[1]), Dtype::Bfloat16, s).unwrap();
    assert_eq!(
        h.to_bytes().unwrap(),
        half::bf16::from_f32(0.5).to_le_bytes().to_vec()
    );
}

/// The compiled SiLU and SwiGLU kernels compute the closed forms `x / (1 + e^-x)` and `silu(g) * u`, each
/// as one MLX node (the unfused forms take two and three).
#[test]
fn compiled_silu_and_swiglu_match_closed_forms_in_one_node() {
    let _g = lock();
    let gate = [-3.0f32, -0.5, 0.0, 0.75, 2.0, 6.0];
    let up = [2.0f32, -1.0, 5.0, 0.5, -3.0, 1.5];
    let silu = |x: f32| x / (1.0 + (-x).exp());
    let (g, u) = (f32s(&gate, &[2, 3]), f32s(&up, &[2, 3]));
    let s = ops::compiled_silu(&g, cpu()).unwrap();
    let sw = ops::compiled_swiglu(&g, &u, cpu()).unwrap();
    for out in [&s, &sw] {
        let nodes = mlx::graph_primitive_counts(&[out]).unwrap();
        assert_eq!(nodes.len(), 1, "{nodes:?}");
        assert_eq!(nodes[0].1, 1, "{nodes:?}");
    }
    let want: Vec<f32> = gate.iter().map(|&x| silu(x)).collect();
    assert_close(&read_f32(&s), &want, 1e-6);
    let want: Vec<f32> = gate.iter().zip(up).map(|(&x, u)| silu(x) * u).collect();
    assert_close(&read_f32(&sw), &want, 1e-6);
    // A second shape reuses the shapeless trace and still computes elementwise.
    let g1 = f32s(&gate[..4], &[4]);
    assert_close(
        &read_f32(&ops::compiled_silu(&g1, cpu()).unwrap()),
        &gate[..4].iter().map(|&x| silu(x)).collect::<Vec<_>>(),
        1e-6,
    );
}
