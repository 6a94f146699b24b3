//! Engine-independent parts of the etmlx LLM runner: the Hugging Face tokenizer with its config files, chat
//! templates, streaming detokenisation, host sampling, stop conditions and generation statistics.
//!
//! Nothing here touches MLX or the `.pte` runtime, and nothing prints: the generate loop (elsewhere) drives a
//! model and uses these pieces.
//!
//! ```no_run
//! use etmlx_llm::{ChatTemplate, Message, RenderOptions, Sampler, SamplerConfig, StopIds, Tokenizer};
//! # fn main() -> Result<(), etmlx_llm::LlmError> {
//! let tok = Tokenizer::from_path("models/smollm2")?;
//! let template = ChatTemplate::from_tokenizer(&tok)?;
//! let prompt = template.render(&[Message::user("Hi")], &RenderOptions::for_tokenizer(&tok, true))?;
//! let ids = tok.encode_prompt(&prompt, true)?;
//! let stop = StopIds::for_tokenizer(&tok, Some(&template), &[]);
//! let mut sampler = Sampler::new(SamplerConfig::greedy())?;
//! # let logits = vec![0.0f32; tok.vocab_size()];
//! let next = sampler.sample(&logits, &ids)?;
//! # let _ = (next, stop);
//! # Ok(()) }
//! ```

pub mod detok;
pub mod error;
pub mod sampler;
pub mod stats;
pub mod stop;
pub mod template;
pub mod tokenizer;

pub use detok::IncrementalDecoder;
pub use error::{LlmError, Result};
pub use sampler::{Sampler, SamplerConfig};
pub use stats::{GenerationOutput, GenerationStats, GenerationTimer};
pub use stop::{StopCheck, StopIds, StopReason, StopStrings};
pub use template::{ChatTemplate, Message, RenderOptions};
pub use tokenizer::{GenerationConfig, SpecialToken, TemplateSource, Tokenizer, TokenizerFiles};
