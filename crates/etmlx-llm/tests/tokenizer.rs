//! The SmolLM2 tokenizer folder against HF transformers' own encodings (fixtures written by python/smollm2.py),
//! and load errors that name the offending file.

mod common;

use std::fs;

use common::{ids, read_json, scratch_dir, smollm2_dir};
use etmlx_llm::{ChatTemplate, LlmError, Message, RenderOptions, Tokenizer};

fn smollm2() -> Tokenizer {
    Tokenizer::from_path(smollm2_dir()).expect("load SmolLM2 tokenizer folder")
}

#[test]
fn smollm2_special_tokens_and_vocab_come_from_the_config_files() {
    let tok = smollm2();
    // tokenizer_config.json: bos "<|im_start|>" (id 1), eos "<|im_end|>" (id 2); generation_config: eos 2, bos 1.
    let bos = tok.bos_token().expect("bos");
    assert_eq!((bos.text.as_str(), bos.id), ("<|im_start|>", 1));
    let eos = tok.eos_token().expect("eos");
    assert_eq!((eos.text.as_str(), eos.id), ("<|im_end|>", 2));
    assert_eq!(tok.generation_config().eos_token_ids, vec![2]);
    assert_eq!(tok.generation_config().bos_token_id, Some(1));
    assert_eq!(tok.eos_ids(), vec![2]);
    // HF len(tokenizer) recorded in tokenizer_cases.json.
    let cases = read_json(smollm2_dir().join("tokenizer_cases.json"));
    assert_eq!(
        tok.vocab_size() as u64,
        cases["vocab_size"].as_u64().unwrap()
    );
    assert_eq!(tok.max_token_id(), 49151);
    assert!(tok
        .chat_template_source()
        .unwrap()
        .origin
        .ends_with("chat_template.jinja"));
}

#[test]
fn encodings_match_hf_for_tricky_strings() {
    let tok = smollm2();
    let cases = read_json(smollm2_dir().join("tokenizer_cases.json"));
    for case in cases["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(
            tok.encode(text, true).unwrap(),
            ids(&case["ids_with_special_tokens"]),
            "{text:?}"
        );
        assert_eq!(
            tok.encode(text, false).unwrap(),
            ids(&case["ids_without_special_tokens"]),
            "{text:?}"
        );
        let decoded = tok
            .decode(&ids(&case["ids_without_special_tokens"]), false)
            .unwrap();
        assert_eq!(decoded, case["decoded"].as_str().unwrap(), "{text:?}");
    }
}

#[test]
fn templated_prompts_encode_to_hf_prompt_ids() {
    let tok = smollm2();
    let template = ChatTemplate::from_tokenizer(&tok).unwrap();
    let reference = read_json(smollm2_dir().join("greedy_reference.json"));
    let mut checked = 0;
    for case in reference["cases"].as_array().unwrap() {
        let expected_ids = ids(&case["prompt_ids"]);
        let prompt = if let Some(messages) = case.get("messages") {
            let messages: Vec<Message> = serde_json::from_value(messages.clone()).unwrap();
            let text = template
                .render(&messages, &RenderOptions::for_tokenizer(&tok, true))
                .unwrap();
            assert_eq!(
                text,
                case["prompt_text"].as_str().unwrap(),
                "{}",
                case["name"]
            );
            tok.encode_prompt(&text, true).unwrap()
        } else {
            tok.encode_prompt(case["prompt_text"].as_str().unwrap(), false)
                .unwrap()
        };
        assert_eq!(prompt, expected_ids, "{}", case["name"]);
        checked += 1;
    }
    assert_eq!(checked, 5);
}

#[test]
fn the_bos_token_is_never_doubled() {
    let tok = smollm2();
    // SmolLM2's BOS is <|im_start|> (id 1) and its post-processor adds nothing; text that starts with the BOS
    // text twice still yields one BOS.
    let ids = tok
        .encode_prompt("<|im_start|><|im_start|>user\nHi", false)
        .unwrap();
    assert_eq!(ids[0], 1);
    assert_ne!(ids[1], 1);
    // A templated prompt keeps the template's own single BOS.
    let ids = tok.encode_prompt("<|im_start|>user\nHi", true).unwrap();
    assert_eq!(ids.iter().filter(|&&i| i == 1).count(), 1);
}

#[test]
fn a_tokenizer_json_path_loads_its_sibling_configs() {
    let tok = Tokenizer::from_path(smollm2_dir().join("tokenizer.json")).unwrap();
    assert_eq!(tok.eos_token().map(|t| t.id), Some(2));
    assert!(tok.chat_template_source().is_some());
}

#[test]
fn vocab_check_rejects_a_model_smaller_than_the_tokenizer() {
    let tok = smollm2();
    tok.ensure_fits_vocab(49152).unwrap();
    tok.ensure_fits_vocab(50000).unwrap();
    let err = tok.ensure_fits_vocab(32000).unwrap_err();
    assert!(
        matches!(
            err,
            LlmError::VocabMismatch {
                max_id: 49151,
                model_vocab: 32000,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn decoding_an_id_outside_the_vocab_is_an_error() {
    let err = smollm2().decode(&[5, 49152], false).unwrap_err();
    assert!(err.to_string().contains("49152"), "{err}");
}

/// Copies tokenizer.json into a scratch folder and adds the given config files.
fn folder_with(name: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = scratch_dir(name);
    fs::copy(
        smollm2_dir().join("tokenizer.json"),
        dir.join("tokenizer.json"),
    )
    .unwrap();
    for (file, text) in files {
        fs::write(dir.join(file), text).unwrap();
    }
    dir
}

#[test]
fn missing_files_are_named() {
    let missing = scratch_dir("missing").join("no-such-model");
    let err = Tokenizer::from_path(&missing).unwrap_err();
    assert!(err.to_string().contains("no-such-model"), "{err}");

    let empty = scratch_dir("empty");
    let err = Tokenizer::from_path(&empty).unwrap_err();
    assert!(
        matches!(
            err,
            LlmError::NotFound {
                what: "tokenizer.json",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("empty/tokenizer.json"), "{err}");
}

#[test]
fn a_config_from_another_model_is_rejected_with_its_path() {
    let dir = folder_with(
        "mismatch",
        &[(
            "tokenizer_config.json",
            r#"{"bos_token": "<|begin_of_text|>"}"#,
        )],
    );
    let err = Tokenizer::from_path(&dir).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, LlmError::UnknownSpecialToken { .. }), "{msg}");
    assert!(
        msg.contains("tokenizer_config.json") && msg.contains("<|begin_of_text|>"),
        "{msg}"
    );

    let dir = folder_with(
        "bad-eos-id",
        &[("generation_config.json", r#"{"eos_token_id": [2, 128009]}"#)],
    );
    let err = Tokenizer::from_path(&dir).unwrap_err();
    assert!(
        matches!(err, LlmError::SpecialIdOutOfRange { id: 128009, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("generation_config.json"), "{err}");
}

#[test]
fn unreadable_json_and_wrong_types_name_the_file_and_field() {
    let dir = folder_with("bad-json", &[("tokenizer_config.json", "{not json")]);
    let err = Tokenizer::from_path(&dir).unwrap_err();
    assert!(
        matches!(err, LlmError::Json { .. }) && err.to_string().contains("tokenizer_config.json"),
        "{err}"
    );

    let dir = folder_with(
        "bad-type",
        &[("generation_config.json", r#"{"eos_token_id": "two"}"#)],
    );
    let err = Tokenizer::from_path(&dir).unwrap_err();
    assert!(err.to_string().contains("eos_token_id"), "{err}");

    let dir = scratch_dir("bad-tokenizer");
    fs::write(dir.join("tokenizer.json"), r#"{"model": 5}"#).unwrap();
    let err = Tokenizer::from_path(&dir).unwrap_err();
    assert!(
        matches!(err, LlmError::TokenizerLoad { .. }) && err.to_string().contains("tokenizer.json"),
        "{err}"
    );
}

#[test]
fn generation_config_lists_and_template_lists_are_read() {
    let dir = folder_with(
        "lists",
        &[
            (
                "generation_config.json",
                r#"{"eos_token_id": [2, 0], "temperature": 0.6, "top_p": 0.95, "top_k": 20, "do_sample": true}"#,
            ),
            (
                "tokenizer_config.json",
                r#"{"eos_token": {"content": "<|im_end|>", "special": true},
                    "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D{{ messages[0].content }}"}]}"#,
            ),
        ],
    );
    let tok = Tokenizer::from_path(&dir).unwrap();
    let generation = tok.generation_config();
    assert_eq!(generation.eos_token_ids, vec![2, 0]);
    assert_eq!(
        (generation.temperature, generation.top_p, generation.top_k),
        (Some(0.6), Some(0.95), Some(20))
    );
    assert_eq!(generation.do_sample, Some(true));
    assert_eq!(tok.eos_ids(), vec![0, 2]);
    assert_eq!(tok.eos_token().unwrap().id, 2);
    let template = ChatTemplate::from_tokenizer(&tok).unwrap();
    assert_eq!(
        template
            .render(&[Message::user("x")], &RenderOptions::default())
            .unwrap(),
        "Dx"
    );
}

#[test]
fn special_tokens_are_listed_with_their_ids() {
    let specials = smollm2().special_tokens();
    let find = |text: &str| specials.iter().find(|t| t.text == text).map(|t| t.id);
    assert_eq!(find("<|endoftext|>"), Some(0));
    assert_eq!(find("<|im_start|>"), Some(1));
    assert_eq!(find("<|im_end|>"), Some(2));
}
