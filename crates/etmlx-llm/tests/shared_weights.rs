//! Sessions of one model (`LlmModel::sibling`) share its weights and keep their own KV state: on the official
//! tiny random Llama export (tests/fixtures/tiny_llama_default, in-graph cache), 8 sessions cost one copy of the
//! weights plus 8 caches in MLX's active memory; and sessions stepping from different threads each reproduce HF
//! transformers' greedy ids (greedy.json) with in-graph, custom and off-graph KV caches.
//!
//! The two tests measure process-wide MLX memory, so they run one at a time (`SERIAL`).

use std::path::PathBuf;
use std::sync::Mutex;

use etmlx_llm::{GenerateOptions, Generator, LlmModel, ModelOptions, StopIds};

static SERIAL: Mutex<()> = Mutex::new(());

fn fixture_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn fixture() -> PathBuf {
    fixture_dir("tiny_llama_default")
}

fn read_json(name: &str) -> serde_json::Value {
    read_fixture_json("tiny_llama_default", name)
}

fn read_fixture_json(fixture: &str, name: &str) -> serde_json::Value {
    let path = fixture_dir(fixture).join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json")
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("ids")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

/// KV cache bytes of one session, from the HF config the fixture was exported from (fp32 keys and values of
/// `max_ctx_len` positions, per layer and KV head).
fn cache_bytes_per_session() -> usize {
    let meta = read_json("meta.json");
    let config = &meta["hf_config"];
    let field = |name: &str| config[name].as_u64().expect(name) as usize;
    let max_ctx = meta["max_ctx_len"].as_u64().expect("max_ctx_len") as usize;
    let (layers, kv_heads, head_dim) = (
        field("num_hidden_layers"),
        field("num_key_value_heads"),
        field("head_dim"),
    );
    2 * layers * kv_heads * max_ctx * head_dim * std::mem::size_of::<f32>()
}

fn active() -> usize {
    mlx::memory::active_memory().expect("active memory")
}

#[test]
fn eight_sessions_cost_one_copy_of_the_weights_plus_eight_caches() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let pte = fixture().join("model.pte");
    let weights_in_file = std::fs::metadata(&pte).expect("pte").len() as usize;
    let cache = cache_bytes_per_session();

    let before = active();
    let first = LlmModel::open(&pte, ModelOptions::default()).expect("open");
    let one = active() - before;
    let siblings: Vec<LlmModel> = (0..7).map(|_| first.sibling().expect("sibling")).collect();
    let eight = active() - before;
    let added = eight - one;
    println!(
        "1 session: {one} B, 8 sessions: {eight} B, 7 more sessions added {added} B (7 caches = {} B)",
        7 * cache
    );
    // One session holds the weights (most of the file) and its cache.
    assert!(
        one >= cache && one > weights_in_file / 2,
        "one session: {one} B"
    );
    // Seven more add their caches, and no second copy of the weights (which alone would add > half the file).
    // MLX may hold up to a page of small per-handle state besides (measured: 0 after a fresh start, 4 KiB in
    // all after other sessions ran in this process).
    assert!(
        (7 * cache..=7 * (cache + 4096)).contains(&added),
        "seven more sessions added {added} B; their caches are {} B",
        7 * cache
    );
    drop(siblings);
    drop(first);
    assert_eq!(
        active(),
        before,
        "everything is freed with the last session"
    );
}

/// Four sessions of `fixture`, half of them warmed up on another prompt, each generating the fixture's prompt
/// three times on its own thread: every session's answer is HF's greedy ids.
fn sessions_on_threads_match_hf(fixture: &str) {
    let greedy = read_fixture_json(fixture, "greedy.json");
    let prompt = ids(&read_fixture_json(fixture, "meta.json")["prompt_ids"]);
    let expected = ids(&greedy["new_token_ids"]);
    let options = GenerateOptions {
        max_new_tokens: expected.len(),
        ..GenerateOptions::default()
    };
    let model = LlmModel::open(
        fixture_dir(fixture).join("model.pte"),
        ModelOptions::default(),
    )
    .expect("open");
    let mut generators: Vec<Generator> = (0..4)
        .map(|_| {
            let mut g = Generator::new(model.sibling().expect("sibling"), None).expect("gen");
            g.set_stop_ids(StopIds::new([]));
            g
        })
        .collect();
    // A different prompt first in half of the sessions: their caches hold other tokens when the real prompt
    // arrives, so a session reading another's state would show.
    for g in generators.iter_mut().step_by(2) {
        g.generate(&[5, 6, 7, 8, 9, 10], &options, |_| {
            std::ops::ControlFlow::Continue(())
        })
        .expect("warm-up");
    }
    let results: Vec<Vec<u32>> = std::thread::scope(|s| {
        let handles: Vec<_> = generators
            .iter_mut()
            .map(|g| {
                let (prompt, options) = (&prompt, &options);
                s.spawn(move || {
                    (0..3)
                        .map(|_| {
                            g.generate(prompt, options, |_| std::ops::ControlFlow::Continue(()))
                                .expect("generate")
                                .token_ids
                        })
                        .last()
                        .expect("three runs")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    for (i, got) in results.iter().enumerate() {
        assert_eq!(got, &expected, "{fixture}: session {i} vs HF greedy ids");
    }
}

#[test]
fn sessions_step_from_different_threads_and_keep_their_own_state() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // In-graph cache (HF default mode), custom SDPA + custom KV cache, and off-graph cache (one per session).
    for fixture in [
        "tiny_llama_default",
        "tiny_llama_custom",
        "tiny_llama_offgraph",
    ] {
        sessions_on_threads_match_hf(fixture);
    }
}
