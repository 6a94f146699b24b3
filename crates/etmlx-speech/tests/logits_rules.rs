//! Whisper's per-step token rules against HF's own logits processors (SuppressTokensAtBegin, SuppressTokens,
//! WhisperTimeStamp, applied in generate()'s order) on random logits after assorted token histories
//! (tests/fixtures/whisper/rules, written by `python/whisper_reference.py rules`). Which ids are masked must match
//! exactly, and the rest must be untouched.

use std::path::Path;

use etmlx_speech::config::GenerationSettings;
use etmlx_speech::decoding::LogitsRules;

mod common;

#[test]
fn logits_rules_match_hf_processors() {
    let dir = common::fixtures().join("rules");
    let reference = common::read_json(dir.join("cases.json"));
    // The generation config HF used, read by our own parser.
    let config_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rules_generation_config.json");
    std::fs::write(&config_path, reference["generation_config"].to_string()).unwrap();
    let gen = GenerationSettings::from_file(&config_path).expect("generation config");
    let vocab = reference["vocab"].as_u64().unwrap() as usize;
    let (_, inputs) = common::read_npy_f32(dir.join("logits_in.npy"));
    let (_, outputs) = common::read_npy_f32(dir.join("logits_out.npy"));
    let cases = reference["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for (i, case) in cases.iter().enumerate() {
        let tokens: Vec<u32> = case["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let begin = case["begin_index"].as_u64().unwrap() as usize;
        let timestamps = case["timestamps"].as_bool().unwrap();
        let mut logits = inputs[i * vocab..][..vocab].to_vec();
        LogitsRules::new(&gen, begin, timestamps).apply(&tokens, &mut logits);
        let expected = &outputs[i * vocab..][..vocab];
        for (id, (&ours, &theirs)) in logits.iter().zip(expected).enumerate() {
            assert!(
                ours == theirs
                    || (ours.is_infinite()
                        && theirs.is_infinite()
                        && ours.signum() == theirs.signum()),
                "case {i} ({tokens:?}, timestamps {timestamps}): id {id}: {ours} vs HF {theirs}"
            );
        }
    }
}

/// Decoder prompts against HF's `_retrieve_init_tokens` (tests/fixtures/whisper/rules/prompts.json, written by
/// `python/whisper_reference.py prompts`): English-only and multilingual configs, language given or detected,
/// task, timestamps on and off.
#[test]
fn prompts_match_hf() {
    use etmlx_speech::decoding::{initial_tokens, needs_language_detection};
    use etmlx_speech::DecodeOptions;

    let reference = common::read_json(common::fixtures().join("rules/prompts.json"));
    let cases = reference["cases"].as_array().unwrap();
    assert!(cases.len() >= 9);
    for case in cases {
        let name = case["config"].as_str().unwrap();
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("prompts_{name}.json"));
        std::fs::write(&path, reference["generation_configs"][name].to_string()).unwrap();
        let gen = GenerationSettings::from_file(&path).expect("generation config");
        let options = DecodeOptions {
            language: case["language"].as_str().map(str::to_string),
            task: case["task"].as_str().map(str::to_string),
            timestamps: case["timestamps"].as_bool().unwrap(),
        };
        let detected = case["detected_language"].as_u64().map(|v| v as u32);
        assert_eq!(
            needs_language_detection(&gen, &options),
            detected.is_some(),
            "{case}"
        );
        let prompt: Vec<u32> = case["prompt"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            initial_tokens(&gen, &options, detected).unwrap(),
            prompt,
            "{case}"
        );
    }
}
