//! mlx::core::fast: norms, RoPE, attention, custom kernels.
mod common;

use common::*;
use mlx::fast::{self, MetalKernel, MetalKernelCall, RopeOffset, TemplateArg};
use mlx::{Array, Dtype};

#[test]
fn rms_norm_with_and_without_weight() {
    let _g = lock();
    let s = cpu();
    // [3, 4]: mean square 12.5 → divide by √12.5.
    let x = f32s(&[3.0, 4.0], &[1, 2]);
    let r = 12.5f32.sqrt();
    let y = fast::rms_norm(&x, None, 0.0, s).unwrap();
    assert_close(&read_f32(&y), &[3.0 / r, 4.0 / r], TOL);
    let w = f32s(&[2.0, 0.5], &[2]);
    let yw = fast::rms_norm(&x, Some(&w), 0.0, s).unwrap();
    assert_close(&read_f32(&yw), &[6.0 / r, 2.0 / r], TOL);
    // eps enters under the root: √(12.5 + 3.5) = 4.
    let ye = fast::rms_norm(&x, None, 3.5, s).unwrap();
    assert_close(&read_f32(&ye), &[0.75, 1.0], TOL);
}

#[test]
fn layer_norm_with_affine() {
    let _g = lock();
    let s = cpu();
    // [1, 2, 3]: mean 2, variance 2/3 → (x - 2) / √(2/3).
    let x = f32s(&[1.0, 2.0, 3.0], &[1, 3]);
    let d = (2.0f32 / 3.0).sqrt();
    let y = fast::layer_norm(&x, None, None, 0.0, s).unwrap();
    assert_close(&read_f32(&y), &[-1.0 / d, 0.0, 1.0 / d], TOL);
    let w = f32s(&[1.0, 1.0, 2.0], &[3]);
    let b = f32s(&[0.0, 5.0, 0.0], &[3]);
    let yab = fast::layer_norm(&x, Some(&w), Some(&b), 0.0, s).unwrap();
    assert_close(&read_f32(&yab), &[-1.0 / d, 5.0, 2.0 / d], TOL);
}

#[test]
fn rope_rotates_pairs_by_position() {
    let _g = lock();
    let s = cpu();
    // One head, one position, dims = 2: the pair (x0, x1) = (1, 0) rotates by
    // theta = offset * base^0 = offset radians.
    let x = f32s(&[1.0, 0.0], &[1, 1, 1, 2]);
    let y0 = fast::rope(
        &x,
        2,
        false,
        Some(10000.0),
        1.0,
        RopeOffset::Int(0),
        None,
        s,
    )
    .unwrap();
    assert_close(&read_f32(&y0), &[1.0, 0.0], TOL);
    let y1 = fast::rope(
        &x,
        2,
        false,
        Some(10000.0),
        1.0,
        RopeOffset::Int(1),
        None,
        s,
    )
    .unwrap();
    assert_close(&read_f32(&y1), &[1f32.cos(), 1f32.sin()], TOL);
    let offset = Array::scalar_i32(1).unwrap();
    let ya = fast::rope(
        &x,
        2,
        true,
        Some(10000.0),
        1.0,
        RopeOffset::Array(&offset),
        None,
        s,
    )
    .unwrap();
    assert_close(&read_f32(&ya), &[1f32.cos(), 1f32.sin()], TOL);
    // scale multiplies the position: 0.5 * 2 = 1 radian.
    let ys = fast::rope(
        &x,
        2,
        false,
        Some(10000.0),
        0.5,
        RopeOffset::Int(2),
        None,
        s,
    )
    .unwrap();
    assert_close(&read_f32(&ys), &[1f32.cos(), 1f32.sin()], TOL);
    // With explicit freqs (a period per pair): theta = position / freq = 1 / 0.5 = 2 radians.
    let freqs = f32s(&[0.5], &[1]);
    let yf = fast::rope(&x, 2, false, None, 1.0, RopeOffset::Int(1), Some(&freqs), s).unwrap();
    assert_close(&read_f32(&yf), &[2f32.cos(), 2f32.sin()], TOL);
    assert!(
        fast::rope(
            &x,
            2,
            false,
            Some(10000.0),
            1.0,
            RopeOffset::Int(1),
            Some(&freqs),
            s
        )
        .is_err(),
        "base and freqs together"
    );
}

#[test]
fn attention_softmax_weights_values() {
    let _g = lock();
    let s = cpu();
    let q = f32s(&[1.0, 0.0], &[1, 1, 1, 2]);
    let k = f32s(&[1.0, 0.0, 0.0, 0.0], &[1, 1, 2, 2]);
    let v = f32s(&[1.0, 0.0, 0.0, 1.0], &[1, 1, 2, 2]);
    // Scores [1, 0] → weights [e, 1] / (e + 1).
    let e = std::f32::consts::E;
    let expected = [e / (e + 1.0), 1.0 / (e + 1.0)];
    let out = fast::scaled_dot_product_attention(&q, &k, &v, 1.0, "", None, None, s).unwrap();
    assert_eq!(out.shape(), vec![1, 1, 1, 2]);
    assert_close(&read_f32(&out), &expected, TOL);

    // Causal, 2 queries over 2 keys: query 0 sees key 0 only.
    let q2 = f32s(&[1.0, 0.0, 1.0, 0.0], &[1, 1, 2, 2]);
    let causal =
        fast::scaled_dot_product_attention(&q2, &k, &v, 1.0, "causal", None, None, s).unwrap();
    assert_close(
        &read_f32(&causal),
        &[1.0, 0.0, expected[0], expected[1]],
        TOL,
    );
    // Causal masks are lower-right aligned: 1 query over 2 keys sees both.
    let causal1 =
        fast::scaled_dot_product_attention(&q, &k, &v, 1.0, "causal", None, None, s).unwrap();
    assert_close(&read_f32(&causal1), &expected, TOL);

    // Bool mask: true = attend.
    let keep_first = bools(&[true, false], &[1, 1, 1, 2]);
    let masked =
        fast::scaled_dot_product_attention(&q, &k, &v, 1.0, "", Some(&keep_first), None, s)
            .unwrap();
    assert_close(&read_f32(&masked), &[1.0, 0.0], TOL);
    // Additive mask: +1 on key 1 equalises the scores.
    let additive = f32s(&[0.0, 1.0], &[1, 1, 1, 2]);
    let added =
        fast::scaled_dot_product_attention(&q, &k, &v, 1.0, "", Some(&additive), None, s).unwrap();
    assert_close(&read_f32(&added), &[0.5, 0.5], TOL);
    // scale halves the scores: [0.5, 0].
    let half = fast::scaled_dot_product_attention(&q, &k, &v, 0.5, "", None, None, s).unwrap();
    let h = 0.5f32.exp();
    assert_close(&read_f32(&half), &[h / (h + 1.0), 1.0 / (h + 1.0)], TOL);

    // Grouped-query attention: 2 query heads share 1 KV head.
    let gq = f32s(&[1.0, 0.0, 0.0, 0.0], &[1, 2, 1, 2]);
    let g = fast::scaled_dot_product_attention(&gq, &k, &v, 1.0, "", None, None, s).unwrap();
    assert_eq!(g.shape(), vec![1, 2, 1, 2]);
    assert_close(&read_f32(&g), &[expected[0], expected[1], 0.5, 0.5], TOL);
    assert!(
        fast::scaled_dot_product_attention(&q, &k, &v, 1.0, "sideways", None, None, s).is_err()
    );
}

#[test]
fn metal_kernel_fails_cleanly_without_metal() {
    let _g = lock();
    let s = cpu();
    let kernel = MetalKernel::new(
        "etmlx_copy",
        &["inp"],
        &["out"],
        "uint i = thread_position_in_grid.x; out[i] = inp[i];",
        "",
        true,
        false,
    );
    let kernel = match kernel {
        // Non-Metal builds may already refuse at creation.
        Err(err) => {
            eprintln!("metal_kernel refused at creation: {err}");
            assert!(!err.to_string().is_empty());
            return;
        }
        Ok(kernel) => kernel,
    };
    let x = f32s(&[1.0, 2.0], &[2]);
    let shapes = vec![vec![2]];
    let call = MetalKernelCall {
        inputs: &[&x],
        output_shapes: &shapes,
        output_dtypes: &[Dtype::Float32],
        grid: [2, 1, 1],
        threadgroup: [2, 1, 1],
        template_args: &[("T", TemplateArg::Dtype(Dtype::Float32))],
        init_value: None,
    };
    let result = kernel.call(&call, s).and_then(|outs| {
        mlx::eval(&outs.iter().collect::<Vec<_>>())?;
        Ok(outs)
    });
    if mlx::is_available(mlx::DeviceType::Gpu) && cfg!(target_os = "macos") {
        return; // Real Metal: a success is legitimate there.
    }
    let err = result.expect_err("metal kernels cannot run without Metal");
    eprintln!("metal_kernel refused at call: {err}");
    assert!(!err.to_string().is_empty());
    let mismatched = MetalKernelCall {
        output_dtypes: &[],
        ..call
    };
    assert!(kernel.call(&mismatched, s).is_err());
}
