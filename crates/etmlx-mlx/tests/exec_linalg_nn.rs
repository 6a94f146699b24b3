//! Executor tests for the linear-algebra / quantization and neural-network op families, on
//! hand-computed values. Each test runs single IR ops through `exec::dispatch` on a graph made
//! only of temp slots, so it checks the executor's own rules (operand resolution, mask casting,
//! alpha/beta handling, the custom-kernel gate), not the exporter.

use etmlx_mlx::exec::Value;
use etmlx_mlx::ir::{IntOrVid, Op, Tid, Vid, VidOrTid};
use etmlx_mlx::ExecError;
use mlx::{Array, Dtype};

mod exec_common;
use exec_common::Harness;

fn assert_close(actual: &[f32], expected: &[f32], tol: f32) {
    assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
    for (a, e) in actual.iter().zip(expected) {
        assert!((a - e).abs() <= tol, "{actual:?} vs {expected:?}");
    }
}

#[test]
fn addmm_without_bias_is_a_plain_matmul_whatever_alpha_and_beta() {
    let mut h = Harness::new();
    h.put_f32(0, &[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    h.put_f32(1, &[5.0, 6.0, 7.0, 8.0], &[2, 2]);
    h.run(Op::Addmm {
        mat1: Tid(0),
        mat2: Tid(1),
        out: Tid(2),
        bias: None,
        alpha: 2.0,
        beta: 0.5,
    })
    .unwrap();
    assert_eq!(h.read_typed(2).2, vec![19.0, 22.0, 43.0, 50.0]);
}

#[test]
fn addmm_with_bias_is_beta_bias_plus_alpha_product() {
    let mut h = Harness::new();
    h.put_f32(0, &[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    h.put_f32(1, &[5.0, 6.0, 7.0, 8.0], &[2, 2]);
    h.put_f32(3, &[1.0, -1.0], &[2]);
    let op = Op::Addmm {
        mat1: Tid(0),
        mat2: Tid(1),
        out: Tid(2),
        bias: Some(Tid(3)),
        alpha: 2.0,
        beta: 0.5,
    };
    h.run(op).unwrap();
    // 0.5·[1, -1] + 2·[[19, 22], [43, 50]]
    assert_eq!(h.read_typed(2).2, vec![38.5, 43.5, 86.5, 99.5]);
}

/// One row of 32 4-bit values packed little-endian into uint32 words (element j of a word is
/// bits 4j..4j+4): every word 0x76543210 holds q = 0..7, so q(i) = i % 8. With scale 0.5 and
/// bias -1 (MLX affine: w = s·q + b), w(i) = 0.5·(i % 8) − 1.
fn put_packed_row(h: &mut Harness, w: u32, scales: u32, biases: u32, dtype: Dtype) {
    h.put_array(w, Array::from_slice(&[0x7654_3210u32; 4], &[1, 4]).unwrap());
    let stream = h.stream;
    let cast = |v: f32| mlx::ops::astype(&Array::from_slice(&[v], &[1, 1]).unwrap(), dtype, stream);
    let (s, b) = (cast(0.5).unwrap(), cast(-1.0).unwrap());
    h.put_array(scales, s);
    h.put_array(biases, b);
}

fn hand_dequantized(i: usize) -> f32 {
    0.5 * (i % 8) as f32 - 1.0
}

#[test]
fn quantized_matmul_uses_the_packed_affine_layout() {
    let mut h = Harness::new();
    put_packed_row(&mut h, 1, 2, 3, Dtype::Float32);
    let x: Vec<f32> = (0..32).map(|i| i as f32).collect();
    h.put_f32(0, &x, &[1, 32]);
    let op = Op::QuantizedMatmul {
        x: Tid(0),
        w: Tid(1),
        scales: Tid(2),
        out: Tid(4),
        biases: Some(Tid(3)),
        group_size: 32,
        bits: 4,
        mode: "affine".into(),
        transpose: true,
    };
    h.run(op).unwrap();
    let expected: f32 = (0..32).map(|i| i as f32 * hand_dequantized(i)).sum();
    let (shape, _, values) = h.read_typed(4);
    assert_eq!(shape, vec![1, 1]);
    assert_close(&values, &[expected], 1e-3);
}

#[test]
fn dequantize_unpacks_in_element_order_and_honours_the_dtype() {
    let mut h = Harness::new();
    put_packed_row(&mut h, 1, 2, 3, Dtype::Float32);
    let op = Op::Dequantize {
        w: Tid(1),
        scales: Tid(2),
        out: Tid(4),
        biases: Some(Tid(3)),
        group_size: 32,
        bits: 4,
        mode: "affine".into(),
        global_scale: None,
        dtype: Some(5), // ScalarType Half
    };
    h.run(op).unwrap();
    let (shape, dtype, values) = h.read_typed(4);
    assert_eq!(shape, vec![1, 32]);
    assert_eq!(dtype, Dtype::Float16);
    let expected: Vec<f32> = (0..32).map(hand_dequantized).collect();
    assert_eq!(values, expected);
}

#[test]
fn gather_mm_picks_the_expert_of_each_row_with_a_runtime_sorted_flag() {
    let mut h = Harness::new();
    h.put_f32(0, &[1.0, 2.0], &[1, 1, 2]);
    // expert 0 = [[1], [1]], expert 1 = [[10], [100]]
    h.put_f32(1, &[1.0, 1.0, 10.0, 100.0], &[2, 2, 1]);
    h.put_array(2, Array::from_slice(&[0u32, 0], &[2]).unwrap());
    h.put_array(3, Array::from_slice(&[1u32, 0], &[2]).unwrap());
    h.put_value(0, Value::Int(0));
    let op = Op::GatherMm {
        a: Tid(0),
        b: Tid(1),
        out: Tid(4),
        lhs_indices: Some(Tid(2)),
        rhs_indices: Some(Tid(3)),
        sorted_indices: true, // overridden by the flag: these indices are not sorted
        sorted_indices_flag: Some(IntOrVid::Vid(Vid(0))),
    };
    h.run(op).unwrap();
    let (shape, _, values) = h.read_typed(4);
    assert_eq!(shape, vec![2, 1, 1]);
    assert_eq!(values, vec![210.0, 3.0]);
}

#[test]
fn gather_mm_runs_half_precision_operands_and_keeps_their_dtype() {
    // MLX's CPU kernel alone only takes float32; the executor must still accept bf16 graphs.
    let mut h = Harness::new();
    let bf16 = |a: Array| mlx::ops::astype(&a, Dtype::Bfloat16, h.stream).unwrap();
    let (a, b) = (
        bf16(Array::from_slice(&[1.0f32, 2.0], &[1, 1, 2]).unwrap()),
        bf16(Array::from_slice(&[1.0f32, 1.0, 10.0, 100.0], &[2, 2, 1]).unwrap()),
    );
    h.put_array(0, a);
    h.put_array(1, b);
    h.put_array(3, Array::from_slice(&[1u32, 0], &[2]).unwrap());
    let op = Op::GatherMm {
        a: Tid(0),
        b: Tid(1),
        out: Tid(4),
        lhs_indices: None,
        rhs_indices: Some(Tid(3)),
        sorted_indices: false,
        sorted_indices_flag: None,
    };
    h.run(op).unwrap();
    let (shape, dtype, values) = h.read_typed(4);
    assert_eq!((shape, dtype), (vec![2, 1, 1], Dtype::Bfloat16));
    assert_eq!(values, vec![210.0, 3.0]);
}

/// q attends over two keys; v rows are [10, 20] and [30, 40].
fn put_attention(h: &mut Harness, q_rows: &[f32], dtype: Dtype) {
    let stream = h.stream;
    let cast = |a: Array| mlx::ops::astype(&a, dtype, stream).unwrap();
    let q_len = (q_rows.len() / 2) as i32;
    h.put_array(
        0,
        cast(Array::from_slice(q_rows, &[1, 1, q_len, 2]).unwrap()),
    );
    h.put_array(
        1,
        cast(Array::from_slice(&[1.0f32, 0.0, 0.0, 1.0], &[1, 1, 2, 2]).unwrap()),
    );
    h.put_array(
        2,
        cast(Array::from_slice(&[10.0f32, 20.0, 30.0, 40.0], &[1, 1, 2, 2]).unwrap()),
    );
}

fn sdpa(mask: Option<u32>, causal: bool) -> Op {
    Op::Sdpa {
        q: Tid(0),
        k: Tid(1),
        v: Tid(2),
        out: Tid(4),
        scale: 1.0,
        mask: mask.map(Tid),
        causal,
    }
}

#[test]
fn sdpa_without_mask_is_softmax_weighted() {
    let mut h = Harness::new();
    put_attention(&mut h, &[1.0, 0.0], Dtype::Float32);
    h.run(sdpa(None, false)).unwrap();
    let e = std::f32::consts::E;
    let expected = [(10.0 * e + 30.0) / (e + 1.0), (20.0 * e + 40.0) / (e + 1.0)];
    assert_close(&h.read_typed(4).2, &expected, 1e-4);
}

#[test]
fn sdpa_bool_mask_means_attend_where_true() {
    let mut h = Harness::new();
    put_attention(&mut h, &[1.0, 0.0], Dtype::Float32);
    h.put_array(3, Array::from_slice(&[false, true], &[1, 1, 1, 2]).unwrap());
    h.run(sdpa(Some(3), false)).unwrap();
    assert_close(&h.read_typed(4).2, &[30.0, 40.0], 1e-4);
}

#[test]
fn sdpa_float_mask_is_additive_and_cast_to_the_query_dtype() {
    let mut h = Harness::new();
    put_attention(&mut h, &[1.0, 0.0], Dtype::Float16);
    // An f32 mask next to f16 activations, as exported graphs have them.
    h.put_f32(3, &[0.0, f32::NEG_INFINITY], &[1, 1, 1, 2]);
    h.run(sdpa(Some(3), false)).unwrap();
    let (_, dtype, values) = h.read_typed(4);
    assert_eq!(dtype, Dtype::Float16);
    assert_close(&values, &[10.0, 20.0], 1e-2);
}

#[test]
fn sdpa_causal_is_lower_right_aligned() {
    // Two queries over two keys: query 0 sees key 0 only; query 1 sees both.
    let mut h = Harness::new();
    put_attention(&mut h, &[0.0, 0.0, 0.0, 0.0], Dtype::Float32);
    h.run(sdpa(None, true)).unwrap();
    assert_close(&h.read_typed(4).2, &[10.0, 20.0, 20.0, 30.0], 1e-4);

    // One query over two keys (decode step): aligned to the last key, so it sees both.
    let mut h = Harness::new();
    put_attention(&mut h, &[0.0, 0.0], Dtype::Float32);
    h.run(sdpa(None, true)).unwrap();
    assert_close(&h.read_typed(4).2, &[20.0, 30.0], 1e-4);
}

fn rope(offset: VidOrTid, freqs: Option<u32>) -> Op {
    Op::Rope {
        x: Tid(0),
        out: Tid(4),
        dims: 2,
        offset,
        freqs: freqs.map(Tid),
        traditional: false,
        base: 500000.0,
        scale: 1.0,
    }
}

#[test]
fn rope_with_freqs_ignores_base_and_takes_an_int_or_array_offset() {
    // x = [1, 0] rotated by angle position·1 (frequency 1): [cos p, sin p].
    let mut h = Harness::new();
    h.put_f32(0, &[1.0, 0.0], &[1, 1, 1, 2]);
    h.put_f32(1, &[1.0], &[1]);
    h.put_value(0, Value::Int(1));
    h.run(rope(VidOrTid::Vid(Vid(0)), Some(1))).unwrap();
    assert_close(&h.read_typed(4).2, &[1f32.cos(), 1f32.sin()], 1e-5);

    h.put_array(2, Array::from_slice(&[3i32], &[1]).unwrap());
    h.run(rope(VidOrTid::Tid(Tid(2)), Some(1))).unwrap();
    assert_close(&h.read_typed(4).2, &[3f32.cos(), 3f32.sin()], 1e-5);
}

#[test]
fn rope_without_freqs_uses_base() {
    // dims 2: one frequency, base^0 = 1, so the angle is the position whatever the base.
    let mut h = Harness::new();
    h.put_f32(0, &[0.0, 1.0], &[1, 1, 1, 2]);
    h.put_value(0, Value::Int(2));
    h.run(rope(VidOrTid::Vid(Vid(0)), None)).unwrap();
    assert_close(&h.read_typed(4).2, &[-(2f32.sin()), 2f32.cos()], 1e-5);
}

#[test]
fn norms_match_their_definitions() {
    let mut h = Harness::new();
    h.put_f32(0, &[3.0, 4.0], &[1, 2]);
    h.put_f32(1, &[1.0, 2.0], &[2]);
    h.run(Op::RMSNorm {
        x: Tid(0),
        weight: Some(Tid(1)),
        out: Tid(4),
        eps: 0.0,
    })
    .unwrap();
    // rms = sqrt((9 + 16) / 2)
    let rms = 12.5f32.sqrt();
    assert_close(&h.read_typed(4).2, &[3.0 / rms, 8.0 / rms], 1e-5);

    h.put_f32(2, &[10.0, 20.0], &[2]);
    let op = Op::LayerNorm {
        x: Tid(0),
        out: Tid(5),
        weight: Some(Tid(1)),
        bias: Some(Tid(2)),
        eps: 0.0,
    };
    h.run(op).unwrap();
    // mean 3.5, std 0.5: normalised [-1, 1]
    assert_close(&h.read_typed(5).2, &[9.0, 22.0], 1e-5);
}

#[test]
fn conv_takes_channels_last_input_and_mlx_weight_layout() {
    let mut h = Harness::new();
    // x: N=1, L=3, C_in=1; w: C_out=1, K=2, C_in=1 (cross-correlation, like PyTorch)
    h.put_f32(0, &[1.0, 2.0, 3.0], &[1, 3, 1]);
    h.put_f32(1, &[1.0, 10.0], &[1, 2, 1]);
    let op = Op::Conv1D {
        x: Tid(0),
        w: Tid(1),
        out: Tid(4),
        stride: 1,
        padding: 0,
        dilation: 1,
        groups: 1,
    };
    h.run(op).unwrap();
    let (shape, _, values) = h.read_typed(4);
    assert_eq!(shape, vec![1, 2, 1]);
    assert_eq!(values, vec![21.0, 32.0]);

    // stride 2, padding 1: windows [0, 1] and [2, 3] of [0, 1, 2, 3, 0]
    let op = Op::Conv1D {
        x: Tid(0),
        w: Tid(1),
        out: Tid(5),
        stride: 2,
        padding: 1,
        dilation: 1,
        groups: 1,
    };
    h.run(op).unwrap();
    assert_eq!(h.read_typed(5).2, vec![10.0, 32.0]);
}

#[test]
fn conv_transpose_scatters_each_input_through_the_kernel() {
    let mut h = Harness::new();
    // out length (L - 1)·stride + K = 3; a symmetric kernel so no flip convention is assumed.
    h.put_f32(0, &[1.0, 2.0], &[1, 2, 1]);
    h.put_f32(1, &[1.0, 1.0], &[1, 2, 1]);
    let op = Op::ConvTranspose1D {
        x: Tid(0),
        w: Tid(1),
        out: Tid(4),
        stride: 1,
        padding: 0,
        dilation: 1,
        output_padding: 0,
        groups: 1,
    };
    h.run(op).unwrap();
    assert_eq!(h.read_typed(4).2, vec![1.0, 3.0, 2.0]);
}

fn random_bits(seed: Option<u32>, width: i32, shape: &[i64]) -> Op {
    Op::RandomBits {
        out: Tid(4),
        shape: shape.iter().map(|&d| IntOrVid::Lit(d)).collect(),
        seed: seed.map(Vid),
        width,
    }
}

#[test]
fn random_bits_width_sets_the_dtype_and_a_seed_makes_it_repeatable() {
    let mut h = Harness::new();
    for (width, dtype) in [(1, Dtype::Uint8), (2, Dtype::Uint16), (4, Dtype::Uint32)] {
        h.run(random_bits(None, width, &[2, 3])).unwrap();
        let a = h.array(4);
        assert_eq!((a.shape(), a.dtype()), (vec![2, 3], dtype));
    }
    let mut seeded = |seed: i32| {
        h.put_value(1, Value::Int(seed));
        h.run(random_bits(Some(1), 4, &[8])).unwrap();
        h.array(4).to_vec::<u32>().unwrap()
    };
    let (first, again, other) = (seeded(7), seeded(7), seeded(8));
    assert_eq!(first, again);
    assert_ne!(first, other);
}

#[test]
fn random_bits_rejects_bad_widths_and_shapes() {
    let mut h = Harness::new();
    assert!(h.run(random_bits(None, 3, &[2])).is_err());
    assert!(h.run(random_bits(None, 4, &[2, 0])).is_err());
    // 2^20 · 2^12 elements · 4 bytes = 16 GiB, over the 4 GiB allocation guard
    assert!(h.run(random_bits(None, 4, &[1 << 20, 1 << 12])).is_err());
}

fn metal_kernel() -> Op {
    Op::MetalKernel {
        name: "tq_norm".into(),
        source: "out[0] = inp[0];".into(),
        inputs: vec![Tid(0)],
        outputs: vec![Tid(4)],
        grid: vec![IntOrVid::Lit(1); 3],
        threadgroup: vec![IntOrVid::Lit(1); 3],
        header: String::new(),
        input_names: vec!["inp".into()],
        output_names: vec!["out".into()],
        ensure_row_contiguous: true,
        atomic_outputs: false,
        output_shapes_flat: vec![IntOrVid::Lit(1)],
        output_shape_lengths: vec![1],
        output_dtypes: vec![6],
        template_arg_names: vec![],
        template_arg_kinds: vec![],
        template_arg_values: vec![],
        init_value: None,
    }
}

#[test]
fn metal_kernel_is_refused_without_permission() {
    let mut h = Harness::new();
    h.put_f32(0, &[1.0], &[1]);
    let err = h.run(metal_kernel()).unwrap_err();
    assert!(
        matches!(&err, ExecError::CustomKernelRefused { name } if name == "tq_norm"),
        "{err}"
    );
    assert!(err.to_string().contains("--allow-custom-kernels"), "{err}");
}

/// Only a Metal build of MLX on Apple hardware could run the kernel.
#[cfg(not(target_os = "macos"))]
#[test]
fn metal_kernel_when_allowed_fails_clearly_off_metal() {
    let mut h = Harness::new();
    h.options.allow_custom_kernels = true;
    h.put_f32(0, &[1.0], &[1]);
    let err = h.run(metal_kernel()).unwrap_err();
    match &err {
        ExecError::MetalKernelUnsupported { name, device } => {
            assert_eq!(name, "tq_norm");
            assert!(device.contains("CPU"), "{device}");
        }
        other => panic!("expected MetalKernelUnsupported, got {other}"),
    }
}
