//! `etmlx serve` refuses bad start-up input with a clear message and a nonzero exit, before listening. (The
//! running server is tested end to end with the official `openai` client by `tools/test-serve.sh`.)

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn serve(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etmlx"))
        .arg("serve")
        .args(args)
        .args(["--port", "0"])
        .output()
        .expect("run etmlx")
}

fn failure(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    assert!(out.stdout.is_empty(), "nothing printed on stdout (no URL)");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn missing_model_names_the_file() {
    let tok = fixtures().join("tokenizers/smollm2");
    let err = failure(&serve(&[
        "/nonexistent/model.pte",
        "--tokenizer",
        tok.to_str().unwrap(),
    ]));
    assert!(err.contains("/nonexistent/model.pte"), "{err}");
}

#[test]
fn missing_tokenizer_names_the_folder() {
    let pte = fixtures().join("tiny_llama_default/model.pte");
    let err = failure(&serve(&[
        pte.to_str().unwrap(),
        "--tokenizer",
        "/nonexistent/tok",
    ]));
    assert!(err.contains("/nonexistent/tok"), "{err}");
}

#[test]
fn zero_slots_is_refused() {
    let pte = fixtures().join("tiny_llama_default/model.pte");
    let tok = fixtures().join("tokenizers/smollm2");
    let err = failure(&serve(&[
        pte.to_str().unwrap(),
        "--tokenizer",
        tok.to_str().unwrap(),
        "--slots",
        "0",
    ]));
    assert!(err.contains("--slots"), "{err}");
}

#[test]
fn a_tokenizer_larger_than_the_model_vocabulary_is_refused() {
    // SmolLM2's tokenizer has 49k ids; the tiny model's vocabulary is 512.
    let pte = fixtures().join("tiny_llama_default/model.pte");
    let tok = fixtures().join("tokenizers/smollm2");
    let err = failure(&serve(&[
        pte.to_str().unwrap(),
        "--tokenizer",
        tok.to_str().unwrap(),
    ]));
    assert!(err.contains("vocabulary"), "{err}");
}
