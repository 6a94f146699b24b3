//! Real weights: SmolLM2-135M-Instruct exported in fp32 by the official exporter (`tools/demo.sh` writes it),
//! against HF transformers' greedy `generate()` on the same fp32 model (tests/fixtures/tokenizers/smollm2/
//! greedy_reference.json): the chat-templated prompt ids and the generated ids must be identical.
//!
//! The export is ~540 MB, too large to commit. The test runs when it exists at `$ETMLX_SMOLLM2_PTE`, else at the
//! demo's cache path; otherwise it prints a notice and passes (listed in tests/conditional_tests.txt).

use std::ops::ControlFlow;
use std::path::PathBuf;

use etmlx_llm::{GenerateOptions, Generator, Message, ModelOptions, StopReason};

mod common;

fn export_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ETMLX_SMOLLM2_PTE") {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var_os("ETMLX_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/etmlx")))?;
    let p = home.join("models/smollm2/pte/smollm2-fp32.pte");
    p.exists().then_some(p)
}

fn messages(case: &serde_json::Value) -> Vec<Message> {
    case["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            Message::new(
                m["role"].as_str().expect("role"),
                m["content"].as_str().expect("content"),
            )
        })
        .collect()
}

#[test]
fn smollm2_fp32_greedy_matches_hf() {
    greedy_matches_hf("smollm2_fp32_greedy_matches_hf", ModelOptions::default());
}

/// The same with the rewrites that are on by default only on the GPU (fused RoPE, compiled SwiGLU) forced on,
/// on whatever device runs the test: the rewritten graph of a real model still generates HF's ids.
#[test]
fn smollm2_fp32_greedy_matches_hf_with_the_gpu_rewrites() {
    use etmlx_mlx::backend::option_keys;
    let mut options = ModelOptions::default();
    for key in [option_keys::FUSE_ROPE, option_keys::COMPILE_SWIGLU] {
        options.backend.set(
            etmlx_mlx::BACKEND_ID,
            key,
            etmlx_runtime::OptionValue::Bool(true),
        );
    }
    greedy_matches_hf(
        "smollm2_fp32_greedy_matches_hf_with_the_gpu_rewrites",
        options,
    );
}

fn greedy_matches_hf(test: &str, model_options: ModelOptions) {
    let Some(pte) = export_path() else {
        eprintln!(
            "NOTICE: {test} did not run: no SmolLM2 fp32 export found (set \
             ETMLX_SMOLLM2_PTE or run tools/demo.sh, which writes ~/.cache/etmlx/models/smollm2/pte/smollm2-fp32.pte); \
             see crates/etmlx-llm/tests/conditional_tests.txt"
        );
        return;
    };
    let reference = common::read_json(common::smollm2_dir().join("greedy_reference.json"));
    let max_new = reference["max_new_tokens"]
        .as_u64()
        .expect("max_new_tokens") as usize;
    let mut g = Generator::load(&pte, Some(&common::smollm2_dir()), model_options).expect("load");
    assert_eq!(
        g.stop_ids().ids(),
        common::ids(&reference["stop_ids"]),
        "stop ids (HF's eos set)"
    );

    let options = GenerateOptions {
        max_new_tokens: max_new,
        ..GenerateOptions::default()
    };
    // One generator for every case: later cases reuse the shared system-prompt prefix of the cache.
    for case in reference["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().expect("name");
        // Cases without messages are raw completions of `prompt_text`.
        let prompt = if case.get("messages").is_some() {
            g.encode_chat(&messages(case)).expect("render + encode")
        } else {
            g.encode_raw(case["prompt_text"].as_str().expect("prompt_text"))
                .expect("encode")
        };
        assert_eq!(
            prompt,
            common::ids(&case["prompt_ids"]),
            "{name}: prompt ids vs HF apply_chat_template"
        );
        let mut text = String::new();
        let out = g
            .generate(&prompt, &options, |ev| {
                text.push_str(ev.text);
                ControlFlow::Continue(())
            })
            .expect("generate");
        let expected = common::ids(&case["generated_ids"]);
        assert_eq!(
            out.token_ids, expected,
            "{name}: greedy ids vs HF generate()"
        );
        assert_eq!(out.stop_reason, StopReason::Eos, "{name}");
        // HF's text keeps the special stop token; ours (skip_special_tokens) does not.
        let hf_text = case["generated_text"]
            .as_str()
            .expect("text")
            .trim_end_matches("<|im_end|>");
        assert_eq!(out.text, hf_text, "{name}: text");
        assert_eq!(text, out.text, "{name}: streamed text");
        eprintln!(
            "{name}: {} ids identical; {}",
            expected.len(),
            out.stats.summary()
        );
    }
}
