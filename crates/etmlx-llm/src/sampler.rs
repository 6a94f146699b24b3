//! Host-side token sampling from a logits row.
//!
//! Order of the steps, as in HF transformers' logits processors: penalties → temperature → top-k → top-p →
//! min-p → draw. Temperature 0 is greedy (argmax; ties go to the lowest id, like `torch.argmax`), which is what
//! makes two runs or two exports comparable. The random stream is ChaCha8 seeded from `seed`, so a seed gives
//! the same tokens on every platform and run; one `Sampler` lives for a whole generation (never re-seeded per
//! token).

use std::cmp::Ordering;
use std::collections::HashMap;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{LlmError, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplerConfig {
    /// 0 = greedy.
    pub temperature: f32,
    /// Keep the k most likely tokens; 0 = off.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches top_p; 1 = off.
    pub top_p: f32,
    /// Drop tokens less likely than min_p × the most likely one; 0 = off.
    pub min_p: f32,
    /// HF/CTRL rule: a seen token's positive logit is divided by this, a negative one multiplied; 1 = off.
    pub repetition_penalty: f32,
    /// How many of the most recent tokens the penalties look at; `None` = the whole history (HF behaviour).
    pub repetition_context: Option<usize>,
    /// OpenAI rule: subtract this from the logit of every token seen at least once; 0 = off.
    pub presence_penalty: f32,
    /// OpenAI rule: subtract this × the number of times a token was seen; 0 = off.
    pub frequency_penalty: f32,
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            repetition_context: None,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: 0,
        }
    }
}

impl SamplerConfig {
    pub fn greedy() -> Self {
        Self::default()
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0 || self.top_k == 1
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |field, value: f32, expected| LlmError::InvalidSamplerConfig {
            field,
            value: value.to_string(),
            expected,
        };
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(bad(
                "temperature",
                self.temperature,
                "a finite number ≥ 0 (0 = greedy)",
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(bad("top_p", self.top_p, "a number in (0, 1] (1 = off)"));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err(bad("min_p", self.min_p, "a number in [0, 1] (0 = off)"));
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return Err(bad(
                "repetition_penalty",
                self.repetition_penalty,
                "a finite number > 0 (1 = off)",
            ));
        }
        if !self.presence_penalty.is_finite() {
            return Err(bad(
                "presence_penalty",
                self.presence_penalty,
                "a finite number (0 = off)",
            ));
        }
        if !self.frequency_penalty.is_finite() {
            return Err(bad(
                "frequency_penalty",
                self.frequency_penalty,
                "a finite number (0 = off)",
            ));
        }
        Ok(())
    }

    fn has_penalties(&self) -> bool {
        self.repetition_penalty != 1.0
            || self.presence_penalty != 0.0
            || self.frequency_penalty != 0.0
    }
}

pub struct Sampler {
    config: SamplerConfig,
    rng: ChaCha8Rng,
    /// Reused between calls: the penalised logits and the candidate list.
    scratch: Vec<f32>,
    candidates: Vec<(u32, f32)>,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("config", &self.config)
            .finish()
    }
}

impl Sampler {
    pub fn new(config: SamplerConfig) -> Result<Self> {
        config.validate()?;
        Ok(Sampler {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            config,
            scratch: Vec::new(),
            candidates: Vec::new(),
        })
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.config
    }

    /// Restarts the random stream from `seed` (a new generation with a new seed).
    pub fn reseed(&mut self, seed: u64) {
        self.config.seed = seed;
        self.rng = ChaCha8Rng::seed_from_u64(seed);
    }

    /// Picks the next token from one row of logits. `history` is the prompt plus the tokens generated so far
    /// (only the penalties read it; ids outside the row are ignored). NaN logits count as −∞.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> Result<u32> {
        if logits.is_empty() {
            return Err(LlmError::Sampling("the logits row is empty".into()));
        }
        if u32::try_from(logits.len()).is_err() {
            return Err(LlmError::Sampling(format!(
                "{} logits is more than u32 ids",
                logits.len()
            )));
        }
        let logits = if self.config.has_penalties() {
            self.scratch.clear();
            self.scratch.extend_from_slice(logits);
            let window = match self.config.repetition_context {
                Some(n) => &history[history.len().saturating_sub(n)..],
                None => history,
            };
            apply_penalties(&mut self.scratch, window, &self.config);
            &self.scratch[..]
        } else {
            logits
        };

        if self.config.is_greedy() {
            return argmax(logits)
                .ok_or_else(|| LlmError::Sampling("every logit is NaN or -inf".into()));
        }

        let inv_t = 1.0 / self.config.temperature;
        self.candidates.clear();
        self.candidates.extend(
            logits
                .iter()
                .enumerate()
                .filter(|(_, l)| l.is_finite() || **l == f32::INFINITY)
                .map(|(i, &l)| (i as u32, l * inv_t)),
        );
        if self.candidates.is_empty() {
            return Err(LlmError::Sampling("every logit is NaN or -inf".into()));
        }
        // Most likely first; equal logits keep id order so truncation is deterministic.
        let by_logit_desc = |a: &(u32, f32), b: &(u32, f32)| {
            b.1.partial_cmp(&a.1)
                .unwrap_or(Ordering::Equal)
                .then(a.0.cmp(&b.0))
        };
        let k = self.config.top_k;
        if k > 0 && k < self.candidates.len() {
            self.candidates.select_nth_unstable_by(k - 1, by_logit_desc);
            self.candidates.truncate(k);
        }
        self.candidates.sort_unstable_by(by_logit_desc);

        // Softmax over the candidates (f64 for the sums); `probs` follows the sorted candidate order.
        let max = self.candidates[0].1;
        let mut probs: Vec<f64> = self
            .candidates
            .iter()
            .map(|&(_, l)| f64::from(l - max).exp())
            .collect();
        if max == f32::INFINITY {
            // +inf logits share all the mass.
            probs = self
                .candidates
                .iter()
                .map(|&(_, l)| if l == f32::INFINITY { 1.0 } else { 0.0 })
                .collect();
        }
        let total: f64 = probs.iter().sum();
        let mut keep = probs.len();

        if self.config.top_p < 1.0 {
            let threshold = f64::from(self.config.top_p) * total;
            let mut cumulative = 0.0;
            for (i, p) in probs.iter().enumerate() {
                cumulative += p;
                if cumulative >= threshold {
                    keep = i + 1;
                    break;
                }
            }
        }
        if self.config.min_p > 0.0 {
            // probs[0] is the largest.
            let floor = f64::from(self.config.min_p) * probs[0];
            keep = keep.min(probs.iter().take_while(|&&p| p >= floor).count().max(1));
        }
        let kept = &probs[..keep];
        let kept_total: f64 = kept.iter().sum();
        let target = self.next_unit() * kept_total;
        let mut cumulative = 0.0;
        for (i, p) in kept.iter().enumerate() {
            cumulative += p;
            if target < cumulative {
                return Ok(self.candidates[i].0);
            }
        }
        // Rounding left target ≥ the last running sum: the last kept token with mass.
        let last = kept.iter().rposition(|&p| p > 0.0).unwrap_or(0);
        Ok(self.candidates[last].0)
    }

    /// Uniform in [0, 1) with 53 random bits.
    fn next_unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Index of the largest logit, the lowest index among equals (like `torch.argmax`). NaN is skipped (torch would
/// pick it); `None` when no logit is above −∞.
pub fn argmax(logits: &[f32]) -> Option<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &l) in logits.iter().enumerate() {
        if l.is_nan() {
            continue;
        }
        if best.is_none_or(|(_, b)| l > b) {
            best = Some((i, l));
        }
    }
    best.filter(|&(_, l)| l > f32::NEG_INFINITY)
        .map(|(i, _)| i as u32)
}

/// Applies the repetition (HF rule), presence and frequency (OpenAI rule) penalties in place.
pub fn apply_penalties(logits: &mut [f32], window: &[u32], config: &SamplerConfig) {
    let mut counts: HashMap<u32, u32> = HashMap::new();
    for &id in window {
        if (id as usize) < logits.len() {
            *counts.entry(id).or_default() += 1;
        }
    }
    for (&id, &count) in &counts {
        let l = &mut logits[id as usize];
        if config.repetition_penalty != 1.0 {
            *l = if *l > 0.0 {
                *l / config.repetition_penalty
            } else {
                *l * config.repetition_penalty
            };
        }
        *l -= config.presence_penalty + config.frequency_penalty * count as f32;
    }
}
