//! The generate loop: load an export once, then generate many times, streaming tokens to a callback.
//!
//! The generator remembers which token ids sit in the KV cache (in position order). A new prompt reuses the
//! longest cached prefix it shares and prefills only the rest, in chunks of the export's prefill chunk size. Both
//! cache kinds are position-addressed: a forward call at position p overwrites slots p.. and attends only to
//! slots < p + T (custom SDPA slices the cache, the default mode masks it, the off-graph op is given the
//! positions), so moving back the position is a complete rewind and starting at 0 is a complete reset. The
//! `reused_generator_*` tests check this against fresh loads for every export mode.

use std::ops::ControlFlow;
use std::path::Path;

use crate::detok::IncrementalDecoder;
use crate::device_sampler::DeviceSampler;
use crate::error::{LlmError, Result};
use crate::model::{DeviceSampling, DeviceStep, LlmModel, ModelOptions, OutputKind, StepOutput};
use crate::sampler::{Sampler, SamplerConfig};
use crate::stats::{DecodePath, GenerationOutput, GenerationStats, GenerationTimer};
use crate::stop::{StopIds, StopReason, StopStrings};
use crate::template::{ChatTemplate, Message, RenderOptions};
use crate::tokenizer::Tokenizer;

/// Default cap on new tokens per generation.
pub const DEFAULT_MAX_NEW_TOKENS: usize = 256;

/// Settings of one generation.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub sampler: SamplerConfig,
    /// Text that ends the generation when it appears (not shown, not part of `text`).
    pub stop_strings: Vec<String>,
    /// Keep going past stop ids (EOS, end of turn) until `max_new_tokens` or the context is full.
    pub ignore_eos: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_new_tokens: DEFAULT_MAX_NEW_TOKENS,
            sampler: SamplerConfig::greedy(),
            stop_strings: Vec::new(),
            ignore_eos: false,
        }
    }
}

/// One generated token, as the callback sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenEvent<'a> {
    pub id: u32,
    /// 0 for the first generated token.
    pub index: usize,
    /// Text this token completes (may be empty: part of a character, a special token, a held-back stop-string
    /// prefix; always empty without a tokenizer).
    pub text: &'a str,
    /// This token ended the generation (a stop id).
    pub is_stop: bool,
}

/// An LLM export with its tokenizer, chat template and stop ids, ready to generate.
pub struct Generator {
    model: LlmModel,
    tokenizer: Option<Tokenizer>,
    template: Option<ChatTemplate>,
    stop_ids: StopIds,
    /// Token ids whose keys and values sit in the cache, at positions 0..len.
    cached: Vec<u32>,
    last_stats: Option<GenerationStats>,
    /// Use the host decode loop even where the device-resident pipelined one applies.
    host_decode: bool,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("model", &self.model)
            .field("tokenizer", &self.tokenizer.as_ref().map(Tokenizer::origin))
            .field("stop_ids", &self.stop_ids)
            .field("cached_tokens", &self.cached.len())
            .finish()
    }
}

impl Generator {
    /// Opens `pte` and, when given, the tokenizer (a folder with tokenizer.json and its config files, or a
    /// tokenizer.json path).
    pub fn load(
        pte: impl AsRef<Path>,
        tokenizer: Option<&Path>,
        options: ModelOptions,
    ) -> Result<Self> {
        let tokenizer = tokenizer.map(Tokenizer::from_path).transpose()?;
        let model = LlmModel::open(pte, options)?;
        Generator::new(model, tokenizer)
    }

    /// Wraps a loaded model. The tokenizer must not produce ids beyond the model's vocabulary; stop ids are the
    /// export's EOS ids ∪ the tokenizer's ∪ the chat template's end-of-turn token.
    pub fn new(model: LlmModel, tokenizer: Option<Tokenizer>) -> Result<Self> {
        let meta = model.metadata();
        let (template, stop_ids) = match &tokenizer {
            Some(tok) => {
                if let Some(vocab) = meta.vocab_size {
                    tok.ensure_fits_vocab(vocab)?;
                }
                // A model without a chat template is fine for raw prompts; chat use reports the absence then.
                let template = ChatTemplate::from_tokenizer(tok).ok();
                let stop = StopIds::for_tokenizer(tok, template.as_ref(), &meta.eos_ids);
                (template, stop)
            }
            None => (None, StopIds::new(meta.eos_ids.iter().copied())),
        };
        Ok(Generator {
            model,
            tokenizer,
            template,
            stop_ids,
            cached: Vec::new(),
            last_stats: None,
            host_decode: false,
        })
    }

    pub fn model(&self) -> &LlmModel {
        &self.model
    }

    /// The model, for direct `forward` calls (benchmarks). Call [`Generator::reset`] afterwards: the generator
    /// does not see what such calls put in the cache.
    pub fn model_mut(&mut self) -> &mut LlmModel {
        &mut self.model
    }

    /// Whether `generate` with `sampler` would take the device-resident pipelined loop.
    pub fn uses_pipelined_decode(&mut self, sampler: &SamplerConfig) -> bool {
        self.pipelined_step(sampler).is_some()
    }

    pub fn tokenizer(&self) -> Option<&Tokenizer> {
        self.tokenizer.as_ref()
    }

    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.template.as_ref()
    }

    pub fn stop_ids(&self) -> &StopIds {
        &self.stop_ids
    }

    /// Replaces the stop ids (e.g. to add one, or to test without EOS).
    pub fn set_stop_ids(&mut self, stop_ids: StopIds) {
        self.stop_ids = stop_ids;
    }

    /// Forces the host decode loop (`true`) or lets the generator pick the device-resident pipelined loop where
    /// the export and the sampler allow it (`false`, the default). For A/B measurements and cross-checks.
    pub fn set_host_decode(&mut self, host_decode: bool) {
        self.host_decode = host_decode;
    }

    /// Token ids currently in the KV cache.
    pub fn cached_tokens(&self) -> &[u32] {
        &self.cached
    }

    /// Stats of the last generation.
    pub fn last_stats(&self) -> Option<&GenerationStats> {
        self.last_stats.as_ref()
    }

    /// Forgets the conversation: the next prompt is prefilled from position 0 (which overwrites every slot it
    /// attends to; see the module docs).
    pub fn reset(&mut self) -> Result<()> {
        self.cached.clear();
        self.model.rewind_to(0)
    }

    /// Reloads the model's `forward` (fresh zeroed in-graph buffers, a new off-graph cache) and forgets the
    /// conversation.
    pub fn hard_reset(&mut self) -> Result<()> {
        self.cached.clear();
        self.model.reload()
    }

    fn require_tokenizer(&self) -> Result<&Tokenizer> {
        self.tokenizer.as_ref().ok_or_else(|| {
            LlmError::Unsupported("text prompts need a tokenizer (the generator has none)".into())
        })
    }

    /// Prompt ids for a conversation rendered with the chat template (with the generation prompt).
    pub fn encode_chat(&self, messages: &[Message]) -> Result<Vec<u32>> {
        let tok = self.require_tokenizer()?;
        let template = self.template.as_ref().ok_or_else(|| {
            LlmError::NoChatTemplate(format!(
                "{} has no chat template (chat_template.jinja or tokenizer_config.json); use a raw prompt",
                tok.origin()
            ))
        })?;
        let text = template.render(messages, &RenderOptions::for_tokenizer(tok, true))?;
        tok.encode_prompt(&text, true)
    }

    /// Prompt ids for raw text (the tokenizer's own special tokens, BOS as its config asks).
    pub fn encode_raw(&self, text: &str) -> Result<Vec<u32>> {
        self.require_tokenizer()?.encode_prompt(text, false)
    }

    /// Generates from a text prompt: chat-templated as one user turn (after `system`, if any) unless `raw`.
    pub fn generate_text(
        &mut self,
        prompt: &str,
        system: Option<&str>,
        raw: bool,
        options: &GenerateOptions,
        on_token: impl FnMut(TokenEvent<'_>) -> ControlFlow<()>,
    ) -> Result<GenerationOutput> {
        let ids = if raw {
            self.encode_raw(prompt)?
        } else {
            let mut messages = Vec::new();
            messages.extend(system.map(Message::system));
            messages.push(Message::user(prompt));
            self.encode_chat(&messages)?
        };
        self.reset()?;
        self.generate(&ids, options, on_token)
    }

    /// Generates after `prompt` (the whole sequence: ids already in the cache that `prompt` starts with are
    /// reused, the rest is prefilled). Calls `on_token` for every generated token, the stop token included;
    /// returning `Break` cancels. Errors before running anything when the prompt does not fit the context.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        options: &GenerateOptions,
        mut on_token: impl FnMut(TokenEvent<'_>) -> ControlFlow<()>,
    ) -> Result<GenerationOutput> {
        let meta = self.model.metadata().clone();
        if prompt.is_empty() {
            return Err(LlmError::Unsupported("the prompt is empty".into()));
        }
        if prompt.len() > meta.max_ctx_len {
            return Err(LlmError::ContextOverflow {
                new_tokens: prompt.len(),
                position: 0,
                needed: prompt.len(),
                max_ctx_len: meta.max_ctx_len,
            });
        }
        // Settings a loop would refuse are refused before anything runs.
        options.sampler.validate()?;
        if meta.output == OutputKind::SampledToken {
            device_sampling(&options.sampler)?;
        }

        // Reuse the cached prefix, but always prefill at least the prompt's last token: its logits are needed.
        let shared = self
            .cached
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count();
        let reuse = shared.min(prompt.len() - 1);
        self.model.rewind_to(reuse)?;
        self.cached.truncate(reuse);
        let pending = &prompt[reuse..];
        let pipelined = if options.max_new_tokens == 0 {
            None
        } else {
            self.pipelined_step(&options.sampler)
        };

        let mut emitter = Emitter {
            decoder: self
                .tokenizer
                .as_ref()
                .map(|t| IncrementalDecoder::new(t, true)),
            stop_strings: StopStrings::new(options.stop_strings.iter().cloned()),
            stop_ids: &self.stop_ids,
            ignore_eos: options.ignore_eos,
            max_new_tokens: options.max_new_tokens,
            max_ctx_len: meta.max_ctx_len,
            history: prompt.to_vec(),
            generated: Vec::new(),
            text: String::new(),
            on_token: &mut on_token,
        };

        let mut timer = GenerationTimer::start();
        let (stop_reason, path) = if options.max_new_tokens == 0 {
            (StopReason::Length, DecodePath::Host)
        } else if let Some(step) = pipelined {
            let reason = crate::pipeline::decode(
                &mut self.model,
                &step,
                &mut self.cached,
                pending,
                &options.sampler,
                &mut emitter,
                &mut timer,
            )?;
            (reason, DecodePath::DevicePipelined)
        } else {
            let reason = host_decode(
                &mut self.model,
                &mut self.cached,
                pending,
                options,
                &mut emitter,
                &mut timer,
            )?;
            (reason, DecodePath::Host)
        };

        let generated = emitter.generated;
        let mut stats = timer.finish(
            if options.max_new_tokens == 0 {
                0
            } else {
                pending.len()
            },
            generated.len(),
            peak_memory(),
        );
        stats.decode_path = path;
        self.last_stats = Some(stats.clone());
        Ok(GenerationOutput {
            text: emitter.text,
            token_ids: generated,
            stop_reason,
            stats,
        })
    }

    /// The device-resident pipelined decode applies: the export allows it, the sampler runs on the device,
    /// and the host path was not asked for.
    fn pipelined_step(&mut self, sampler: &SamplerConfig) -> Option<DeviceStep> {
        if self.host_decode || !DeviceSampler::supports(sampler) {
            return None;
        }
        self.model.device_step()
    }
}

/// Turns sampled tokens into what the caller sees: text pieces (stop strings held back), the callback, and the
/// reason generation ends. Both decode loops feed it every token in order.
pub(crate) struct Emitter<'a, F> {
    decoder: Option<IncrementalDecoder<'a>>,
    stop_strings: StopStrings,
    stop_ids: &'a StopIds,
    ignore_eos: bool,
    max_new_tokens: usize,
    max_ctx_len: usize,
    /// Prompt + generated ids (what penalties read on the host path).
    pub(crate) history: Vec<u32>,
    pub(crate) generated: Vec<u32>,
    text: String,
    on_token: &'a mut F,
}

impl<F: FnMut(TokenEvent<'_>) -> ControlFlow<()>> Emitter<'_, F> {
    /// Emits `token`, sampled while `cached_len` ids sit in the cache (the token itself not yet); returns why
    /// generation ends here, or `None` to go on.
    pub(crate) fn emit(&mut self, token: u32, cached_len: usize) -> Result<Option<StopReason>> {
        let index = self.generated.len();
        self.generated.push(token);
        self.history.push(token);
        let is_stop = !self.ignore_eos && self.stop_ids.contains(token);

        // Generation ends here for a limit too: then held-back text is released with this token.
        let at_limit =
            self.generated.len() >= self.max_new_tokens || cached_len >= self.max_ctx_len;
        let mut piece = String::new();
        let mut hit_stop_string = false;
        if let Some(dec) = self.decoder.as_mut() {
            let mut new_text = dec.push(token)?.unwrap_or_default();
            if is_stop || at_limit {
                new_text.push_str(&dec.flush()?.unwrap_or_default());
            }
            let check = self.stop_strings.push(&new_text);
            piece = check.text;
            hit_stop_string = check.stopped;
            if (is_stop || at_limit) && !hit_stop_string {
                piece.push_str(&self.stop_strings.flush());
            }
        }
        self.text.push_str(&piece);
        let flow = (self.on_token)(TokenEvent {
            id: token,
            index,
            text: &piece,
            is_stop,
        });

        Ok(if is_stop {
            Some(StopReason::Eos)
        } else if hit_stop_string {
            Some(StopReason::StopString)
        } else if flow.is_break() {
            Some(StopReason::Cancelled)
        } else if self.generated.len() >= self.max_new_tokens {
            Some(StopReason::Length)
        } else if cached_len >= self.max_ctx_len {
            Some(StopReason::ContextFull)
        } else {
            None
        })
    }

    /// Whether another step is needed after the token about to be emitted with `cached_len` ids cached, as far
    /// as limits tell (a stop id or string may still end it).
    pub(crate) fn may_continue_after_next(&self, cached_len: usize) -> bool {
        self.generated.len() + 1 < self.max_new_tokens && cached_len < self.max_ctx_len
    }
}

/// The generic decode loop: `forward` with host inputs, logits (or a device-sampled id) to the host, sampled
/// there, one step after another. Prefills `pending` first; `cached` gains every id fed to the model.
fn host_decode<F: FnMut(TokenEvent<'_>) -> ControlFlow<()>>(
    model: &mut LlmModel,
    cached: &mut Vec<u32>,
    pending: &[u32],
    options: &GenerateOptions,
    emitter: &mut Emitter<'_, F>,
    timer: &mut GenerationTimer,
) -> Result<StopReason> {
    let meta = model.metadata().clone();
    let device_sampling = match meta.output {
        OutputKind::SampledToken => Some(device_sampling(&options.sampler)?),
        _ => None,
    };
    let mut sampler = Sampler::new(options.sampler.clone())?;
    let seeded = |generated: usize| {
        // The official runner advances the seed every token so draws differ.
        device_sampling.map(|mut s| {
            s.seed = s.seed.wrapping_add(generated as u64);
            s
        })
    };

    // Prefill in chunks; only the last chunk's output is used.
    let chunk = meta.prefill_chunk_size.max(1);
    let mut step = None;
    for piece in pending.chunks(chunk) {
        step = Some(model.forward(piece, cached.len(), seeded(0).as_ref())?);
        cached.extend_from_slice(piece);
    }
    let mut step = step.ok_or_else(|| LlmError::Unsupported("nothing to prefill".into()))?;
    loop {
        let token = match &step {
            StepOutput::Logits(logits) => sampler.sample(logits, &emitter.history)?,
            StepOutput::Token(t) => *t,
        };
        timer.first_token();
        if let Some(reason) = emitter.emit(token, cached.len())? {
            return Ok(reason);
        }
        let sampling = seeded(emitter.generated.len());
        step = model.forward(&[token], cached.len(), sampling.as_ref())?;
        cached.push(token);
    }
}

fn device_sampling(config: &SamplerConfig) -> Result<DeviceSampling> {
    if config.min_p != 0.0
        || config.repetition_penalty != 1.0
        || config.presence_penalty != 0.0
        || config.frequency_penalty != 0.0
    {
        return Err(LlmError::Unsupported(
            "this export samples on the device, which supports only temperature, top-k, top-p and seed".into(),
        ));
    }
    config.validate()?;
    Ok(DeviceSampling {
        temperature: if config.is_greedy() {
            0.0
        } else {
            config.temperature
        },
        top_k: config.top_k,
        top_p: config.top_p,
        seed: config.seed,
    })
}

/// MLX's peak active memory, when the library can tell.
fn peak_memory() -> Option<u64> {
    mlx::memory::peak_memory().ok().map(|b| b as u64)
}
