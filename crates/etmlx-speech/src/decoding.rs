//! Token rules of Whisper decoding, as HF `WhisperForConditionalGeneration.generate` applies them (greedy):
//! the prompt (start token, language, task, no-timestamps), suppressed tokens, tokens suppressed at the first
//! step, and in timestamp mode `WhisperTimeStampLogitsProcessor`'s rules (timestamps come in pairs and never
//! decrease, the first token is a timestamp no later than `max_initial_timestamp_index`, and a timestamp is
//! forced when the timestamps' total probability beats every text token).

use crate::config::GenerationSettings;
use crate::error::{Result, SpeechError};

/// What to decode.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecodeOptions {
    /// A language code (`en`) or token (`<|en|>`); None: the generation config's, else detected.
    pub language: Option<String>,
    /// `transcribe` or `translate`; None: the generation config's.
    pub task: Option<String>,
    /// Predict timestamps (segments with times). Audio longer than one window always does.
    pub timestamps: bool,
}

/// Whether the prompt needs a detected language: a multilingual model, no language asked for, and none forced by
/// the generation config (HF ignores the config's forced ids once a language or task is given).
pub fn needs_language_detection(gen: &GenerationSettings, options: &DecodeOptions) -> bool {
    let forced = options.task.is_none()
        && gen
            .forced_decoder_ids
            .iter()
            .any(|&(pos, id)| pos == 1 && id.is_some());
    gen.is_multilingual && options.language.is_none() && !forced
}

/// The decoder prompt of a window (HF `_retrieve_init_tokens`). `language` is the id to use when the model
/// is multilingual and none was forced (detected by the caller).
pub fn initial_tokens(
    gen: &GenerationSettings,
    options: &DecodeOptions,
    detected_language: Option<u32>,
) -> Result<Vec<u32>> {
    let mut tokens: Vec<Option<u32>> = vec![Some(gen.decoder_start_token_id)];
    if options.language.is_none() && options.task.is_none() {
        // Old-style forced ids (position 1, 2, ... after the start token).
        for (expected, &(pos, id)) in (1..).zip(&gen.forced_decoder_ids) {
            if pos != expected {
                break;
            }
            tokens.push(id);
        }
    }
    let language = match &options.language {
        Some(code) => language_id(gen, code)?,
        None if gen.is_multilingual && tokens.get(1).copied().flatten().is_none() => {
            detected_language
        }
        None => None,
    };
    if let Some(lang) = language {
        if tokens.len() > 1 {
            tokens[1] = Some(lang);
        } else {
            tokens.push(Some(lang));
        }
    }
    if let Some(task) = &options.task {
        let id = *gen.task_to_id.get(task.as_str()).ok_or_else(|| {
            SpeechError::Unsupported(format!(
                "task {task:?}: the model knows {:?}",
                gen.task_to_id.keys().collect::<Vec<_>>()
            ))
        })?;
        let task_ids: Vec<u32> = gen.task_to_id.values().copied().collect();
        if let Some(slot) = tokens
            .iter_mut()
            .find(|t| t.is_some_and(|t| task_ids.contains(&t)))
        {
            *slot = Some(id);
        } else {
            tokens.push(Some(id));
        }
    } else if options.language.is_some() {
        if let Some(&transcribe) = gen.task_to_id.get("transcribe") {
            let task_ids: Vec<u32> = gen.task_to_id.values().copied().collect();
            if !tokens
                .iter()
                .any(|t| t.is_some_and(|t| task_ids.contains(&t)))
            {
                tokens.push(Some(transcribe));
            }
        }
    }
    let no_ts = gen.no_timestamps_token_id;
    let last = tokens.last().copied().flatten();
    if !options.timestamps && last != Some(no_ts) {
        tokens.push(Some(no_ts));
    } else if options.timestamps && last == Some(no_ts) {
        tokens.pop();
    }
    Ok(tokens.into_iter().flatten().collect())
}

/// The id of a language given as a code (`en`) or token (`<|en|>`); None for English on an English-only model
/// (which takes no language token).
pub fn language_id(gen: &GenerationSettings, language: &str) -> Result<Option<u32>> {
    let lower = language.to_ascii_lowercase();
    let token = if lower.starts_with("<|") {
        lower
    } else {
        format!("<|{lower}|>")
    };
    if !gen.is_multilingual {
        if token == "<|en|>" {
            return Ok(None);
        }
        return Err(SpeechError::Unsupported(format!(
            "language {language:?}: this model is English-only"
        )));
    }
    gen.lang_to_id.get(&token).copied().map(Some).ok_or_else(|| {
        SpeechError::Unsupported(format!(
            "language {language:?} is not one of the model's {} languages (codes such as en, de, fr)",
            gen.lang_to_id.len()
        ))
    })
}

/// The per-step logits rules of one window.
#[derive(Debug, Clone)]
pub struct LogitsRules {
    suppress: Vec<usize>,
    begin_suppress: Vec<usize>,
    /// Prompt length: the index of the first generated token.
    begin_index: usize,
    timestamps: bool,
    no_timestamps: usize,
    timestamp_begin: usize,
    eos: usize,
    max_initial_timestamp_index: Option<usize>,
}

impl LogitsRules {
    pub fn new(gen: &GenerationSettings, begin_index: usize, timestamps: bool) -> Self {
        LogitsRules {
            suppress: gen.suppress_tokens.iter().map(|&t| t as usize).collect(),
            begin_suppress: gen
                .begin_suppress_tokens
                .iter()
                .map(|&t| t as usize)
                .collect(),
            begin_index,
            timestamps,
            no_timestamps: gen.no_timestamps_token_id as usize,
            timestamp_begin: gen.timestamp_begin() as usize,
            eos: gen.eos_token_id as usize,
            max_initial_timestamp_index: gen.max_initial_timestamp_index.map(|i| i as usize),
        }
    }

    /// Applies every rule to the logits of the next token after `tokens` (prompt + generated so far).
    pub fn apply(&self, tokens: &[u32], logits: &mut [f32]) {
        let vocab = logits.len();
        fn mask_range(logits: &mut [f32], range: std::ops::Range<usize>) {
            let end = range.end.min(logits.len());
            if range.start < end {
                logits[range.start..end].fill(f32::NEG_INFINITY);
            }
        }
        if tokens.len() == self.begin_index {
            for &t in &self.begin_suppress {
                mask_range(logits, t..t + 1);
            }
        }
        for &t in &self.suppress {
            mask_range(logits, t..t + 1);
        }
        if !self.timestamps {
            return;
        }
        let ts = self.timestamp_begin;
        mask_range(logits, self.no_timestamps..self.no_timestamps + 1);
        let generated = &tokens[self.begin_index.min(tokens.len())..];
        let is_ts = |t: u32| t as usize >= ts;
        let last_was_ts = generated.last().is_some_and(|&t| is_ts(t));
        let penultimate_was_ts = generated.len() < 2 || is_ts(generated[generated.len() - 2]);
        if last_was_ts {
            if penultimate_was_ts {
                // A pair just closed: text (or the end) must follow.
                mask_range(logits, ts..vocab);
            } else {
                // An opening timestamp: another timestamp or the end.
                mask_range(logits, 0..self.eos);
            }
        }
        if let Some(&last_ts) = generated.iter().rev().find(|&&t| is_ts(t)) {
            // Timestamps never decrease; after a closed pair they strictly increase.
            let limit = if last_was_ts && !penultimate_was_ts {
                last_ts as usize
            } else {
                last_ts as usize + 1
            };
            mask_range(logits, ts..limit);
        }
        if tokens.len() == self.begin_index {
            mask_range(logits, 0..ts);
            if let Some(max_initial) = self.max_initial_timestamp_index {
                mask_range(logits, ts + max_initial + 1..vocab);
            }
        }
        // If the timestamps together are likelier than any single text token, emit a timestamp.
        let max_all = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if max_all == f32::NEG_INFINITY || ts >= vocab {
            return;
        }
        let log_norm = log_sum_exp(logits, max_all);
        let ts_logprob = log_sum_exp(&logits[ts..], max_all) - log_norm;
        let max_text = logits[..ts]
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max) as f64;
        let max_text_logprob = max_text - log_norm;
        if ts_logprob > max_text_logprob {
            mask_range(logits, 0..ts);
        }
    }
}

/// log(sum(exp(x))) in f64, shifted by `max` (the maximum of a superset, for stability).
fn log_sum_exp(values: &[f32], max: f32) -> f64 {
    let max = f64::from(max);
    let sum: f64 = values
        .iter()
        .filter(|v| v.is_finite())
        .map(|&v| (f64::from(v) - max).exp())
        .sum();
    if sum == 0.0 {
        f64::NEG_INFINITY
    } else {
        max + sum.ln()
    }
}

/// The first index of the largest value (torch.argmax's choice among ties).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}
