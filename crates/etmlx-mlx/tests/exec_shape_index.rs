//! Shape/creation and indexing op families.
//!
//! 1. `official_suite_configs_pass`: configs of the official MLX op suite (from the committed
//!    subset, `tests/conformance/subset`) that exercise these nodes, loaded through the public API
//!    (`Program` + `MlxBackend`) and compared with PyTorch's expected outputs under each config's
//!    own tolerances (the suite's rule: allclose, bool exact).
//! 2. Single-op tests through `exec::dispatch`, on hand-computed values, for the PyTorch rules the
//!    suite configs do not reach (non-1 squeeze dims, slice-update clamping and no-op, index_copy
//!    runs, guards on sizes and strides, index bounding).

mod delegate_common;

use std::path::Path;

use etmlx_mlx::ir::{FloatOrVid, IntOrVid, IntOrVidOrTid, Op, Tid, Vid};
use etmlx_runtime::elements::{self, Scalar};
use etmlx_runtime::{BackendOptions, HostTensor};

mod exec_common;
use exec_common::Harness;

/// Subset configs, with the nodes of this family each one covers (for the failure message).
const SUITE_CONFIGS: &[(&str, &str)] = &[
    ("0051_squeeze_1x1x8_dims0_1", "Squeeze"),
    ("0055_unsqueeze_dim0", "ExpandDims"),
    ("0058_permute", "Transpose"),
    ("0061_narrow_dim0_start1_len4", "Slice"),
    ("0067_select_dim0_idx1", "Take (scalar)"),
    ("0069_slice_dim0_1to5", "Slice"),
    ("0071_repeat_2x3", "Tile"),
    ("0074_roll_shift_2__dim_0_", "Roll"),
    ("0084_cat_two_tensors", "Concatenate"),
    ("0091_pad_10_p2_3_v0", "Pad"),
    ("0098_embedding", "Take (tensor)"),
    ("0104_max_pool1d_c1", "Reshape, Transpose"),
    ("0170_kv_cache", "SliceUpdate in place, Take, Contiguous"),
    (
        "0185_ring_buffer_kv_cache",
        "SliceUpdate (ring buffer), Slice",
    ),
    ("0190_arange_dynamic_pos0_len4", "ARange (dynamic bounds)"),
    ("0201_upsample_nearest2d", "Take (tensor)"),
    ("0237_slice_scatter_d0_s0_e2", "SliceUpdate"),
    ("0252_expand_1x8_to_4x8", "BroadcastTo"),
    ("0259_index_50_idx5", "TakeAlongAxis"),
    ("0260_advanced_index_8x6_dims2_idx4", "Gather, Reshape"),
    ("0265_index_update_axis0_32x16_idx4", "IndexCopy"),
    ("0273_split_uniform_dim1", "Split (chunk size)"),
    ("0275_arange_10_float32", "ARange (dtype)"),
    ("0510_clone_16_float32", "Contiguous"),
    ("0689_tril_4x4_bfloat16", "Tril"),
    ("0699_triu_4x4_bfloat16", "Triu"),
    ("0705_zeros_like_4x4_bfloat16", "FullLike"),
    ("0713_full_like_4x4_v0.5_bfloat16", "FullLike"),
    ("0716_full_10_0.0_float32", "Full"),
    ("0733_ones_10_float32", "Full"),
    ("0807_scatter_add_4x8_dim1_idx3", "ScatterAdd"),
    ("0822_stack_dim1_n2_3x4", "Stack"),
    ("0834_repeat_interleave_r2_dim1_2x4", "Repeat"),
    ("0843_topk_k5_dim0_values_16", "Slice (step -1)"),
    (
        "0878_moe_gather_inputs_N1_E8_k2_decode",
        "ARange, Full, Repeat, ExpandDims",
    ),
    (
        "0882_moe_scatter_outputs_N1_E8_k2_decode",
        "Squeeze, Slice, Repeat",
    ),
    ("0889_flip_4x5_dims0", "Flip"),
];

/// The suite's comparison: equal shapes; bool outputs equal; otherwise
/// `|e - a| <= atol + rtol·|a|` (NaN never close), on values widened to f64.
fn compare(
    what: &str,
    expected: &HostTensor,
    actual: &HostTensor,
    rtol: f64,
    atol: f64,
) -> Result<(), String> {
    if expected.sizes != actual.sizes {
        return Err(format!(
            "{what}: shape {:?}, expected {:?}",
            actual.sizes, expected.sizes
        ));
    }
    let read = |t: &HostTensor, i: usize| {
        elements::read(t.dtype, &t.bytes, i).map_err(|e| format!("{what}: {e}"))
    };
    for i in 0..expected.numel() {
        let (e, a) = (read(expected, i)?, read(actual, i)?);
        let close = match (e, a) {
            (Scalar::Bool(x), Scalar::Bool(y)) => x == y,
            _ => {
                let (x, y) = (e.as_f64(), a.as_f64());
                x == y || (x - y).abs() <= atol + rtol * y.abs()
            }
        };
        if !close {
            return Err(format!(
                "{what}: element {i} is {a:?}, expected {e:?} (rtol {rtol}, atol {atol})"
            ));
        }
    }
    Ok(())
}

fn run_config(dir: &Path) -> Result<(), String> {
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("config.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let tol = |k: &str| {
        config[k]
            .as_f64()
            .ok_or_else(|| format!("config.json has no {k}"))
    };
    let (rtol, atol) = (tol("rtol")?, tol("atol")?);
    let program = delegate_common::open(dir, BackendOptions::default());
    let mut method = program.load_method("forward").map_err(|e| e.to_string())?;
    let inputs = delegate_common::read_bin(&dir.join("input.bin"));
    let expected = delegate_common::read_bin(&dir.join("expected_output.bin"));
    let actual = delegate_common::run(&mut method, &inputs);
    if actual.len() != expected.len() {
        return Err(format!(
            "{} outputs, expected {}",
            actual.len(),
            expected.len()
        ));
    }
    for (i, (e, a)) in expected.iter().zip(&actual).enumerate() {
        compare(&format!("output {i}"), e, a, rtol, atol)?;
    }
    Ok(())
}

#[test]
fn official_suite_configs_pass() {
    let mut failures = Vec::new();
    for (dir, nodes) in SUITE_CONFIGS {
        let path = delegate_common::suite_config(dir);
        assert!(
            path.join("model.pte").exists(),
            "{dir} is missing from tests/conformance/subset"
        );
        if let Err(e) = run_config(&path) {
            failures.push(format!("{dir} ({nodes}): {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "failing suite configs:\n{}",
        failures.join("\n")
    );
}

// ---- single ops on hand-computed values ----------------------------------------------------

fn lit(v: i64) -> IntOrVid {
    IntOrVid::Lit(v)
}

fn lits(vs: &[i64]) -> Vec<IntOrVid> {
    vs.iter().map(|&v| IntOrVid::Lit(v)).collect()
}

fn iota(n: usize) -> Vec<f32> {
    (0..n).map(|i| i as f32).collect()
}

#[test]
fn squeeze_leaves_listed_dims_that_are_not_size_one() {
    // torch.zeros(1, 3, 1).squeeze((0, 1)).shape == (3, 1)
    let mut h = Harness::new();
    h.put(0, &iota(3), &[1, 3, 1]);
    h.run(Op::Squeeze {
        x: Tid(0),
        out: Tid(1),
        dims: vec![0, 1],
    })
    .unwrap();
    assert_eq!(h.read(1), (vec![3, 1], iota(3)));
    // No dims: every size-1 dim goes.
    h.run(Op::Squeeze {
        x: Tid(0),
        out: Tid(2),
        dims: vec![],
    })
    .unwrap();
    assert_eq!(h.read(2).0, vec![3]);
}

#[test]
fn split_with_one_size_is_a_chunk_size() {
    // torch.arange(5).split(2) -> [0, 1], [2, 3], [4]
    let mut h = Harness::new();
    h.put(0, &iota(5), &[5]);
    let outs = vec![Tid(1), Tid(2), Tid(3)];
    h.run(Op::Split {
        x: Tid(0),
        outs: outs.clone(),
        sizes: lits(&[2]),
        axis: 0,
    })
    .unwrap();
    assert_eq!(h.read(3), (vec![1], vec![4.0]));
    assert_eq!(h.read(2).1, vec![2.0, 3.0]);
    // Section sizes [1, 4] -> [0], [1, 2, 3, 4]; a piece count that does not match the outputs fails.
    h.run(Op::Split {
        x: Tid(0),
        outs: vec![Tid(4), Tid(5)],
        sizes: lits(&[1, 4]),
        axis: -1,
    })
    .unwrap();
    assert_eq!(h.read(5).1, vec![1.0, 2.0, 3.0, 4.0]);
    assert!(h
        .run(Op::Split {
            x: Tid(0),
            outs,
            sizes: lits(&[1, 4]),
            axis: 0
        })
        .is_err());
}

#[test]
fn broadcast_to_minus_one_keeps_the_right_aligned_input_dim() {
    let mut h = Harness::new();
    h.put(0, &iota(3), &[3, 1]);
    h.run(Op::BroadcastTo {
        x: Tid(0),
        out: Tid(1),
        shape: lits(&[2, -1, 2]),
    })
    .unwrap();
    assert_eq!(
        h.read(1),
        (
            vec![2, 3, 2],
            vec![0., 0., 1., 1., 2., 2., 0., 0., 1., 1., 2., 2.]
        )
    );
}

#[test]
fn slice_update_clamps_bounds_and_is_a_no_op_when_they_meet() {
    let mut h = Harness::new();
    h.put(0, &[0.0f32; 5], &[5]);
    h.put(1, &[7.0f32, 8.0], &[2]);
    // start 3, stop 100 -> clamped to [3, 5); written in place (out == dst).
    let op = |start, stop| Op::SliceUpdate {
        dst: Tid(0),
        update: Tid(1),
        out: Tid(0),
        axis: lit(0),
        start,
        stop,
        step: 1,
    };
    h.run(op(lit(3), lit(100))).unwrap();
    assert_eq!(h.read(0).1, vec![0., 0., 0., 7., 8.]);
    // start -2 -> 3 == stop 3: nothing happens, even though the update has 2 rows.
    h.put_int(0, 3);
    h.run(op(lit(-2), IntOrVid::Vid(Vid(0)))).unwrap();
    assert_eq!(h.read(0).1, vec![0., 0., 0., 7., 8.]);
    // A failing update leaves the in-place slot populated.
    h.put(1, &[1.0f32, 2.0, 3.0], &[3]);
    assert!(h.run(op(lit(0), lit(2))).is_err());
    assert_eq!(h.read(0).1, vec![0., 0., 0., 7., 8.]);
}

#[test]
fn index_copy_writes_each_run_and_refuses_negative_indices() {
    // torch.zeros(5).index_copy(0, tensor([4, 0, 1]), tensor([1., 2., 3.])) == [2, 3, 0, 0, 1]
    let mut h = Harness::new();
    h.put(0, &[0.0f32; 5], &[5]);
    h.put(1, &[1.0f32, 2.0, 3.0], &[3]);
    h.put(2, &[4i64, 0, 1], &[3]);
    let op = Op::IndexCopy {
        dst: Tid(0),
        update: Tid(1),
        indices: Tid(2),
        out: Tid(0),
        axis: 0,
    };
    h.run(op.clone()).unwrap();
    assert_eq!(h.read(0).1, vec![2., 3., 0., 0., 1.]);
    // PyTorch: "index -1 is out of bounds"; int32 indices are refused like the reference does.
    h.put(2, &[-1i64, 0, 1], &[3]);
    assert!(h.run(op.clone()).is_err());
    h.put(2, &[2i32, 3, 4], &[3]);
    assert!(h.run(op).is_err());
    assert_eq!(h.read(0).1, vec![2., 3., 0., 0., 1.]);
}

#[test]
fn take_scalar_index_counts_from_the_end_and_is_bounds_checked() {
    let mut h = Harness::new();
    h.put(0, &iota(6), &[2, 3]);
    h.run(Op::Take {
        x: Tid(0),
        out: Tid(1),
        index: IntOrVidOrTid::Lit(-1),
        axis: 1,
    })
    .unwrap();
    assert_eq!(h.read(1), (vec![2], vec![2.0, 5.0]));
    assert!(h
        .run(Op::Take {
            x: Tid(0),
            out: Tid(1),
            index: IntOrVidOrTid::Lit(3),
            axis: 1
        })
        .is_err());
}

#[test]
fn tensor_indices_wrap_negatives_and_never_leave_the_array() {
    let mut h = Harness::new();
    h.put(0, &iota(3), &[3]);
    // -1 -> 2 (PyTorch); 7 and -9 are invalid and are clipped into [-3, 2] -> 2 and 0.
    h.put(1, &[-1i32, 0, 7, -9], &[4]);
    h.run(Op::Take {
        x: Tid(0),
        out: Tid(2),
        index: IntOrVidOrTid::Tid(Tid(1)),
        axis: 0,
    })
    .unwrap();
    assert_eq!(h.read(2).1, vec![2.0, 0.0, 2.0, 0.0]);
    // scatter_add along axis 0: out[idx[i]] += upd[i]; index 5 stays inside (clipped to 2).
    h.put(3, &[0i64, 0, 5], &[3]);
    h.put(4, &[1.0f32, 10.0, 100.0], &[3]);
    h.run(Op::ScatterAdd {
        x: Tid(0),
        indices: Tid(3),
        updates: Tid(4),
        out: Tid(5),
        axis: 0,
    })
    .unwrap();
    assert_eq!(h.read(5).1, vec![11.0, 1.0, 102.0]);
}

#[test]
fn slice_with_negative_step_reverses() {
    // x[2::-1] on [0, 1, 2, 3, 4], with a negative stop that lands before index 0 (-6 + 5 = -1),
    // the form the exporter uses to reverse an axis for top-k.
    let mut h = Harness::new();
    h.put(0, &iota(5), &[5]);
    h.run(Op::Slice {
        x: Tid(0),
        out: Tid(1),
        axis: lit(0),
        start: lit(2),
        stop: lit(-4 - 2),
        step: -1,
    })
    .unwrap();
    assert_eq!(h.read(1).1, vec![2.0, 1.0, 0.0]);
    assert!(h
        .run(Op::Slice {
            x: Tid(0),
            out: Tid(1),
            axis: lit(0),
            start: lit(0),
            stop: lit(5),
            step: 0
        })
        .is_err());
}

#[test]
fn creation_ops_apply_the_allocation_guard() {
    let mut h = Harness::new();
    let full = |shape: &[i64]| Op::Full {
        out: Tid(0),
        shape: lits(shape),
        v: FloatOrVid::Lit(2.0),
        scalar_type: 6,
    };
    h.run(full(&[2, 2])).unwrap();
    assert_eq!(h.read(0), (vec![2, 2], vec![2.0; 4]));
    // Any dim <= 0, or more than 4 GiB (2^20 x (2^10 + 1) float32 is 4 GiB + 4 MiB).
    assert!(h.run(full(&[0, 3])).is_err());
    assert!(h.run(full(&[1 << 20, (1 << 10) + 1])).is_err());
    let arange = |start, stop, step, st| Op::ARange {
        out: Tid(1),
        start: lit(start),
        stop: lit(stop),
        step: lit(step),
        scalar_type: st,
    };
    // torch.arange(5, 0, -2) == [5, 3, 1]; without a dtype the result is int32.
    h.run(arange(5, 0, -2, None)).unwrap();
    assert_eq!(h.read(1), (vec![3], vec![5.0, 3.0, 1.0]));
    assert!(h.run(arange(0, 0, 1, Some(4))).is_err());
    assert!(h.run(arange(0, 4, 0, None)).is_err());
    assert!(h
        .run(Op::Tri {
            out: Tid(2),
            n: lit(3),
            m: lit(-1),
            k: 0,
            scalar_type: 6
        })
        .is_err());
}

#[test]
fn as_strided_reads_windows_and_refuses_views_outside_the_array() {
    let mut h = Harness::new();
    h.put(0, &iota(6), &[6]);
    // Overlapping windows of 3 with hop 2, from element 1: [1, 2, 3], [3, 4, 5].
    let op = |shape: &[i64], strides: &[i64], offset| Op::AsStrided {
        x: Tid(0),
        out: Tid(1),
        shape: lits(shape),
        strides: lits(strides),
        offset,
    };
    h.run(op(&[2, 3], &[2, 1], 1)).unwrap();
    assert_eq!(h.read(1), (vec![2, 3], vec![1., 2., 3., 3., 4., 5.]));
    assert!(h.run(op(&[2, 3], &[2, 1], 2)).is_err()); // would reach element 6
    assert!(h.run(op(&[3], &[-1], 1)).is_err()); // would reach element -1
}

#[test]
fn pad_refuses_unknown_modes_and_edge_pads_repeat_the_border() {
    let mut h = Harness::new();
    h.put(0, &[1.0f32, 2.0], &[2]);
    let op = |mode: &str| Op::Pad {
        x: Tid(0),
        out: Tid(1),
        pad_width: lits(&[1, 2]),
        mode: mode.into(),
        constant_value: 9.0,
    };
    h.run(op("edge")).unwrap();
    assert_eq!(h.read(1).1, vec![1., 1., 2., 2., 2.]);
    h.run(op("constant")).unwrap();
    assert_eq!(h.read(1).1, vec![9., 1., 2., 9., 9.]);
    assert!(h.run(op("reflect")).is_err());
}
