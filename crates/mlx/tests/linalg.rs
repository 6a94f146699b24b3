//! Matmuls, quantization and convolutions (channels-last).
mod common;

use common::*;
use mlx::ops::{self, Quantization};
use mlx::{Array, Dtype};

const AFFINE_4BIT: Quantization<'static> = Quantization {
    group_size: 32,
    bits: 4,
    mode: "affine",
};

/// Rows `[0..16, 0..16]` and twice that: every group spans exactly 0..15 (scale 1, bias 0)
/// or 0..30 (scale 2, bias 0), so 4-bit affine quantization is lossless.
fn exact_weights() -> (Vec<f32>, Array) {
    let row: Vec<f32> = (0..32).map(|i| (i % 16) as f32).collect();
    let mut values = row.clone();
    values.extend(row.iter().map(|v| v * 2.0));
    let w = f32s(&values, &[2, 32]);
    (values, w)
}

#[test]
fn matmul_and_addmm() {
    let _g = lock();
    let s = cpu();
    let a = f32s(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let b = f32s(&[5.0, 6.0, 7.0, 8.0], &[2, 2]);
    assert_eq!(
        read_f32(&ops::matmul(&a, &b, s).unwrap()),
        vec![19.0, 22.0, 43.0, 50.0]
    );
    assert!(ops::matmul(&a, &f32s(&[1.0; 3], &[3, 1]), s).is_err());
    let row = f32s(&[1.0, 2.0], &[1, 2]);
    let col = f32s(&[3.0, 4.0], &[2, 1]);
    let c = f32s(&[1.0], &[1, 1]);
    // 2 * (1*3 + 2*4) + 3 * 1 = 25.
    assert_eq!(
        read_f32(&ops::addmm(&c, &row, &col, 2.0, 3.0, s).unwrap()),
        vec![25.0]
    );
}

#[test]
fn quantize_dequantize_round_trip_is_exact_for_grid_values() {
    let _g = lock();
    let s = cpu();
    let (values, w) = exact_weights();
    let q = ops::quantize(&w, &AFFINE_4BIT, s).unwrap();
    assert_eq!(q.weights.dtype(), Dtype::Uint32);
    assert_eq!(
        q.weights.shape(),
        vec![2, 4],
        "32 4-bit values pack into 4 uint32"
    );
    assert_eq!(q.scales.shape(), vec![2, 1]);
    let biases = q.biases.as_ref().expect("affine mode has biases");
    // One grid step per level: |scale| is 1 and 2. MLX may anchor the grid at either end
    // (scale < 0 with bias = group max), so check the step size and the matching anchor.
    let scales = read_f32(&q.scales);
    let anchors = read_f32(biases);
    for (row, (&scale, &bias)) in scales.iter().zip(&anchors).enumerate() {
        let step = (row + 1) as f32;
        assert!(
            (scale.abs() - step).abs() < 1e-6,
            "row {row}: scale {scale}"
        );
        let expected_bias = if scale > 0.0 { 0.0 } else { 15.0 * step };
        assert!(
            (bias - expected_bias).abs() < 1e-6,
            "row {row}: bias {bias}, scale {scale}"
        );
    }
    let back = ops::dequantize(
        &q.weights,
        &q.scales,
        Some(biases),
        &AFFINE_4BIT,
        None,
        None,
        s,
    )
    .unwrap();
    assert_eq!(back.shape(), vec![2, 32]);
    assert_close(&read_f32(&back), &values, 1e-6);
    let as_f16 = ops::dequantize(
        &q.weights,
        &q.scales,
        Some(biases),
        &AFFINE_4BIT,
        None,
        Some(Dtype::Float16),
        s,
    )
    .unwrap();
    assert_eq!(as_f16.dtype(), Dtype::Float16);
    let bad = Quantization {
        group_size: 33,
        ..AFFINE_4BIT
    };
    assert!(ops::quantize(&w, &bad, s).is_err());
}

#[test]
fn quantized_matmul_matches_dense_product() {
    let _g = lock();
    let s = cpu();
    let (_, w) = exact_weights();
    let q = ops::quantize(&w, &AFFINE_4BIT, s).unwrap();
    let x = f32s(&[1.0; 32], &[1, 32]);
    // Row sums: 2 * (0 + ... + 15) = 240, and twice that.
    let y = ops::quantized_matmul(
        &x,
        &q.weights,
        &q.scales,
        q.biases.as_ref(),
        true,
        &AFFINE_4BIT,
        s,
    )
    .unwrap();
    assert_eq!(y.shape(), vec![1, 2]);
    assert_close(&read_f32(&y), &[240.0, 480.0], 1e-6);
    // transpose=false: [1, 2] @ dequant(w) [2, 32] = row0 + row1 = 3 * row0.
    let x2 = f32s(&[1.0, 1.0], &[1, 2]);
    let y2 = ops::quantized_matmul(
        &x2,
        &q.weights,
        &q.scales,
        q.biases.as_ref(),
        false,
        &AFFINE_4BIT,
        s,
    )
    .unwrap();
    let expected: Vec<f32> = (0..32).map(|i| 3.0 * (i % 16) as f32).collect();
    assert_close(&read_f32(&y2), &expected, 1e-6);
}

#[test]
fn gather_qmm_selects_experts() {
    let _g = lock();
    let s = cpu();
    let (_, w) = exact_weights();
    let two = Array::scalar_f32(2.0).unwrap();
    let w2 = ops::binary(ops::BinaryOp::Multiply, &w, &two, s).unwrap();
    let experts = ops::stack(&[&w, &w2], 0, s).unwrap(); // [2, 2, 32]
    let q = ops::quantize(&experts, &AFFINE_4BIT, s).unwrap();
    assert_eq!(q.weights.shape(), vec![2, 2, 4]);
    let x = f32s(&[1.0; 32], &[1, 1, 32]);
    let rhs = Array::from_slice(&[1u32], &[1]).unwrap();
    let y = ops::gather_qmm(
        &x,
        &q.weights,
        &q.scales,
        q.biases.as_ref(),
        None,
        Some(&rhs),
        true,
        &AFFINE_4BIT,
        false,
        s,
    )
    .unwrap();
    assert_eq!(y.shape(), vec![1, 1, 2]);
    assert_close(&read_f32(&y), &[480.0, 960.0], 1e-6);
    let rhs0 = Array::from_slice(&[0u32], &[1]).unwrap();
    let y0 = ops::gather_qmm(
        &x,
        &q.weights,
        &q.scales,
        q.biases.as_ref(),
        None,
        Some(&rhs0),
        true,
        &AFFINE_4BIT,
        true,
        s,
    )
    .unwrap();
    assert_close(&read_f32(&y0), &[240.0, 480.0], 1e-6);
}

#[test]
fn gather_mm_selects_batches() {
    let _g = lock();
    let s = cpu();
    let a = f32s(&[1.0, 2.0], &[1, 1, 2]);
    // Expert 0 = identity, expert 1 = swap.
    let b = f32s(&[1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0], &[2, 2, 2]);
    let rhs = Array::from_slice(&[1u32], &[1]).unwrap();
    let y = ops::gather_mm(&a, &b, None, Some(&rhs), false, s).unwrap();
    assert_eq!(read_f32(&y), vec![2.0, 1.0]);
    let rhs0 = Array::from_slice(&[0u32], &[1]).unwrap();
    let y0 = ops::gather_mm(&a, &b, None, Some(&rhs0), true, s).unwrap();
    assert_eq!(read_f32(&y0), vec![1.0, 2.0]);
}

#[test]
fn conv1d_2d_3d() {
    let _g = lock();
    let s = cpu();
    // x = [1, 2, 3, 4] as [N=1, L=4, C=1]; kernel [1, 10] as [C_out=1, K=2, C_in=1].
    let x = f32s(&[1.0, 2.0, 3.0, 4.0], &[1, 4, 1]);
    let w = f32s(&[1.0, 10.0], &[1, 2, 1]);
    // Cross-correlation: y[i] = x[i] + 10 x[i+1].
    let y = ops::conv1d(&x, &w, 1, 0, 1, 1, s).unwrap();
    assert_eq!(y.shape(), vec![1, 3, 1]);
    assert_eq!(read_f32(&y), vec![21.0, 32.0, 43.0]);
    let y_stride = ops::conv1d(&x, &w, 2, 0, 1, 1, s).unwrap();
    assert_eq!(read_f32(&y_stride), vec![21.0, 43.0]);
    // Padding 1: [0,1,2,3,4,0] → [10, 21, 32, 43, 4].
    let y_pad = ops::conv1d(&x, &w, 1, 1, 1, 1, s).unwrap();
    assert_eq!(read_f32(&y_pad), vec![10.0, 21.0, 32.0, 43.0, 4.0]);
    // Dilation 2: y[i] = x[i] + 10 x[i+2].
    let y_dil = ops::conv1d(&x, &w, 1, 0, 2, 1, s).unwrap();
    assert_eq!(read_f32(&y_dil), vec![31.0, 42.0]);

    // Grouped: 2 channels, 2 groups, each output channel sees only its own input channel.
    let x2 = f32s(&[1.0, 100.0, 2.0, 200.0], &[1, 2, 2]);
    let w2 = f32s(&[1.0, 1.0, 1.0, -1.0], &[2, 2, 1]);
    let g = ops::conv1d(&x2, &w2, 1, 0, 1, 2, s).unwrap();
    assert_eq!(read_f32(&g), vec![3.0, -100.0]);

    let img = f32s(&[1.0, 2.0, 3.0, 4.0], &[1, 2, 2, 1]);
    let k = f32s(&[1.0, 0.0, 0.0, 1.0], &[1, 2, 2, 1]);
    assert_eq!(
        read_f32(&ops::conv2d(&img, &k, [1, 1], [0, 0], [1, 1], 1, s).unwrap()),
        vec![5.0]
    );
    let vol = f32s(&[1.0; 8], &[1, 2, 2, 2, 1]);
    let k3 = f32s(&[1.0; 8], &[1, 2, 2, 2, 1]);
    assert_eq!(
        read_f32(&ops::conv3d(&vol, &k3, [1, 1, 1], [0, 0, 0], [1, 1, 1], 1, s).unwrap()),
        vec![8.0]
    );
    assert!(
        ops::conv1d(&x, &f32s(&[1.0; 4], &[1, 2, 2]), 1, 0, 1, 1, s).is_err(),
        "channel mismatch"
    );
}

#[test]
fn transposed_convolutions() {
    let _g = lock();
    let s = cpu();
    // Transposed conv scatters: y[i*stride + k] += x[i] * w[k] (PyTorch ConvTranspose semantics).
    let x = f32s(&[1.0, 2.0], &[1, 2, 1]);
    let w = f32s(&[1.0, 10.0], &[1, 2, 1]);
    let y = ops::conv_transpose1d(&x, &w, 1, 0, 1, 0, 1, s).unwrap();
    assert_eq!(read_f32(&y), vec![1.0, 12.0, 20.0]);
    let y2 = ops::conv_transpose1d(&x, &w, 2, 0, 1, 0, 1, s).unwrap();
    assert_eq!(read_f32(&y2), vec![1.0, 10.0, 2.0, 20.0]);
    let y3 = ops::conv_transpose1d(&x, &w, 2, 0, 1, 1, 1, s).unwrap();
    assert_eq!(read_f32(&y3), vec![1.0, 10.0, 2.0, 20.0, 0.0]);

    let px = f32s(&[2.0], &[1, 1, 1, 1]);
    let pw = f32s(&[1.0, 2.0, 3.0, 4.0], &[1, 2, 2, 1]);
    let p = ops::conv_transpose2d(&px, &pw, [1, 1], [0, 0], [1, 1], [0, 0], 1, s).unwrap();
    assert_eq!(p.shape(), vec![1, 2, 2, 1]);
    assert_eq!(read_f32(&p), vec![2.0, 4.0, 6.0, 8.0]);

    let vx = f32s(&[1.0], &[1, 1, 1, 1, 1]);
    let vw = f32s(&[3.0, 4.0], &[1, 1, 1, 2, 1]);
    let v =
        ops::conv_transpose3d(&vx, &vw, [1, 1, 1], [0, 0, 0], [1, 1, 1], [0, 0, 0], 1, s).unwrap();
    assert_eq!(v.shape(), vec![1, 1, 1, 2, 1]);
    assert_eq!(read_f32(&v), vec![3.0, 4.0]);
}
