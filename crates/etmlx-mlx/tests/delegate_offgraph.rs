//! Off-graph KV cache end to end: `UpdateAndAttend` programs run through an installed
//! `SequenceCache`. Expected values come from the official exporter's fixtures: the op suite's
//! `update_and_attend_decode` config (eager reference cache) and the tiny Llama exported with
//! `--use-offgraph-cache` (HF eager logits for a prefill and one decode step).

mod delegate_common;

use delegate_common::*;
use etmlx_mlx::cache::CacheGeometry;
use etmlx_mlx::{install_sequence_cache, KvCacheSpec};
use etmlx_runtime::BackendOptions;

#[test]
fn suite_update_and_attend_decode_through_the_method_api() {
    let dir = suite_config("0886_update_and_attend_decode");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let spec: KvCacheSpec = config["kv_cache"]
        .as_str()
        .expect("kv_cache spec")
        .parse()
        .unwrap();
    let (rtol, atol) = (
        config["rtol"].as_f64().unwrap() as f32,
        config["atol"].as_f64().unwrap() as f32,
    );
    let mut options = BackendOptions::default();
    let cache = install_sequence_cache(&mut options, &spec).unwrap();
    let mut method = open(&dir, options).load_method("forward").unwrap();
    let inputs = read_bin(&dir.join("input.bin"));
    let want = read_bin(&dir.join("expected_output.bin"));
    let got = run(&mut method, &inputs);
    assert_close("update_and_attend_decode", &got[0], &want[0], rtol, atol);
    {
        let c = cache.lock().unwrap();
        assert_eq!(
            (c.layer_len(0), c.layer_len(1)),
            (Some(1), Some(1)),
            "both layers committed position 0"
        );
    }
    // Feeding position 0 again overwrites it and attends over [0, 1) only: the same result.
    let again = run(&mut method, &inputs);
    assert_close(
        "update_and_attend_decode, position 0 again",
        &again[0],
        &want[0],
        rtol,
        atol,
    );
    assert_eq!(cache.lock().unwrap().len(), 1);
}

#[test]
fn tiny_llama_offgraph_prefill_then_decode_match_hf() {
    let dir = fixture("tiny_llama_offgraph");
    let (rtol, atol) = tolerance(&dir);
    let geometry = CacheGeometry::from_program(&open(&dir, BackendOptions::default())).unwrap();
    // The fixture's getters: 2 caches of 2 KV heads x 16, flat, chunk 16, context 64.
    assert_eq!(geometry.kv_heads, vec![2, 2]);
    assert_eq!(geometry.head_dims, vec![16, 16]);
    assert_eq!(geometry.windows, vec![0, 0]);
    assert_eq!(
        (geometry.prefill_chunk_size, geometry.max_ctx_len),
        (Some(16), Some(64))
    );
    let spec = KvCacheSpec::from_geometry(&geometry, None, mlx::Dtype::Float32, None).unwrap();

    let mut options = BackendOptions::default();
    let cache = install_sequence_cache(&mut options, &spec).unwrap();
    let program = open(&dir, options);
    let mut method = program.load_method("forward").unwrap();

    let prefill = run(&mut method, &read_bin(&dir.join("input_prefill.bin")));
    let want = read_bin(&dir.join("expected_prefill_logits.bin"));
    assert_close("prefill logits", &prefill[0], &want[0], rtol, atol);
    assert_eq!(cache.lock().unwrap().len(), 8);

    let decode = run(&mut method, &read_bin(&dir.join("input_decode.bin")));
    let want = read_bin(&dir.join("expected_decode_logits.bin"));
    assert_close("decode logits", &decode[0], &want[0], rtol, atol);
    assert_eq!(cache.lock().unwrap().len(), 9);

    // Undo the decode step and run it again: same logits (the runner's /undo path).
    cache.lock().unwrap().rewind(1).unwrap();
    let redo = run(&mut method, &read_bin(&dir.join("input_decode.bin")));
    assert_close("decode logits after rewind", &redo[0], &want[0], rtol, atol);
}

#[test]
fn tiny_llama_offgraph_greedy_generation_matches_hf() {
    use etmlx_runtime::{HostTensor, ScalarType};
    let dir = fixture("tiny_llama_offgraph");
    let greedy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("greedy.json")).unwrap()).unwrap();
    let ids = |key: &str| -> Vec<i64> {
        greedy[key]
            .as_array()
            .expect(key)
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect()
    };
    let (prompt, want) = (ids("prompt_ids"), ids("new_token_ids"));
    let long = |values: &[i64], sizes: Vec<i64>| {
        HostTensor::new(
            ScalarType::Long,
            sizes,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        )
        .unwrap()
    };
    let spec = KvCacheSpec::from_geometry(
        &CacheGeometry::from_program(&open(&dir, BackendOptions::default())).unwrap(),
        None,
        mlx::Dtype::Float32,
        None,
    )
    .unwrap();
    let mut options = BackendOptions::default();
    install_sequence_cache(&mut options, &spec).unwrap();
    let mut method = open(&dir, options).load_method("forward").unwrap();

    let last_argmax = |logits: &etmlx_runtime::HostTensor| -> i64 {
        let values = f32s(logits);
        let vocab = *logits.sizes.last().unwrap() as usize;
        let row = &values[values.len() - vocab..];
        (0..vocab)
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .unwrap() as i64
    };
    let n = prompt.len() as i64;
    let positions: Vec<i64> = (0..n).collect();
    let mut token = last_argmax(
        &run(
            &mut method,
            &[long(&prompt, vec![1, n]), long(&positions, vec![n])],
        )[0],
    );
    let mut got = vec![token];
    for step in 0..want.len() as i64 - 1 {
        let logits = run(
            &mut method,
            &[long(&[token], vec![1, 1]), long(&[n + step], vec![1])],
        );
        token = last_argmax(&logits[0]);
        got.push(token);
    }
    assert_eq!(got, want);
}

/// The suite's `update_and_attend` program over six steps with a sliding window of 3 on layer 0
/// (a ring of 3 + 4 - 1 = 6 slots, wrapped twice) and a flat layer 1, against the official eager
/// reference cache (`tests/delegate_data/make_ring_steps.py`).
#[test]
fn suite_model_with_a_sliding_window_layer_over_steps() {
    use etmlx_mlx::cache::LayerGeometry;
    let data =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/delegate_data/ring_steps");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("meta.json")).unwrap()).unwrap();
    let (rtol, atol) = tolerance(&data);
    let windows: Vec<usize> = meta["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_u64().unwrap() as usize)
        .collect();
    let spec = KvCacheSpec {
        capacity: meta["capacity"].as_u64().unwrap() as usize,
        dtype: mlx::Dtype::Float32,
        layers: windows
            .iter()
            .map(|&window| LayerGeometry {
                n_kv_heads: 2,
                head_dim: 8,
                window,
            })
            .collect(),
        initial_capacity: etmlx_mlx::cache::DEFAULT_INITIAL_CAPACITY,
        max_write: meta["max_write"].as_u64().unwrap() as usize,
    };
    let mut options = BackendOptions::default();
    let cache = install_sequence_cache(&mut options, &spec).unwrap();
    assert_eq!(windows, vec![3, 0]);
    let mut method = open(&suite_config("0886_update_and_attend_decode"), options)
        .load_method("forward")
        .unwrap();
    let steps = meta["steps"].as_array().unwrap();
    for (i, step) in steps.iter().enumerate() {
        let got = run(
            &mut method,
            &read_bin(&data.join(format!("input_step{i}.bin"))),
        );
        let want = read_bin(&data.join(format!("expected_step{i}.bin")));
        assert_close(&format!("step {i} {step}"), &got[0], &want[0], rtol, atol);
    }
    let end = steps
        .last()
        .map(|s| s[0].as_u64().unwrap() + s[1].as_u64().unwrap())
        .unwrap() as usize;
    let c = cache.lock().unwrap();
    assert_eq!(c.len(), end);
    assert_eq!(
        c.allocated_slots(0),
        Some(6),
        "the windowed layer is a 6-slot ring"
    );
    assert_eq!(
        c.allocated_slots(1),
        Some(16),
        "the flat layer starts at min(512, capacity)"
    );
}
