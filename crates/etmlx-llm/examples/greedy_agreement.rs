//! Greedy agreement of an export with HF transformers' fp32 greedy reference: for each case of
//! `greedy_reference.json` (tests/fixtures/tokenizers/smollm2), how many generated ids match before the first
//! difference. Used to compare bf16 and 4-bit exports of SmolLM2 with fp32.
//!
//! ```sh
//! cargo run --release -p etmlx-llm --example greedy_agreement -- MODEL.pte tests/fixtures/tokenizers/smollm2
//! ```

use std::ops::ControlFlow;
use std::path::Path;

use etmlx_llm::{GenerateOptions, Generator, Message, ModelOptions};

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_u64())
                .map(|x| x as u32)
                .collect()
        })
        .unwrap_or_default()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, pte, dir, ..] = args.as_slice() else {
        eprintln!("usage: greedy_agreement MODEL.pte TOKENIZER_DIR_WITH_greedy_reference.json");
        std::process::exit(2);
    };
    let dir = Path::new(dir);
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("greedy_reference.json"))?)?;
    let mut generator = Generator::load(pte, Some(dir), ModelOptions::default())?;
    let max_new = reference["max_new_tokens"].as_u64().unwrap_or(48) as usize;
    let options = GenerateOptions {
        max_new_tokens: max_new,
        ..GenerateOptions::default()
    };
    let (mut total_match, mut total_ref) = (0, 0);
    for case in reference["cases"].as_array().ok_or("no cases")? {
        let name = case["name"].as_str().unwrap_or("?");
        let prompt = match case["messages"].as_array() {
            Some(msgs) => generator.encode_chat(
                &msgs
                    .iter()
                    .map(|m| {
                        Message::new(
                            m["role"].as_str().unwrap_or(""),
                            m["content"].as_str().unwrap_or(""),
                        )
                    })
                    .collect::<Vec<_>>(),
            )?,
            None => generator.encode_raw(case["prompt_text"].as_str().unwrap_or(""))?,
        };
        let out = generator.generate(&prompt, &options, |_| ControlFlow::Continue(()))?;
        let expected = ids(&case["generated_ids"]);
        let matching = out
            .token_ids
            .iter()
            .zip(&expected)
            .take_while(|(a, b)| a == b)
            .count();
        total_match += matching;
        total_ref += expected.len();
        println!(
            "{name}: {matching}/{} ids match{} | decode {:.1} tok/s | {:?}",
            expected.len(),
            if out.token_ids == expected {
                " (identical)"
            } else {
                ""
            },
            out.stats.decode_tok_s,
            out.text
        );
    }
    println!("total: {total_match}/{total_ref} reference ids matched before the first difference");
    Ok(())
}
