//! The generator on the official tiny random Llama exports (tests/fixtures/tiny_llama_*), against HF
//! transformers' eager fp32 outputs recorded by `python/export_fixtures.py`: prefill logits, decode logits after
//! the prefill, and greedy `generate()` ids (12 new tokens). No tokenizer: raw token-id prompts.

mod common;

use std::ops::ControlFlow;
use std::path::PathBuf;

use common::{fixture, ids, read_json};

use etmlx_llm::model::{KvCacheKind, OutputKind, PositionInput};
use etmlx_llm::{GenerateOptions, Generator, LlmModel, ModelOptions, StopIds};
use etmlx_runtime::{HostTensor, HostValue};

struct Fixture {
    dir: PathBuf,
    meta: serde_json::Value,
    greedy: serde_json::Value,
}

impl Fixture {
    fn load(name: &str) -> Fixture {
        let dir = fixture(name);
        Fixture {
            meta: read_json(dir.join("meta.json")),
            greedy: read_json(dir.join("greedy.json")),
            dir,
        }
    }
    fn pte(&self) -> PathBuf {
        self.dir.join("model.pte")
    }
    fn prompt(&self) -> Vec<u32> {
        ids(&self.meta["prompt_ids"])
    }
    fn tolerance(&self) -> (f32, f32) {
        let t = &self.meta["tolerance"];
        (
            t["rtol"].as_f64().expect("rtol") as f32,
            t["atol"].as_f64().expect("atol") as f32,
        )
    }
    fn expected(&self, file: &str) -> HostTensor {
        let mut tensors =
            etmlx_runtime::io::bin::read_file(&self.dir.join(file)).expect("expected .bin");
        assert_eq!(tensors.len(), 1, "{file} holds one tensor");
        tensors.remove(0)
    }
    fn greedy_ids(&self) -> Vec<u32> {
        ids(&self.greedy["new_token_ids"])
    }
}

fn as_f32(t: &HostTensor) -> Vec<f32> {
    etmlx_llm::model::logits_to_f32(t.dtype, &t.bytes).expect("float tensor")
}

/// Element-wise `|a - e| <= atol + rtol·|e|`; reports the worst element.
fn assert_close(what: &str, actual: &HostTensor, expected: &HostTensor, (rtol, atol): (f32, f32)) {
    assert_eq!(actual.sizes, expected.sizes, "{what}: shape");
    let (a, e) = (as_f32(actual), as_f32(expected));
    let mut worst = (0usize, 0f32);
    for (i, (x, y)) in a.iter().zip(&e).enumerate() {
        // NaN anywhere counts as the worst possible element.
        let excess = (x - y).abs() - (atol + rtol * y.abs());
        let excess = if excess.is_nan() {
            f32::INFINITY
        } else {
            excess
        };
        if excess > worst.1 {
            worst = (i, excess);
        }
    }
    assert!(
        worst.1 <= 0.0,
        "{what}: element {} is {} vs expected {} (rtol {rtol}, atol {atol})",
        worst.0,
        a[worst.0],
        e[worst.0]
    );
}

fn tensor(v: HostValue) -> HostTensor {
    match v {
        HostValue::Tensor(t) => t,
        other => panic!("expected a tensor, got {other:?}"),
    }
}

/// Prefill logits for the prompt at positions 0..n, then decode logits for `decode_token` at `decode_position`;
/// then the default load, which keeps only the last prompt position's logits, against the same reference.
fn check_logits(name: &str) {
    let f = Fixture::load(name);
    let all_positions = ModelOptions {
        all_position_logits: true,
        ..ModelOptions::default()
    };
    let mut model = LlmModel::open(f.pte(), all_positions).expect("open");
    let prompt = f.prompt();
    let prefill = tensor(model.forward_raw(&prompt, 0, None).expect("prefill"));
    assert_close(
        &format!("{name} prefill"),
        &prefill,
        &f.expected("expected_prefill_logits.bin"),
        f.tolerance(),
    );
    let token = f.meta["decode_token"].as_u64().expect("decode_token") as u32;
    let position = f.meta["decode_position"].as_u64().expect("decode_position") as usize;
    assert_eq!(position, prompt.len());
    let decode = tensor(model.forward_raw(&[token], position, None).expect("decode"));
    assert_close(
        &format!("{name} decode"),
        &decode,
        &f.expected("expected_decode_logits.bin"),
        f.tolerance(),
    );

    let expected = f.expected("expected_prefill_logits.bin");
    let mut model = LlmModel::open(f.pte(), ModelOptions::default()).expect("open");
    let last = tensor(model.forward_raw(&prompt, 0, None).expect("prefill"));
    match expected.sizes[..] {
        [1, t, v] => {
            let row = v as usize * expected.dtype.element_size();
            let tail = expected.bytes[expected.bytes.len() - row..].to_vec();
            let expected_last = HostTensor {
                sizes: vec![1, 1, v],
                bytes: tail,
                ..expected
            };
            assert!(t > 1, "{name}: the prompt should span several positions");
            assert_close(
                &format!("{name} last-position prefill"),
                &last,
                &expected_last,
                f.tolerance(),
            );
        }
        // Exports that return only the last position ([1, V]) are left as they are.
        _ => assert_close(&format!("{name} prefill"), &last, &expected, f.tolerance()),
    }
}

fn greedy_options(n: usize) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens: n,
        ..GenerateOptions::default()
    }
}

/// HF `generate(do_sample=False, max_new_tokens=12, eos_token_id=None)`: no stop ids.
fn generator(f: &Fixture) -> Generator {
    let model = LlmModel::open(f.pte(), ModelOptions::default()).expect("open");
    let mut g = Generator::new(model, None).expect("generator");
    assert!(
        f.greedy["eos_token_id"].is_null(),
        "the reference ran without EOS"
    );
    g.set_stop_ids(StopIds::default());
    g
}

fn check_greedy(name: &str) {
    let f = Fixture::load(name);
    let mut g = generator(&f);
    let expected = f.greedy_ids();
    let mut streamed = Vec::new();
    let out = g
        .generate(&f.prompt(), &greedy_options(expected.len()), |ev| {
            streamed.push(ev.id);
            ControlFlow::Continue(())
        })
        .expect("generate");
    assert_eq!(
        out.token_ids, expected,
        "{name}: greedy ids vs HF generate()"
    );
    assert_eq!(
        streamed, expected,
        "{name}: the callback saw every token in order"
    );
    assert_eq!(out.stop_reason, etmlx_llm::StopReason::Length);
    assert_eq!(out.stats.prompt_tokens, f.prompt().len());
    assert_eq!(out.stats.generated_tokens, expected.len());
}

/// A generator reused for another prompt must give the same ids as a fresh one: position-addressed caches make
/// a reset (or a rewind to a shared prefix) complete. Runs a longer unrelated prompt first so stale entries sit
/// beyond the fixture prompt's positions.
fn check_reuse(name: &str) {
    let f = Fixture::load(name);
    let mut g = generator(&f);
    let expected = f.greedy_ids();
    let other: Vec<u32> = (0..30).map(|i| (i * 37 + 5) % 500).collect();
    g.generate(&other, &greedy_options(5), |_| ControlFlow::Continue(()))
        .expect("first prompt");
    g.reset().expect("reset");
    let out = g
        .generate(&f.prompt(), &greedy_options(expected.len()), |_| {
            ControlFlow::Continue(())
        })
        .expect("after reset");
    assert_eq!(out.token_ids, expected, "{name}: greedy ids after reset");

    // Continuing with the full sequence so far reuses the cache (only the new tail is prefilled) and must equal
    // greedy decoding of the whole: the fixture's 12 ids are the continuation of prompt + first 6 ids.
    let mut prefix = f.prompt();
    prefix.extend_from_slice(&expected[..6]);
    let out = g
        .generate(&prefix, &greedy_options(6), |_| ControlFlow::Continue(()))
        .expect("continue");
    assert_eq!(
        out.token_ids,
        expected[6..],
        "{name}: continuation over a reused cache"
    );
    assert_eq!(
        out.stats.prompt_tokens, 1,
        "{name}: only the token not yet in the cache is prefilled"
    );
}

#[test]
fn metadata_of_every_mode() {
    for (name, chunk, max_ctx, kv_offgraph) in [
        ("tiny_llama_custom", 16, 64, false),
        ("tiny_llama_default", 63, 64, false),
        ("tiny_llama_offgraph", 16, 64, true),
        ("tiny_llama_custom_bf16", 16, 64, false),
        ("tiny_llama_custom_4w", 16, 64, false),
    ] {
        let f = Fixture::load(name);
        let model = LlmModel::open(f.pte(), ModelOptions::default()).expect("open");
        let m = model.metadata();
        assert_eq!(m.prefill_chunk_size, chunk, "{name}");
        assert_eq!(m.max_ctx_len, max_ctx, "{name}");
        assert_eq!(m.positions, PositionInput::PerToken, "{name}");
        assert_eq!(m.output, OutputKind::AllLogits, "{name}");
        assert_eq!(m.vocab_size, Some(512), "{name}");
        assert_eq!(
            matches!(m.kv_cache, KvCacheKind::OffGraph(_)),
            kv_offgraph,
            "{name}"
        );
    }
    // The optimum (default) mode also carries the tokenizer-side ids.
    let model = LlmModel::open(
        fixture("tiny_llama_default/model.pte"),
        ModelOptions::default(),
    )
    .expect("open");
    assert_eq!(model.metadata().bos_id, Some(1));
    assert_eq!(model.metadata().eos_ids, vec![2]);
    assert_eq!(model.metadata().max_seq_len, Some(64));
}

#[test]
fn custom_sdpa_logits() {
    check_logits("tiny_llama_custom");
}
#[test]
fn custom_sdpa_greedy() {
    check_greedy("tiny_llama_custom");
}
#[test]
fn custom_sdpa_reused_generator() {
    check_reuse("tiny_llama_custom");
}

#[test]
fn default_mode_logits() {
    check_logits("tiny_llama_default");
}
#[test]
fn default_mode_greedy() {
    check_greedy("tiny_llama_default");
}
#[test]
fn default_mode_reused_generator() {
    check_reuse("tiny_llama_default");
}

#[test]
fn offgraph_logits() {
    check_logits("tiny_llama_offgraph");
}
#[test]
fn offgraph_greedy() {
    check_greedy("tiny_llama_offgraph");
}
#[test]
fn offgraph_reused_generator() {
    check_reuse("tiny_llama_offgraph");
}

#[test]
fn bf16_logits_within_bf16_tolerance() {
    check_logits("tiny_llama_custom_bf16");
}
#[test]
fn q4_logits_within_tolerance() {
    check_logits("tiny_llama_custom_4w");
}

/// A prefill longer than one chunk (16): prompt + the first 11 greedy ids (19 tokens, two chunks) must be followed
/// by HF's 12th greedy id.
#[test]
fn chunked_prefill_matches_greedy() {
    for name in ["tiny_llama_custom", "tiny_llama_offgraph"] {
        let f = Fixture::load(name);
        let mut g = generator(&f);
        let expected = f.greedy_ids();
        let mut long = f.prompt();
        long.extend_from_slice(&expected[..expected.len() - 1]);
        assert!(long.len() > g.model().metadata().prefill_chunk_size);
        let out = g
            .generate(&long, &greedy_options(1), |_| ControlFlow::Continue(()))
            .expect("generate");
        assert_eq!(out.token_ids, expected[expected.len() - 1..], "{name}");
        assert_eq!(out.stats.prompt_tokens, long.len());
    }
}

#[test]
fn context_limits() {
    let f = Fixture::load("tiny_llama_custom");
    let mut g = generator(&f);
    // A prompt longer than the 64-position context is refused before anything runs.
    let too_long: Vec<u32> = (0..65).map(|i| i % 500).collect();
    let err = g
        .generate(&too_long, &greedy_options(4), |_| ControlFlow::Continue(()))
        .expect_err("too long");
    assert!(
        matches!(
            err,
            etmlx_llm::LlmError::ContextOverflow {
                max_ctx_len: 64,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("context"), "{err}");
    // A prompt that fits runs until the context is full: 60 prompt tokens leave 4 positions, so the 5th
    // generated token cannot be fed and generation stops there.
    let prompt: Vec<u32> = (0..60).map(|i| (i * 7 + 3) % 500).collect();
    let out = g
        .generate(&prompt, &greedy_options(100), |_| ControlFlow::Continue(()))
        .expect("fits");
    assert_eq!(out.stop_reason, etmlx_llm::StopReason::ContextFull);
    assert_eq!(out.token_ids.len(), 64 - 60 + 1);
}

#[test]
fn stop_ids_and_cancel() {
    let f = Fixture::load("tiny_llama_custom");
    let mut g = generator(&f);
    let expected = f.greedy_ids();
    // Make the 3rd greedy id a stop id: generation ends with it, and it is part of token_ids.
    g.set_stop_ids(StopIds::new([expected[2]]));
    let out = g
        .generate(&f.prompt(), &greedy_options(12), |_| {
            ControlFlow::Continue(())
        })
        .expect("generate");
    assert_eq!(out.token_ids, expected[..3]);
    assert_eq!(out.stop_reason, etmlx_llm::StopReason::Eos);
    // Breaking from the callback cancels after that token.
    g.set_stop_ids(StopIds::default());
    let out = g
        .generate(&f.prompt(), &greedy_options(12), |ev| {
            if ev.index == 4 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .expect("generate");
    assert_eq!(out.token_ids, expected[..5]);
    assert_eq!(out.stop_reason, etmlx_llm::StopReason::Cancelled);
}

#[test]
fn not_an_llm_is_refused() {
    // The mlp fixture has a `forward` of one float input: not an LLM signature.
    let err = LlmModel::open(fixture("mlp/model.pte"), ModelOptions::default())
        .expect_err("mlp is no LLM");
    assert!(matches!(err, etmlx_llm::LlmError::NotAnLlm { .. }), "{err}");
    assert!(err.to_string().contains("not an LLM export"), "{err}");
}
