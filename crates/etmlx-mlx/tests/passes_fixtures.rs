//! The graph passes (`etmlx_mlx::passes`) on the official tiny Llama exports of every mode: with every pass
//! on, the main chain gets shorter in the expected ways, and prefill and decode logits still match HF
//! transformers' (recorded by `python/export_fixtures.py`) within each fixture's tolerance.

mod delegate_common;

use std::path::Path;

use delegate_common::*;
use etmlx_mlx::backend::option_keys;
use etmlx_mlx::cache::CacheGeometry;
use etmlx_mlx::ir::{Graph, Op, Tid};
use etmlx_mlx::passes::{self, ConstantValues, PassOptions, PassReport};
use etmlx_mlx::{install_sequence_cache, KvCacheSpec, BACKEND_ID};
use etmlx_runtime::{BackendOptions, HostTensor, OptionValue, ScalarType};

/// The MLX payload of `dir/model.pte`, with the named data its constants come from.
fn payload(dir: &Path) -> (Graph, etmlx_pte::NamedDataMap) {
    let pte = etmlx_pte::Pte::open(dir.join("model.pte")).expect("open");
    let named = etmlx_pte::NamedDataMap::new(&pte, None).expect("named data");
    let plan = &pte.program().plans[0];
    let delegate = plan
        .delegates
        .iter()
        .find(|d| d.id == BACKEND_ID)
        .expect("an MLX delegate");
    let graph =
        etmlx_mlx::payload::parse(pte.delegate_blob(delegate).expect("blob")).expect("parse");
    (graph, named)
}

/// One-element float32 constants read from the file's named data (what the backend reads from MLX).
struct FileScalars<'a> {
    graph: &'a Graph,
    named: &'a etmlx_pte::NamedDataMap,
}

impl ConstantValues for FileScalars<'_> {
    fn scalar(&self, tid: Tid) -> Option<f64> {
        let meta = self.graph.meta(tid)?;
        let bytes = self.named.bytes(self.graph.constant_name(tid)?)?;
        match (meta.scalar_type, bytes) {
            (6, [a, b, c, d]) => Some(f64::from(f32::from_le_bytes([*a, *b, *c, *d]))),
            _ => None,
        }
    }
}

fn passes_on(dir: &Path) -> (PassReport, Graph) {
    passes_on_edited(dir, |_| {})
}

/// The passes on `dir`'s payload after `edit` changed it (constants still read from the file).
fn passes_on_edited(dir: &Path, edit: impl FnOnce(&mut Graph)) -> (PassReport, Graph) {
    let (mut graph, named) = payload(dir);
    let original = graph.clone();
    edit(&mut graph);
    let report = passes::run(
        &mut graph,
        &PassOptions::default(),
        &FileScalars {
            graph: &original,
            named: &named,
        },
    );
    (report, graph)
}

/// Every pass on (the rope pass, compiled SwiGLU and the fused kernels are off by default on the CPU),
/// optionally with an off-graph cache.
fn all_passes() -> BackendOptions {
    let mut options = BackendOptions::default();
    for key in [
        option_keys::FUSE_ROPE,
        option_keys::FUSE_PROJECTIONS,
        option_keys::MERGE_HEADS,
        option_keys::SIMPLIFY_VIEWS,
        option_keys::BATCHED_MATMUL,
        option_keys::COMPILE_SWIGLU,
        option_keys::FUSE_DECODE_ATTENTION,
        option_keys::FUSE_RESIDUAL_NORM,
    ] {
        options.set(BACKEND_ID, key, OptionValue::Bool(true));
    }
    options
}

/// bf16 logits widened to f32 (exact), so the f32 comparison applies.
fn as_f32(t: HostTensor) -> HostTensor {
    match t.dtype {
        ScalarType::Float => t,
        ScalarType::BFloat16 => HostTensor {
            dtype: ScalarType::Float,
            bytes: t
                .bytes
                .chunks_exact(2)
                .flat_map(|c| (u32::from(u16::from_le_bytes([c[0], c[1]])) << 16).to_le_bytes())
                .collect(),
            ..t
        },
        other => panic!("logits of dtype {other:?}"),
    }
}

/// Prefill then decode through the method API against the fixture's HF logits.
fn check_logits(name: &str, options: BackendOptions) {
    let dir = fixture(name);
    let (rtol, atol) = tolerance(&dir);
    let program = open(&dir, options);
    let mut method = program.load_method("forward").expect("load");
    for step in ["prefill", "decode"] {
        let got = run(
            &mut method,
            &read_bin(&dir.join(format!("input_{step}.bin"))),
        );
        let want = read_bin(&dir.join(format!("expected_{step}_logits.bin")));
        assert_close(
            &format!("{name} {step} with every pass"),
            &as_f32(got[0].clone()),
            &as_f32(want[0].clone()),
            rtol,
            atol,
        );
    }
}

#[test]
fn every_mode_loses_the_decomposed_rope_the_separate_projections_and_the_2d_products() {
    // Per layer after the passes: one q/k/v product split into [q+k, v] heads, one rope of q and k together
    // split into q and k, one gate/up product split in two.
    // (fixture, host reads of cache_position[0] left: the custom-cache exports read it for their cache writes
    // and again for the attention window; the second read becomes a copy of the first).
    // The last number: attention blocks found for the fused decode attention (only the custom KV cache writes
    // its caches with slice updates; the others attend through HF's static cache or the off-graph cache).
    for (name, item_reads, attention_blocks) in [
        ("tiny_llama_default", 0, 0),
        ("tiny_llama_custom", 1, 2),
        ("tiny_llama_custom_bf16", 1, 2),
        ("tiny_llama_custom_4w", 1, 2),
        ("tiny_llama_offgraph", 0, 0),
    ] {
        let (report, graph) = passes_on(&fixture(name));
        let histogram = graph.op_histogram();
        let count = |op: &str| histogram.get(op).copied().unwrap_or(0);
        assert_eq!(report.ropes, 4, "{name}: q and k of two layers");
        assert_eq!(report.paired_ropes, 2, "{name}: q with k, per layer");
        assert_eq!(count("Rope"), 2, "{name}");
        assert_eq!(
            (count("Neg"), count("Cos"), count("Sin")),
            (0, 0, 0),
            "{name}"
        );
        assert_eq!(
            report.fused_projections, 10,
            "{name}: q/k/v + gate/up of two layers"
        );
        assert_eq!(count("Split"), 6, "{name}");
        assert_eq!(report.merged_heads, 2, "{name}: one q/k/v split per layer");
        assert!(
            report.ops_after + 20 < report.ops_before,
            "{name}: {} -> {} ops",
            report.ops_before,
            report.ops_after
        );
        assert_eq!(report.consecutive_inputs.len(), 1, "{name}: cache_position");
        assert_eq!(count("ItemInt"), item_reads, "{name}");
        assert_eq!(report.decode_attention.len(), attention_blocks, "{name}");
        // Residual add + norm: after attention and after the MLP of each of the two layers.
        let pairs = etmlx_mlx::exec::residual_norm::Plan::new(&graph.chains[graph.main_chain]);
        assert_eq!(pairs.pairs(), 4, "{name}");
        for block in &report.decode_attention {
            assert_eq!(
                (block.q_heads, block.kv_heads),
                (4, 2),
                "{name}: the fixture's heads"
            );
            let chain = &graph.chains[graph.main_chain];
            assert_eq!(chain[block.attention].name(), "Sdpa", "{name}");
            assert_eq!(chain[block.rope].name(), "Rope", "{name}");
        }
    }
}

#[test]
fn default_mode_logits_with_every_pass() {
    check_logits("tiny_llama_default", all_passes());
}

#[test]
fn custom_mode_logits_with_every_pass() {
    check_logits("tiny_llama_custom", all_passes());
}

#[test]
fn custom_bf16_logits_with_every_pass() {
    check_logits("tiny_llama_custom_bf16", all_passes());
}

#[test]
fn custom_4w_logits_with_every_pass() {
    check_logits("tiny_llama_custom_4w", all_passes());
}

#[test]
fn offgraph_logits_with_every_pass() {
    let dir = fixture("tiny_llama_offgraph");
    let geometry = CacheGeometry::from_program(&open(&dir, BackendOptions::default())).unwrap();
    let spec = KvCacheSpec::from_geometry(&geometry, None, mlx::Dtype::Float32, None).unwrap();
    let mut options = all_passes();
    install_sequence_cache(&mut options, &spec).unwrap();
    check_logits("tiny_llama_offgraph", options);
}

#[test]
fn fused_rope_refuses_positions_that_are_not_consecutive() {
    let dir = fixture("tiny_llama_custom");
    let program = open(&dir, all_passes());
    let mut method = program.load_method("forward").expect("load");
    let mut inputs = read_bin(&dir.join("input_prefill.bin"));
    // cache_position [8] int64: 0..8 with two positions swapped.
    let positions = &mut inputs[1];
    assert_eq!(positions.dtype, ScalarType::Long);
    let mut values: Vec<i64> = positions
        .bytes
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    values.swap(2, 3);
    positions.bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    for (i, t) in inputs.iter().enumerate() {
        method
            .set_input(i, &etmlx_runtime::HostValue::Tensor(t.clone()))
            .expect("set_input");
    }
    let err = method.execute().expect_err("non-consecutive positions");
    assert!(err.to_string().contains("consecutive positions"), "{err}");

    // Without the rope pass the same call runs (the decomposed rope takes any positions).
    let mut options = all_passes();
    options.set(BACKEND_ID, option_keys::FUSE_ROPE, OptionValue::Bool(false));
    let mut method = open(&dir, options).load_method("forward").expect("load");
    run(&mut method, &inputs);
}

/// With `last_position_outputs` the vocabulary projection runs on the last position only; the prefill logits
/// it returns are HF's last row (the export returns every position).
#[test]
fn last_position_outputs_project_only_the_last_row() {
    for name in ["tiny_llama_custom", "tiny_llama_custom_4w"] {
        let dir = fixture(name);
        let (rtol, atol) = tolerance(&dir);
        let mut options = all_passes();
        options.set(
            BACKEND_ID,
            option_keys::LAST_POSITION_OUTPUTS,
            OptionValue::Bool(true),
        );
        let program = open(&dir, options);
        let mut method = program.load_method("forward").expect("load");
        let got = as_f32(run(&mut method, &read_bin(&dir.join("input_prefill.bin")))[0].clone());
        let want = as_f32(read_bin(&dir.join("expected_prefill_logits.bin"))[0].clone());
        let (t, vocab) = (want.sizes[1] as usize, want.sizes[2] as usize);
        assert!(t > 1, "{name}: a multi-token prefill");
        assert_eq!(got.sizes, vec![1, 1, vocab as _], "{name}");
        let last_row = HostTensor {
            sizes: vec![1, 1, vocab as _],
            bytes: want.bytes[(t - 1) * vocab * 4..].to_vec(),
            ..want
        };
        assert_close(
            &format!("{name} last position"),
            &got,
            &last_row,
            rtol,
            atol,
        );
    }
}

/// A cache some other op also reads is not fused: the kernel writes it where MLX sees only a read, so nothing
/// else may depend on it. Here a copy of layer 0's key cache into the output, after everything else.
#[test]
fn a_cache_read_outside_its_block_keeps_the_block_unfused() {
    let (original, _) = payload(&fixture("tiny_llama_custom"));
    let key_cache_0 = original
        .tensor_names()
        .into_iter()
        .find(|(_, name)| name.ends_with("/key_cache_0"))
        .map(|(tid, _)| tid)
        .expect("a key cache named key_cache_0");
    let (report, graph) = passes_on_edited(&fixture("tiny_llama_custom"), |graph| {
        let output = graph.output_map[0].tid().expect("a tensor output");
        let main = graph.main_chain;
        graph.chains[main].push(Op::IdCopy {
            x: key_cache_0,
            out: output,
        });
    });
    assert_eq!(report.decode_attention.len(), 1, "only layer 1's block");
    let chain = &graph.chains[graph.main_chain];
    let block = &report.decode_attention[0];
    let Op::SliceUpdate { dst, .. } = &chain[block.k_write] else {
        panic!("the block's key write is a SliceUpdate");
    };
    assert_ne!(*dst, key_cache_0);
}

fn with_fused_kernels(on: bool) -> BackendOptions {
    let mut options = all_passes();
    for key in [
        option_keys::FUSE_DECODE_ATTENTION,
        option_keys::FUSE_RESIDUAL_NORM,
    ] {
        options.set(BACKEND_ID, key, OptionValue::Bool(on));
    }
    options
}

/// One-token step inputs: token ids [1, 1] and cache_position [1] (int64, as the fixtures' decode input).
fn decode_inputs(template: &[HostTensor], token: i64, position: i64) -> Vec<HostTensor> {
    let mut inputs = template.to_vec();
    assert_eq!(inputs[0].sizes, vec![1, 1], "a one-token decode input");
    inputs[0].bytes = token.to_le_bytes().to_vec();
    inputs[1].bytes = position.to_le_bytes().to_vec();
    inputs
}

/// A prefill and twelve greedy one-token steps with and without the fused kernels (attention block, residual
/// add + norm). Off CUDA the forced fusions are built from the unfused ops, so the logits must be bit-identical
/// (what that checks is the executor's bookkeeping: which ops it skips, the cache rows it checks, the shapes it
/// answers, the slots and caches it writes). On CUDA they are the custom kernels: the logits must agree within
/// the fixture's tolerance and pick the same tokens.
#[test]
fn fused_kernels_match_the_unfused_ops_step_by_step() {
    let on_cuda = mlx::is_available(mlx::DeviceType::Gpu) && !cfg!(target_os = "macos");
    for name in ["tiny_llama_custom", "tiny_llama_custom_4w"] {
        let dir = fixture(name);
        let prefill = read_bin(&dir.join("input_prefill.bin"));
        let template = read_bin(&dir.join("input_decode.bin"));
        let prompt_len = prefill[1].sizes[0];
        let mut methods: Vec<_> = [false, true]
            .into_iter()
            .map(|on| {
                open(&dir, with_fused_kernels(on))
                    .load_method("forward")
                    .expect("load")
            })
            .collect();
        let mut logits: Vec<HostTensor> = methods
            .iter_mut()
            .map(|m| as_f32(run(m, &prefill)[0].clone()))
            .collect();
        let (rtol, atol) = tolerance(&dir);
        let agree = |what: &str, unfused: &HostTensor, fused: &HostTensor| {
            if on_cuda {
                assert_close(what, fused, unfused, rtol, atol);
                assert_eq!(argmax(&unfused.bytes), argmax(&fused.bytes), "{what}");
            } else {
                assert_eq!(unfused.bytes, fused.bytes, "{what}");
            }
        };
        agree(&format!("{name}: prefill"), &logits[0], &logits[1]);
        for step in 0..12 {
            let last = logits[0].bytes.len() / 4 - logits[0].sizes[2] as usize;
            let token = argmax(&logits[0].bytes[last * 4..]);
            let inputs = decode_inputs(&template, token as i64, prompt_len + step);
            logits = methods
                .iter_mut()
                .map(|m| as_f32(run(m, &inputs)[0].clone()))
                .collect();
            agree(&format!("{name}: step {step}"), &logits[0], &logits[1]);
        }
    }
}

fn argmax(f32_bytes: &[u8]) -> usize {
    let values: Vec<f32> = f32_bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (0..values.len())
        .max_by(|&a, &b| values[a].total_cmp(&values[b]))
        .expect("a logits row")
}

/// A one-token step past the end of the cache: the unfused slice update would clamp it to a no-op and attend
/// without the new token; the fused block refuses it by name.
#[test]
fn fused_decode_attention_refuses_a_row_past_the_cache() {
    let dir = fixture("tiny_llama_custom");
    let template = read_bin(&dir.join("input_decode.bin"));
    let mut method = open(&dir, with_fused_kernels(true))
        .load_method("forward")
        .expect("load");
    // --max-ctx-len 64: rows 0..64.
    for (i, t) in decode_inputs(&template, 5, 64).iter().enumerate() {
        method
            .set_input(i, &etmlx_runtime::HostValue::Tensor(t.clone()))
            .expect("set_input");
    }
    let err = method.execute().expect_err("row 64 of 64");
    let message = format!("{err:#}");
    assert!(
        message.contains("decode attention") && message.contains("rows 64..65 of 64"),
        "{message}"
    );
}
