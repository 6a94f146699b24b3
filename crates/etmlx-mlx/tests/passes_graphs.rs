//! The graph passes (`etmlx_mlx::passes`) on hand-built graphs: each rewrite fires on the pattern the
//! official exporter writes (slots reused as it reuses them), leaves look-alikes alone, and the rewritten
//! graph computes what the original computes (both run on MLX's CPU stream, folded as a handle folds).

use etmlx_mlx::ir::{Graph, IntOrVid, Op, ShapeDim, TensorMeta, Tid};
use etmlx_mlx::passes::{self, ConstantValues, PassOptions, PassReport};
use mlx::{Array, Dtype};

mod exec_common;
use exec_common::Harness;

const F32: i8 = 6;
const I64: i8 = 4;
const U32: i8 = 28;

fn meta(shape: &[i32], scalar_type: i8) -> TensorMeta {
    TensorMeta {
        shape: shape.iter().map(|&d| ShapeDim::Static(d)).collect(),
        scalar_type,
        dim_order: (0..shape.len() as u8).collect(),
    }
}

/// A graph whose tensor ids are, in order: `constants`, `inputs`, `outputs`, then `temps` temps.
fn graph(
    constants: Vec<TensorMeta>,
    inputs: Vec<TensorMeta>,
    outputs: Vec<TensorMeta>,
    temps: u32,
    chain: Vec<Op>,
) -> Graph {
    let (c, i, o) = (
        constants.len() as u32,
        inputs.len() as u32,
        outputs.len() as u32,
    );
    let tensor = |idx: u32| etmlx_mlx::ir::Slot {
        idx,
        kind: etmlx_mlx::ir::SlotKind::Tensor,
    };
    Graph {
        version: 1,
        num_constants: c,
        num_inputs: i,
        num_outputs: o,
        num_mutable_buffers: 0,
        num_temps: temps,
        num_values: 0,
        chains: vec![chain],
        main_chain: 0,
        init_chain: None,
        input_map: (c..c + i).map(tensor).collect(),
        output_map: (c + i..c + i + o).map(tensor).collect(),
        mutable_buffer_map: vec![],
        named_slots: vec![],
        tensor_meta: constants
            .into_iter()
            .chain(inputs)
            .chain(outputs)
            .map(Some)
            .collect(),
    }
}

/// One-element constants by id.
struct Scalars(Vec<(u32, f64)>);

impl ConstantValues for Scalars {
    fn scalar(&self, tid: Tid) -> Option<f64> {
        self.0.iter().find(|(t, _)| *t == tid.0).map(|(_, v)| *v)
    }
}

fn f32s(values: &[f32], shape: &[i32]) -> Array {
    Array::from_slice(values, shape).expect("array")
}

/// Deterministic values in [-1, 1).
fn wave(n: usize, phase: f32) -> Vec<f32> {
    (0..n).map(|i| ((i as f32) * 0.37 + phase).sin()).collect()
}

/// Runs the main chain once with `inputs` (slot, array) and returns every output (slot order), after
/// folding as a handle does at load.
fn execute(
    graph: Graph,
    constants: Vec<Array>,
    inputs: &[(u32, Array)],
) -> Vec<(Vec<i32>, Vec<f32>)> {
    let outputs: Vec<u32> = graph.output_map.iter().map(|s| s.idx).collect();
    let mut h = Harness::from_graph(graph, constants);
    h.fold().expect("fold");
    for (slot, array) in inputs {
        h.put_array(*slot, array.clone());
    }
    h.run_chain(0).expect("chain runs");
    outputs.into_iter().map(|t| h.read(t)).collect()
}

fn assert_close(what: &str, a: &[(Vec<i32>, Vec<f32>)], b: &[(Vec<i32>, Vec<f32>)], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: output count");
    for (k, ((sa, va), (sb, vb))) in a.iter().zip(b).enumerate() {
        assert_eq!(sa, sb, "{what}: output {k} shape");
        for (i, (x, y)) in va.iter().zip(vb).enumerate() {
            assert!((x - y).abs() <= tol, "{what}: output {k}[{i}] {x} vs {y}");
        }
    }
}

fn rewritten(mut g: Graph, options: PassOptions, scalars: &Scalars) -> (Graph, PassReport) {
    let report = passes::run(&mut g, &options, scalars);
    (g, report)
}

fn count(g: &Graph, op: &str) -> usize {
    g.op_histogram().get(op).copied().unwrap_or(0)
}

// ---- RoPE

const HALF: i32 = 4;
const HEADS: i32 = 2;
const STEPS: i32 = 3;

/// HF's rotary embedding of input `q` [1, 2, 3, 8] at positions `cache_position` [3], as the official
/// exporter writes it (its slot reuse included): constants inv_freq (t0) and attention_scaling (t1),
/// inputs q (t2) and cache_position (t3), output t4, temps t5..t12.
fn hf_rope_graph() -> Graph {
    let lit = IntOrVid::Lit;
    let chain = vec![
        Op::ExpandDims {
            x: Tid(3),
            out: Tid(5),
            axis: 0,
        },
        Op::ExpandDims {
            x: Tid(0),
            out: Tid(6),
            axis: 0,
        },
        Op::ExpandDims {
            x: Tid(6),
            out: Tid(7),
            axis: 2,
        },
        Op::BroadcastTo {
            x: Tid(7),
            out: Tid(6),
            shape: vec![lit(1), lit(-1), lit(1)],
        },
        Op::ExpandDims {
            x: Tid(5),
            out: Tid(7),
            axis: 1,
        },
        Op::AsType {
            x: Tid(7),
            out: Tid(8),
            scalar_type: F32,
        },
        Op::Addmm {
            mat1: Tid(6),
            mat2: Tid(8),
            out: Tid(7),
            bias: None,
            alpha: 1.0,
            beta: 1.0,
        },
        Op::Transpose {
            x: Tid(7),
            out: Tid(8),
            perm: vec![0, 2, 1],
        },
        Op::Concatenate {
            tensors: vec![Tid(8), Tid(8)],
            out: Tid(7),
            axis: -1,
        },
        Op::Cos {
            x: Tid(7),
            out: Tid(6),
        },
        Op::Multiply {
            a: Tid(6),
            b: Tid(1),
            out: Tid(6),
        },
        Op::Sin {
            x: Tid(7),
            out: Tid(8),
        },
        Op::Multiply {
            a: Tid(8),
            b: Tid(1),
            out: Tid(8),
        },
        Op::ExpandDims {
            x: Tid(6),
            out: Tid(9),
            axis: 1,
        },
        Op::ExpandDims {
            x: Tid(8),
            out: Tid(10),
            axis: 1,
        },
        Op::Multiply {
            a: Tid(2),
            b: Tid(9),
            out: Tid(6),
        },
        Op::Slice {
            x: Tid(2),
            out: Tid(7),
            axis: lit(3),
            start: lit(0),
            stop: lit(4),
            step: 1,
        },
        Op::Slice {
            x: Tid(2),
            out: Tid(11),
            axis: lit(3),
            start: lit(4),
            stop: lit(i64::MAX),
            step: 1,
        },
        Op::Neg {
            x: Tid(11),
            out: Tid(11),
        },
        Op::Concatenate {
            tensors: vec![Tid(11), Tid(7)],
            out: Tid(12),
            axis: -1,
        },
        Op::Multiply {
            a: Tid(12),
            b: Tid(10),
            out: Tid(12),
        },
        Op::Add {
            a: Tid(6),
            b: Tid(12),
            out: Tid(4),
        },
    ];
    let d = 2 * HALF;
    graph(
        vec![meta(&[HALF], F32), meta(&[], F32)],
        vec![meta(&[1, HEADS, STEPS, d], F32), meta(&[STEPS], I64)],
        vec![meta(&[1, HEADS, STEPS, d], F32)],
        8,
        chain,
    )
}

fn rope_constants(scale: f32) -> Vec<Array> {
    // HF's default inv_freq: 1 / 10000^(2i / D).
    let inv_freq: Vec<f32> = (0..HALF)
        .map(|i| 1.0 / 10000f32.powf(2.0 * i as f32 / (2 * HALF) as f32))
        .collect();
    vec![f32s(&inv_freq, &[HALF]), f32s(&[scale], &[])]
}

fn rope_inputs(first_position: i64) -> Vec<(u32, Array)> {
    let n = (HEADS * STEPS * 2 * HALF) as usize;
    let positions: Vec<i64> = (0..STEPS as i64).map(|i| first_position + i).collect();
    vec![
        (2, f32s(&wave(n, 0.3), &[1, HEADS, STEPS, 2 * HALF])),
        (
            3,
            Array::from_slice(&positions, &[STEPS]).expect("positions"),
        ),
    ]
}

#[test]
fn hf_rotary_embedding_becomes_one_rope_node_with_the_same_values() {
    let only_rope = PassOptions {
        fuse_rope: true,
        ..PassOptions::all(false)
    };
    let (fused, report) = rewritten(hf_rope_graph(), only_rope, &Scalars(vec![(1, 1.0)]));
    assert_eq!(report.ropes, 1);
    assert_eq!(report.consecutive_inputs, vec![Tid(3)]);
    assert_eq!(count(&fused, "Rope"), 1);
    for gone in ["Neg", "Cos", "Sin", "Slice", "Addmm", "Multiply"] {
        assert_eq!(count(&fused, gone), 0, "{gone} is dead after the fusion");
    }
    for first in [0, 5, 1000] {
        let want = execute(hf_rope_graph(), rope_constants(1.0), &rope_inputs(first));
        let got = execute(fused.clone(), rope_constants(1.0), &rope_inputs(first));
        assert_close(&format!("rope at position {first}"), &got, &want, 2e-5);
    }
}

#[test]
fn rope_with_an_attention_scaling_other_than_one_is_left_alone() {
    let only_rope = PassOptions {
        fuse_rope: true,
        ..PassOptions::all(false)
    };
    for scalars in [Scalars(vec![(1, 0.5)]), Scalars(vec![])] {
        let (g, report) = rewritten(hf_rope_graph(), only_rope, &scalars);
        assert_eq!(report.ropes, 0);
        assert_eq!(
            g,
            hf_rope_graph(),
            "no rewrite keeps the exporter's graph as it is"
        );
    }
}

#[test]
fn rope_rotating_a_different_half_is_left_alone() {
    let mut g = hf_rope_graph();
    // x[..., :3] and x[..., 3:] is not HF's rotate_half of an 8-wide head with 4 frequencies.
    for op in g.chains[0].iter_mut() {
        if let Op::Slice { start, stop, .. } = op {
            for bound in [start, stop] {
                if *bound == IntOrVid::Lit(4) {
                    *bound = IntOrVid::Lit(3);
                }
            }
        }
    }
    let (_, report) = rewritten(g, PassOptions::default(), &Scalars(vec![(1, 1.0)]));
    assert_eq!(report.ropes, 0);
}

// ---- projections, heads, batched products

/// `x` [1, 2, 8] (t3) times three weights [rows, 8] (t0..t2), as HF applies Linear:
/// `addmm(x, transpose(W))`, each product viewed as heads of 4 (`[1, 2, -1, 4]`, then `[0, 2, 1, 3]`).
fn attention_projections_graph(rows: [i32; 3]) -> Graph {
    let lit = IntOrVid::Lit;
    let mut chain = Vec::new();
    for (k, _) in rows.iter().enumerate() {
        let (w, out) = (Tid(k as u32), Tid(4 + k as u32));
        chain.extend([
            Op::Transpose {
                x: w,
                out: Tid(7),
                perm: vec![1, 0],
            },
            Op::Addmm {
                mat1: Tid(3),
                mat2: Tid(7),
                out: Tid(8),
                bias: None,
                alpha: 1.0,
                beta: 1.0,
            },
            Op::Reshape {
                x: Tid(8),
                out: Tid(7),
                shape: vec![lit(1), lit(2), lit(-1), lit(4)],
            },
            Op::Transpose {
                x: Tid(7),
                out,
                perm: vec![0, 2, 1, 3],
            },
        ]);
    }
    graph(
        rows.iter().map(|&r| meta(&[r, 8], F32)).collect(),
        vec![meta(&[1, 2, 8], F32)],
        rows.iter().map(|&r| meta(&[1, r / 4, 2, 4], F32)).collect(),
        2,
        chain,
    )
}

fn projection_constants(rows: [i32; 3]) -> Vec<Array> {
    rows.iter()
        .enumerate()
        .map(|(k, &r)| f32s(&wave((r * 8) as usize, k as f32), &[r, 8]))
        .collect()
}

#[test]
fn q_k_v_projections_become_one_product_viewed_as_heads_once() {
    let rows = [8, 4, 4];
    let (fused, report) = rewritten(
        attention_projections_graph(rows),
        PassOptions::default(),
        &Scalars(vec![]),
    );
    assert_eq!(
        (
            report.fused_projections,
            report.merged_heads,
            report.batched_matmuls
        ),
        (3, 1, 1)
    );
    assert_eq!(count(&fused, "Addmm"), 1);
    assert_eq!((count(&fused, "Reshape"), count(&fused, "Split")), (1, 1));
    let inputs = [(3, f32s(&wave(16, 1.0), &[1, 2, 8]))];
    let want = execute(
        attention_projections_graph(rows),
        projection_constants(rows),
        &inputs,
    );
    let got = execute(fused.clone(), projection_constants(rows), &inputs);
    assert_close("fused q/k/v", &got, &want, 1e-5);

    // The concatenated weight replaces its parts: after the fold no slot holds them.
    let mut h = Harness::from_graph(fused, projection_constants(rows));
    h.fold().expect("fold");
    assert!((0..3).all(|t| !h.holds_constant(t)), "parts released");
    // And the product runs without MLX's flatten/unflatten around it.
    h.put_array(3, f32s(&wave(16, 1.0), &[1, 2, 8]));
    h.run_chain(0).expect("runs");
    let out = h.array(4);
    let nodes = mlx::graph_primitive_counts(&[&out]).expect("count");
    assert!(
        nodes
            .iter()
            .all(|(name, _)| name != "Flatten" && name != "Unflatten"),
        "{nodes:?}"
    );
}

#[test]
fn projections_of_different_inputs_dtypes_or_shared_weights_stay_separate() {
    let mut g = attention_projections_graph([8, 4, 4]);
    // The third projection reads the first's output instead of x.
    if let Op::Addmm { mat1, .. } = &mut g.chains[0][9] {
        *mat1 = Tid(8);
    }
    let (_, report) = rewritten(g, PassOptions::default(), &Scalars(vec![]));
    assert_eq!(report.fused_projections, 2);
    assert_eq!(
        report.merged_heads, 0,
        "the split's parts are not all viewed as heads"
    );

    let mut g = attention_projections_graph([8, 4, 4]);
    g.tensor_meta[1].as_mut().expect("meta").scalar_type = 15;
    let (_, report) = rewritten(g, PassOptions::default(), &Scalars(vec![]));
    assert_eq!(report.fused_projections, 2, "the bf16 weight stays alone");

    let mut g = attention_projections_graph([8, 4, 4]);
    // Another op reads the v weight: concatenating it would keep two copies alive.
    g.chains[0].push(Op::Neg {
        x: Tid(2),
        out: Tid(8),
    });
    let (_, report) = rewritten(g, PassOptions::default(), &Scalars(vec![]));
    assert_eq!(report.fused_projections, 2, "the shared weight stays alone");
}

/// `x` [1, 2, 64] (t6) times two affine 4-bit weights: w (t0, t1), scales (t2, t3), biases (t4, t5).
fn quantized_projections_graph() -> Graph {
    let chain = (0..2u32)
        .map(|k| Op::QuantizedMatmul {
            x: Tid(6),
            w: Tid(k),
            scales: Tid(2 + k),
            out: Tid(7 + k),
            biases: Some(Tid(4 + k)),
            group_size: 32,
            bits: 4,
            mode: "affine".to_string(),
            transpose: true,
        })
        .collect();
    let rows = [32, 16];
    graph(
        rows.iter()
            .map(|&r| meta(&[r, 8], U32))
            .chain(rows.iter().map(|&r| meta(&[r, 2], F32)))
            .chain(rows.iter().map(|&r| meta(&[r, 2], F32)))
            .collect(),
        vec![meta(&[1, 2, 64], F32)],
        rows.iter().map(|&r| meta(&[1, 2, r], F32)).collect(),
        0,
        chain,
    )
}

fn quantized_constants() -> Vec<Array> {
    let stream = mlx::Stream::new(mlx::DeviceType::Cpu).expect("stream");
    let key = mlx::random::key(7).expect("key");
    let packed = |rows: i32| {
        let bits = mlx::random::bits(&[rows, 8], 4, Some(&key), stream).expect("bits");
        mlx::ops::astype(&bits, Dtype::Uint32, stream).expect("u32")
    };
    let table = |rows: i32, phase: f32| f32s(&wave((rows * 2) as usize, phase), &[rows, 2]);
    vec![
        packed(32),
        packed(16),
        table(32, 0.1),
        table(16, 0.2),
        table(32, 0.3),
        table(16, 0.4),
    ]
}

#[test]
fn quantized_projections_concatenate_packed_words_scales_and_biases() {
    let (fused, report) = rewritten(
        quantized_projections_graph(),
        PassOptions::default(),
        &Scalars(vec![]),
    );
    assert_eq!(report.fused_projections, 2);
    assert_eq!(
        (
            count(&fused, "QuantizedMatmul"),
            count(&fused, "Concatenate")
        ),
        (1, 3)
    );
    let inputs = [(6, f32s(&wave(128, 2.0), &[1, 2, 64]))];
    let want = execute(
        quantized_projections_graph(),
        quantized_constants(),
        &inputs,
    );
    let got = execute(fused, quantized_constants(), &inputs);
    assert_close("fused 4-bit projections", &got, &want, 1e-4);
}

#[test]
fn slots_are_packed_back_after_the_rewrites() {
    let (fused, _) = rewritten(
        attention_projections_graph([8, 4, 4]),
        PassOptions::default(),
        &Scalars(vec![]),
    );
    // Single-assignment form gave every write a slot of its own; allocation packs them back.
    assert!(fused.num_temps <= 3, "{} temps", fused.num_temps);
    let (rope, _) = rewritten(
        hf_rope_graph(),
        PassOptions::default(),
        &Scalars(vec![(1, 1.0)]),
    );
    assert!(rope.num_temps <= 8, "{} temps", rope.num_temps);
}

// ---- views

/// Input `p` [3] (t0) viewed as [1, 1, 3, 1] in three expand-dims; input `m` [2, 3, 4] (t1) transposed
/// twice and reshaped twice. Outputs t2 (the view of p), t3 (transposes), t4 (reshapes).
fn chained_views_graph() -> Graph {
    let lit = IntOrVid::Lit;
    let chain = vec![
        Op::ExpandDims {
            x: Tid(0),
            out: Tid(5),
            axis: 0,
        },
        Op::ExpandDims {
            x: Tid(5),
            out: Tid(6),
            axis: 1,
        },
        Op::ExpandDims {
            x: Tid(6),
            out: Tid(2),
            axis: -1,
        },
        Op::Transpose {
            x: Tid(1),
            out: Tid(5),
            perm: vec![1, 2, 0],
        },
        Op::Transpose {
            x: Tid(5),
            out: Tid(3),
            perm: vec![2, 0, 1],
        },
        Op::Reshape {
            x: Tid(1),
            out: Tid(6),
            shape: vec![lit(6), lit(4)],
        },
        Op::Reshape {
            x: Tid(6),
            out: Tid(4),
            shape: vec![lit(4), lit(-1)],
        },
    ];
    graph(
        vec![],
        vec![meta(&[3], F32), meta(&[2, 3, 4], F32)],
        vec![
            meta(&[1, 1, 3, 1], F32),
            meta(&[2, 3, 4], F32),
            meta(&[4, 6], F32),
        ],
        2,
        chain,
    )
}

#[test]
fn chained_views_merge_into_one_view_each() {
    let only_views = PassOptions {
        simplify_views: true,
        ..PassOptions::all(false)
    };
    let (merged, report) = rewritten(chained_views_graph(), only_views, &Scalars(vec![]));
    assert_eq!(report.simplified_views, 3);
    assert_eq!(
        (
            count(&merged, "ExpandDims"),
            count(&merged, "Transpose"),
            count(&merged, "Reshape")
        ),
        (0, 1, 2),
        "{:?}",
        merged.chains[0]
    );
    let inputs = [
        (0, f32s(&[1., 2., 3.], &[3])),
        (1, f32s(&wave(24, 0.5), &[2, 3, 4])),
    ];
    let want = execute(chained_views_graph(), vec![], &inputs);
    let got = execute(merged, vec![], &inputs);
    assert_close("chained views", &got, &want, 0.0);
}

// ---- Rope pairs

/// q and k parts of a head split [1, 4, 3, 8] (q: 2 heads, k: 1, v: 1) each rotated by a rope at the
/// position offset in input t1: input heads t0, outputs q t2, k t3, v t4, temps t5, t6. `k_base` is the
/// rope base of k (q's is 10000).
fn rope_pair_graph(k_base: f32) -> Graph {
    let lit = IntOrVid::Lit;
    let rope = |x: u32, out: u32, base: f32| Op::Rope {
        x: Tid(x),
        out: Tid(out),
        dims: 8,
        offset: etmlx_mlx::ir::VidOrTid::Tid(Tid(1)),
        freqs: None,
        traditional: false,
        base,
        scale: 1.0,
    };
    graph(
        vec![],
        vec![meta(&[1, 4, 3, 8], F32), meta(&[], 3)],
        vec![
            meta(&[1, 2, 3, 8], F32),
            meta(&[1, 1, 3, 8], F32),
            meta(&[1, 1, 3, 8], F32),
        ],
        2,
        vec![
            Op::Split {
                x: Tid(0),
                outs: vec![Tid(5), Tid(6), Tid(4)],
                sizes: vec![lit(2), lit(1), lit(1)],
                axis: 1,
            },
            rope(5, 2, 10000.0),
            rope(6, 3, k_base),
        ],
    )
}

#[test]
fn q_and_k_ropes_of_one_head_split_become_one_rope_with_the_same_values() {
    let (paired, report) = rewritten(
        rope_pair_graph(10000.0),
        PassOptions::default(),
        &Scalars(vec![]),
    );
    assert_eq!(report.paired_ropes, 1);
    assert_eq!((count(&paired, "Rope"), count(&paired, "Split")), (1, 2));
    let inputs = [
        (0, f32s(&wave(96, 0.3), &[1, 4, 3, 8])),
        (1, Array::from_slice(&[5i32], &[]).expect("offset")),
    ];
    let want = execute(rope_pair_graph(10000.0), vec![], &inputs);
    let got = execute(paired, vec![], &inputs);
    // One rope over the q and k heads does per head exactly what the two ropes did.
    assert_close("paired ropes", &got, &want, 0.0);

    // Ropes that rotate differently stay two.
    let (apart, report) = rewritten(
        rope_pair_graph(500000.0),
        PassOptions::default(),
        &Scalars(vec![]),
    );
    assert_eq!((report.paired_ropes, count(&apart, "Rope")), (0, 2));
}
