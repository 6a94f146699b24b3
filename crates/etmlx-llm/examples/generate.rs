//! The Generator API: load an LLM export and its tokenizer once, then generate several answers, streaming text.
//!
//! ```sh
//! cargo run --release -p etmlx-llm --example generate -- MODEL.pte TOKENIZER_DIR "What is the capital of France?"
//! ```

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;

use etmlx_llm::{GenerateOptions, Generator, Message, ModelOptions, SamplerConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, pte, tokenizer, question, ..] = args.as_slice() else {
        eprintln!("usage: generate MODEL.pte TOKENIZER_DIR QUESTION");
        std::process::exit(2);
    };

    // Load once: getters, signature, KV cache, tokenizer, chat template and stop ids.
    let mut generator = Generator::load(pte, Some(Path::new(tokenizer)), ModelOptions::default())?;
    let meta = generator.model().metadata();
    eprintln!(
        "context {} tokens, prefill chunk {}",
        meta.max_ctx_len, meta.prefill_chunk_size
    );

    // Greedy, then a sampled answer to the same question: the second call reuses the cached prompt.
    let runs = [
        ("greedy", SamplerConfig::greedy()),
        (
            "sampled",
            SamplerConfig {
                temperature: 0.7,
                top_p: 0.9,
                seed: 42,
                ..SamplerConfig::default()
            },
        ),
    ];
    let prompt = generator.encode_chat(&[Message::user(question.as_str())])?;
    for (label, sampler) in runs {
        let options = GenerateOptions {
            max_new_tokens: 64,
            sampler,
            ..GenerateOptions::default()
        };
        print!("[{label}] ");
        let out = generator.generate(&prompt, &options, |event| {
            print!("{}", event.text);
            let _ = std::io::stdout().flush();
            ControlFlow::Continue(())
        })?;
        println!();
        eprintln!(
            "[{label}] {} tokens, stop: {}; {}",
            out.token_ids.len(),
            out.stop_reason,
            out.stats
        );
    }
    Ok(())
}
