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

/// Whether MLX runs on CUDA here, and a stream there (else the CPU's): the custom CUDA kernels' tests.
fn cuda_or_cpu() -> (bool, mlx::Stream) {
    let on_cuda = mlx::is_available(mlx::DeviceType::Gpu) && !cfg!(target_os = "macos");
    let s = if on_cuda {
        mlx::Stream::new_any_thread(mlx::DeviceType::Gpu).unwrap()
    } else {
        cpu()
    };
    (on_cuda, s)
}

/// Deterministic values in [-1, 1) (a small LCG: no RNG state shared with other tests).
fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// `fast::decode_attention` against the ops it replaces (MLX's rope, a slice update of each cache, attention
/// over the written rows), on MLX's CUDA backend: the output and the cache row it writes through. Elsewhere
/// the kernel does not exist and the call must fail cleanly.
#[test]
fn decode_attention_matches_rope_cache_write_and_attention() {
    let _g = lock();
    let (on_cuda, s) = cuda_or_cpu();
    // (batch, q heads, kv heads, head dim, cache rows, row written, dtype, freqs, traditional)
    let cases = [
        (1, 4, 2, 16, 64, 0, Dtype::Float32, true, false),
        (1, 32, 8, 64, 640, 5, Dtype::Bfloat16, true, false),
        (1, 32, 8, 64, 640, 300, Dtype::Float32, true, false),
        (2, 9, 3, 64, 512, 200, Dtype::Float16, false, false),
        (1, 8, 8, 128, 512, 129, Dtype::Bfloat16, false, true),
    ];
    for (case, &(b, hq, hk, d, rows, row, dtype, with_freqs, traditional)) in
        cases.iter().enumerate()
    {
        let heads_total = hq + 2 * hk;
        // Heads as the export makes them: a [B, 1, H*D] product viewed as [B, H, 1, D].
        let qkv = Array::from_slice(
            &pseudo_random((b * heads_total * d) as usize, case as u64),
            &[b, 1, heads_total * d],
        )
        .unwrap();
        let qkv = mlx::ops::astype(&qkv, dtype, s).unwrap();
        let heads = mlx::ops::reshape(&qkv, &[b, 1, heads_total, d], s).unwrap();
        let heads = mlx::ops::transpose(&heads, &[0, 2, 1, 3], s).unwrap();
        let cache = |seed: u64| {
            // Earlier rows hold values; the row written and those after it hold 7s (must not be read).
            let mut values = pseudo_random((b * hk * rows * d) as usize, seed);
            for (i, v) in values.iter_mut().enumerate() {
                if (i / d as usize) % rows as usize >= row as usize {
                    *v = 7.0;
                }
            }
            let a = Array::from_slice(&values, &[b, hk, rows, d]).unwrap();
            let a = mlx::ops::astype(&a, dtype, s).unwrap();
            a.eval().unwrap();
            a
        };
        let freqs_values: Vec<f32> = (0..d / 2)
            .map(|i| 10000f32.powf(2.0 * i as f32 / d as f32))
            .collect();
        let freqs = f32s(&freqs_values, &[d / 2]);
        let freqs = with_freqs.then_some(&freqs);
        let base = if with_freqs { None } else { Some(10000.0) };
        let offset = Array::scalar_i32(row + 3).unwrap(); // the rope position need not be the row
        let start = Array::scalar_i32(row).unwrap();
        let scale = 1.0 / (d as f32).sqrt();

        // Reference: the unfused block.
        let part = |x: &Array, from: i32, to: i32| {
            mlx::ops::slice(x, &[0, from, 0, 0], &[b, to, 1, d], &[1, 1, 1, 1], s).unwrap()
        };
        let rotated = fast::rope(
            &part(&heads, 0, hq + hk),
            d,
            traditional,
            base,
            1.0,
            RopeOffset::Array(&offset),
            freqs,
            s,
        )
        .unwrap();
        let (q, k, v) = (
            part(&rotated, 0, hq),
            part(&rotated, hq, hq + hk),
            part(&heads, hq + hk, heads_total),
        );
        let written = |c: &Array, new: &Array| {
            let updated = mlx::ops::slice_update(
                c,
                new,
                &[0, 0, row, 0],
                &[b, hk, row + 1, d],
                &[1, 1, 1, 1],
                s,
            )
            .unwrap();
            mlx::ops::slice(
                &updated,
                &[0, 0, 0, 0],
                &[b, hk, row + 1, d],
                &[1, 1, 1, 1],
                s,
            )
            .unwrap()
        };
        let (k_ref, v_ref) = (written(&cache(100), &k), written(&cache(200), &v));
        let want =
            fast::scaled_dot_product_attention(&q, &k_ref, &v_ref, scale, "causal", None, None, s)
                .unwrap();

        let (k_cache, v_cache) = (cache(100), cache(200));
        let params = fast::DecodeAttention {
            q_heads: hq,
            kv_heads: hk,
            traditional,
            rope_scale: 1.0,
            base: 10000.0,
            attention_scale: scale,
        };
        let got = fast::decode_attention(
            &heads, &k_cache, &v_cache, &offset, &start, freqs, &params, s,
        )
        .and_then(|out| {
            out.eval()?;
            Ok(out)
        });
        if !on_cuda {
            let err = got.expect_err("the kernel exists only on CUDA");
            assert!(!err.to_string().is_empty());
            return;
        }
        let got = got.unwrap();
        assert_eq!(got.shape(), vec![b, hq, 1, d]);
        let f32_of = |a: &Array| read_f32(&mlx::ops::astype(a, Dtype::Float32, s).unwrap());
        let tolerance = if dtype == Dtype::Float32 { 1e-4 } else { 2e-2 };
        assert_close(&f32_of(&got), &f32_of(&want), tolerance);
        // The caches now hold the reference's rows 0..=row (written through the inputs); the rotated k may
        // differ from MLX's rope kernel in the last bit of its cos / sin.
        let rows_of = |c: &Array| {
            f32_of(
                &mlx::ops::slice(c, &[0, 0, 0, 0], &[b, hk, row + 1, d], &[1, 1, 1, 1], s).unwrap(),
            )
        };
        assert_close(&rows_of(&k_cache), &f32_of(&k_ref), tolerance);
        assert_eq!(rows_of(&v_cache), f32_of(&v_ref), "case {case}: v cache");
    }
}

/// `fast::residual_rms_norm` against the add and `rms_norm` it replaces, on MLX's CUDA backend (elsewhere the
/// kernel does not exist and the call must fail cleanly).
#[test]
fn residual_rms_norm_matches_add_then_rms_norm() {
    let _g = lock();
    let (on_cuda, s) = cuda_or_cpu();
    for (case, (shape, dtype)) in [
        (vec![1, 1, 2048], Dtype::Bfloat16),
        (vec![1, 5, 576], Dtype::Float32),
        (vec![2, 3, 4096], Dtype::Float16),
        (vec![7, 100], Dtype::Bfloat16),
    ]
    .into_iter()
    .enumerate()
    {
        let n: i32 = shape.iter().product();
        let hidden = *shape.last().unwrap();
        let make = |seed: u64, shape: &[i32], count: i32| {
            let a = Array::from_slice(&pseudo_random(count as usize, seed), shape).unwrap();
            mlx::ops::astype(&a, dtype, s).unwrap()
        };
        let (a, b) = (
            make(10 + case as u64, &shape, n),
            make(20 + case as u64, &shape, n),
        );
        let weight = make(30 + case as u64, &[hidden], hidden);
        let eps = 1e-5;
        let got = fast::residual_rms_norm(&a, &b, &weight, eps, s).and_then(|(sum, normed)| {
            mlx::eval(&[&sum, &normed])?;
            Ok((sum, normed))
        });
        if !on_cuda {
            assert!(got.is_err(), "the kernel exists only on CUDA");
            return;
        }
        let (sum, normed) = got.unwrap();
        let want_sum = mlx::ops::binary(mlx::ops::BinaryOp::Add, &a, &b, s).unwrap();
        let want_normed = fast::rms_norm(&want_sum, Some(&weight), eps, s).unwrap();
        let f32_of = |x: &Array| read_f32(&mlx::ops::astype(x, Dtype::Float32, s).unwrap());
        assert_eq!(sum.shape(), shape);
        assert_eq!(
            f32_of(&sum),
            f32_of(&want_sum),
            "case {case}: the sum is MLX's add"
        );
        let tolerance = if dtype == Dtype::Float32 { 1e-5 } else { 2e-2 };
        assert_close(&f32_of(&normed), &f32_of(&want_normed), tolerance);
    }
}
