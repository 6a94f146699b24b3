//! Staged submission (options `submit_every` and `stage_mflop`, `exec::stage`): a large call submitted in stages
//! gives the same outputs and caches bit for bit as one submitted at the end, stages only calls with enough rows,
//! and stages after every N-th product or by work. Its own test binary: the stage count comes from the
//! process-wide profile.

mod delegate_common;

use delegate_common::*;
use etmlx_mlx::backend::{option_keys, take_exec_timings, ExecTimings};
use etmlx_mlx::cache::CacheGeometry;
use etmlx_mlx::{install_sequence_cache, KvCacheSpec, BACKEND_ID};
use etmlx_runtime::{BackendOptions, HostTensor, Method, OptionValue, ScalarType};

const PROMPT: usize = 16;

/// Profiled, never staged by work unless `stage_mflop` is given, staged every `submit_every` products if > 0;
/// with a fresh off-graph KV cache of `geometry` when given (each method its own).
fn options(
    submit_every: i64,
    stage_mflop: i64,
    geometry: Option<&CacheGeometry>,
) -> BackendOptions {
    let mut o = BackendOptions::default();
    if let Some(g) = geometry {
        let spec =
            KvCacheSpec::from_geometry(g, None, mlx::Dtype::Float32, None).expect("cache spec");
        install_sequence_cache(&mut o, &spec).expect("off-graph cache");
    }
    o.set(BACKEND_ID, option_keys::PROFILE, OptionValue::Bool(true));
    o.set(
        BACKEND_ID,
        option_keys::SUBMIT_EVERY,
        OptionValue::Int(submit_every),
    );
    o.set(
        BACKEND_ID,
        option_keys::STAGE_MFLOP,
        OptionValue::Int(stage_mflop),
    );
    o
}

fn int64(sizes: Vec<i64>, values: impl IntoIterator<Item = i64>) -> HostTensor {
    let bytes = values.into_iter().flat_map(i64::to_le_bytes).collect();
    HostTensor::new(ScalarType::Long, sizes, bytes).expect("int64 tensor")
}

/// Token ids [1, T] and positions [T] from `start`.
fn inputs(tokens: &[i64], start: i64) -> Vec<HostTensor> {
    let n = tokens.len() as i64;
    vec![
        int64(vec![1, n], tokens.iter().copied()),
        int64(vec![n], start..start + n),
    ]
}

/// Runs `inputs` on `method` and returns the logits with the profile the call recorded.
fn call(method: &mut Method, inputs: &[HostTensor]) -> (HostTensor, ExecTimings) {
    let _ = take_exec_timings();
    let out = run(method, inputs).remove(0);
    (out, take_exec_timings())
}

fn argmax_last(logits: &HostTensor) -> i64 {
    let values = f32s(logits);
    let vocab = *logits.sizes.last().expect("vocab axis") as usize;
    let row = &values[values.len() - vocab..];
    (0..vocab)
        .max_by(|&a, &b| row[a].total_cmp(&row[b]))
        .expect("a row") as i64
}

/// A 16-token prefill and four greedy steps (in-graph caches of both modes, and an off-graph cache), unstaged, staged after every product, every second product, and by
/// work (1 MFLOP, and more than the whole call's): the same logits bit for bit at every call. The prefill stages
/// after every product (at least the four projections and the attention of each layer), every second product
/// gives half as many stages, 1 MFLOP at least one stage but at most one per five products, a threshold above
/// the call's work none, and a one-token step is never staged.
#[test]
fn staged_calls_give_the_same_logits_and_stage_large_calls_only() {
    for name in [
        "tiny_llama_custom",
        "tiny_llama_default",
        "tiny_llama_offgraph",
    ] {
        let dir = fixture(name);
        let geometry = (name == "tiny_llama_offgraph").then(|| {
            CacheGeometry::from_program(&open(&dir, BackendOptions::default())).expect("geometry")
        });
        let layers = {
            let text = std::fs::read_to_string(dir.join("meta.json")).expect("meta.json");
            let meta: serde_json::Value = serde_json::from_str(&text).expect("meta.json parses");
            meta["hf_config"]["num_hidden_layers"]
                .as_u64()
                .expect("layers")
        };
        let mut methods: Vec<Method> = [(0, 0), (1, 0), (2, 0), (0, 1), (0, 1_000_000)]
            .into_iter()
            .map(|(every, mflop)| {
                open(&dir, options(every, mflop, geometry.as_ref()))
                    .load_method("forward")
                    .expect("load")
            })
            .collect();
        let prompt: Vec<i64> = (0..PROMPT as i64).map(|i| (i * 37 + 5) % 500).collect();
        let mut step_inputs = inputs(&prompt, 0);
        for step in 0..5 {
            let calls: Vec<(HostTensor, ExecTimings)> =
                methods.iter_mut().map(|m| call(m, &step_inputs)).collect();
            let what = format!("{name}, call {step}");
            for (staged, _) in &calls[1..] {
                assert_eq!(staged.sizes, calls[0].0.sizes, "{what}");
                assert_eq!(
                    staged.bytes, calls[0].0.bytes,
                    "{what}: staged logits differ"
                );
            }
            let stages: Vec<u64> = calls.iter().map(|(_, t)| t.stages).collect();
            if step == 0 {
                assert_eq!(stages[0], 0, "{what}: unstaged");
                assert!(stages[1] >= 5 * layers, "{what}: {stages:?}");
                assert_eq!(stages[2], stages[1] / 2, "{what}: every second product");
                assert!(
                    stages[3] >= 1 && stages[3] <= stages[1] / 5,
                    "{what}: {stages:?}"
                );
                assert_eq!(stages[4], 0, "{what}: less work than one stage");
            } else {
                assert_eq!(stages, [0; 5], "{what}: a one-token step is not staged");
            }
            let next = argmax_last(&calls[0].0);
            step_inputs = inputs(&[next], (PROMPT + step) as i64);
        }
    }
}
