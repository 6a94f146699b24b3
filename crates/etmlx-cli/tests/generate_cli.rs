//! `etmlx generate` end to end on the tiny random Llama export (tests/fixtures/tiny_llama_custom): greedy ids in
//! the `--json` line equal HF `generate()`'s (greedy.json), and bad inputs fail with a clear message and a
//! nonzero exit.
//!
//! The tiny model has no tokenizer, so the test writes a word-level one whose token `wN` is id N (and `<s>` is
//! the special id 1): the prompt text "<s> w17 w42 ..." encodes to exactly the fixture's prompt ids.

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn etmlx(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etmlx"))
        .args(args)
        .output()
        .expect("run etmlx")
}

fn read_json(path: PathBuf) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json")
}

/// A word-level tokenizer over ids 0..512 (`wN` = N, `<s>` = 1), written to a fresh scratch folder.
fn word_tokenizer(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("etmlx-cli-generate")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let vocab: serde_json::Map<String, serde_json::Value> = (0..512u32)
        .map(|i| {
            (
                if i == 1 {
                    "<s>".to_string()
                } else {
                    format!("w{i}")
                },
                serde_json::json!(i),
            )
        })
        .collect();
    let tokenizer = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [{"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false,
                          "normalized": false, "special": true}],
        "normalizer": null,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "w0"}
    });
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, serde_json::to_string(&tokenizer).expect("json"))
        .expect("write tokenizer");
    path
}

fn prompt_text(ids: &[u64]) -> String {
    ids.iter()
        .map(|&i| {
            if i == 1 {
                "<s>".to_string()
            } else {
                format!("w{i}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn json_greedy_ids_match_hf() {
    check_greedy_ids(&[]);
}

/// The same through the fused kernels' bookkeeping (`--mlx-option`; on the CPU the fusions build the unfused
/// ops, on CUDA the kernels run).
#[test]
fn greedy_ids_match_hf_with_the_fused_kernels_forced() {
    check_greedy_ids(&[
        "--mlx-option",
        "fuse_decode_attention=true",
        "--mlx-option",
        "fuse_residual_norm=true",
    ]);
}

fn check_greedy_ids(extra_args: &[&str]) {
    let dir = fixtures().join("tiny_llama_custom");
    let meta = read_json(dir.join("meta.json"));
    let greedy = read_json(dir.join("greedy.json"));
    let prompt: Vec<u64> = meta["prompt_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let expected = &greedy["new_token_ids"];
    let tok = word_tokenizer("json");
    let pte = dir.join("model.pte");
    let prompt_arg = prompt_text(&prompt);
    let mut args = vec![
        "generate",
        pte.to_str().unwrap(),
        "--tokenizer",
        tok.to_str().unwrap(),
        "--prompt",
        &prompt_arg,
        "--raw",
        "--json",
        "--temperature",
        "0",
        "--max-new-tokens",
        "12",
    ];
    args.extend_from_slice(extra_args);
    let out = etmlx(&args);
    assert!(out.status.success(), "etmlx failed: {}", stderr(&out));
    let stdout = String::from_utf8(out.stdout.clone()).expect("utf-8");
    let last = stdout.lines().last().expect("a JSON line");
    let json: serde_json::Value = serde_json::from_str(last).expect("last line is JSON");
    assert_eq!(&json["token_ids"], expected, "greedy ids vs HF generate()");
    assert_eq!(json["stop_reason"], "length");
    assert_eq!(json["stats"]["prompt_tokens"], prompt.len());
    assert_eq!(json["stats"]["generated_tokens"], 12);
    for key in ["ttft_ms", "prefill_tok_s", "decode_tok_s"] {
        assert!(
            json["stats"][key].as_f64().is_some_and(|v| v > 0.0),
            "stats.{key}: {}",
            json["stats"]
        );
    }
    // The word-level decoder joins tokens with spaces: the text is the ids spelled as words.
    let words: Vec<String> = expected
        .as_array()
        .unwrap()
        .iter()
        .map(|v| format!("w{}", v.as_u64().unwrap()))
        .collect();
    assert_eq!(
        json["text"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        words
    );
    assert!(
        stderr(&out).contains("TTFT"),
        "stats line on stderr: {}",
        stderr(&out)
    );
}

#[test]
fn streams_text_without_json() {
    let dir = fixtures().join("tiny_llama_custom");
    let tok = word_tokenizer("stream");
    let pte = dir.join("model.pte");
    let out = etmlx(&[
        "generate",
        pte.to_str().unwrap(),
        "--tokenizer",
        tok.to_str().unwrap(),
        "--prompt",
        "<s> w17 w42",
        "--raw",
        "--max-new-tokens",
        "5",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(
        text.split_whitespace().count(),
        5,
        "five words streamed: {text:?}"
    );
    assert!(
        stderr(&out).contains("generated: 5 tokens"),
        "{}",
        stderr(&out)
    );
}

fn assert_fails(args: &[&str], needle: &str) {
    let out = etmlx(args);
    assert!(!out.status.success(), "expected failure for {args:?}");
    let err = stderr(&out);
    assert!(
        err.contains(needle),
        "stderr of {args:?} should mention {needle:?}: {err}"
    );
}

#[test]
fn bad_inputs_fail_clearly() {
    let tiny = fixtures().join("tiny_llama_custom/model.pte");
    let tiny = tiny.to_str().unwrap();
    let tok = word_tokenizer("errors");
    let tok = tok.to_str().unwrap();
    // Missing tokenizer.
    assert_fails(
        &[
            "generate",
            tiny,
            "--tokenizer",
            "/nonexistent/tok",
            "--prompt",
            "hi",
        ],
        "not found",
    );
    // A tokenizer from another model (SmolLM2's 49152 ids vs the tiny model's 512).
    let smol = fixtures().join("tokenizers/smollm2");
    assert_fails(
        &[
            "generate",
            tiny,
            "--tokenizer",
            smol.to_str().unwrap(),
            "--prompt",
            "hi",
        ],
        "does not match the model",
    );
    // A prompt longer than the 64-position context.
    let long = vec!["w5"; 80].join(" ");
    assert_fails(
        &[
            "generate",
            tiny,
            "--tokenizer",
            tok,
            "--prompt",
            &long,
            "--raw",
        ],
        "does not fit the context",
    );
    // A .pte without an LLM signature.
    let mlp = fixtures().join("mlp/model.pte");
    assert_fails(
        &[
            "generate",
            mlp.to_str().unwrap(),
            "--tokenizer",
            tok,
            "--prompt",
            "hi",
        ],
        "not an LLM export",
    );
    // An MLXBackend option that does not exist, and a switch given a count.
    for (option, key) in [
        ("fuse_everything=true", "fuse_everything"),
        ("fuse_rope=3", "fuse_rope"),
    ] {
        assert_fails(
            &[
                "generate",
                tiny,
                "--tokenizer",
                tok,
                "--prompt",
                "w5",
                "--raw",
                "--mlx-option",
                option,
            ],
            &format!("unknown or mistyped MLXBackend option {key}"),
        );
    }
    // A value that is neither a switch nor a count.
    assert_fails(
        &[
            "generate",
            tiny,
            "--prompt",
            "w5",
            "--mlx-option",
            "submit_every=often",
        ],
        "'often' is not true, false or a non-negative integer",
    );
    // Chat templating without a template.
    assert_fails(
        &["generate", tiny, "--tokenizer", tok, "--prompt", "w5"],
        "no chat template",
    );
}
