//! Engine-independent parts of the etmlx LLM runner: the Hugging Face tokenizer with its config files, chat
//! templates, streaming detokenisation, host sampling, stop conditions and generation statistics.
//!
//! The engine-independent modules touch neither MLX nor the `.pte` runtime. [`model`] adapts an official LLM
//! export (getters, `forward` signature, KV cache) on top of `etmlx-runtime` + the MLX delegate, [`generate`]
//! runs the generate loop with the pieces above, and [`chat`] keeps a conversation. Nothing prints.
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

pub mod chat;
pub mod detok;
pub mod device_sampler;
pub mod error;
pub mod generate;
pub mod model;
mod pipeline;
pub mod sampler;
pub mod stats;
pub mod stop;
pub mod template;
pub mod tokenizer;

pub use chat::ChatSession;
pub use detok::IncrementalDecoder;
pub use error::{LlmError, Result};
pub use generate::{GenerateOptions, Generator, TokenEvent};
pub use model::{LlmModel, ModelMetadata, ModelOptions};
pub use sampler::{Sampler, SamplerConfig};
pub use stats::{DecodePath, GenerationOutput, GenerationStats, GenerationTimer};
pub use stop::{StopCheck, StopIds, StopReason, StopStrings};
pub use template::{ChatTemplate, Message, RenderOptions};
pub use tokenizer::{GenerationConfig, SpecialToken, TemplateSource, Tokenizer, TokenizerFiles};
