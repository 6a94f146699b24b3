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

/// Temperatures below this sample greedily: dividing by them overflows the logits.
pub const MIN_TEMPERATURE: f32 = 1e-4;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplerConfig {
    /// 0 = greedy (so is anything below [`MIN_TEMPERATURE`]).
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

    /// Greedy when the temperature is (nearly) 0 or only one token is kept.
    pub fn is_greedy(&self) -> bool {
        self.temperature < MIN_TEMPERATURE || self.top_k == 1
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
        let candidates = &mut self.candidates;
        candidates.clear();
        candidates.extend(
            logits
                .iter()
                .enumerate()
                .filter(|(_, l)| !l.is_nan() && **l != f32::NEG_INFINITY)
                .map(|(i, &l)| (i as u32, l * inv_t)),
        );
        if candidates.is_empty() {
            return Err(LlmError::Sampling("every logit is NaN or -inf".into()));
        }
        if candidates.iter().any(|c| c.1 == f32::INFINITY) {
            // +inf logits share all the mass equally.
            candidates.retain(|c| c.1 == f32::INFINITY);
            candidates.iter_mut().for_each(|c| c.1 = 0.0);
        }

        // Every step below is O(vocab) except sorting the top-p nucleus, which is usually small.
        let k = self.config.top_k;
        if k > 0 && k < candidates.len() {
            candidates.select_nth_unstable_by(k - 1, by_logit_desc);
            candidates.truncate(k);
        }
        let max = candidates
            .iter()
            .map(|c| c.1)
            .fold(f32::NEG_INFINITY, f32::max);
        if self.config.min_p > 0.0 {
            // p / p_max = exp(l − l_max), so `p ≥ min_p · p_max` is `l ≥ l_max + ln(min_p)`. The best token
            // always survives every filter, so min-p commutes with top-k/top-p.
            let floor = max + self.config.min_p.ln();
            candidates.retain(|c| c.1 >= floor);
        }
        let weight = |l: f32| f64::from(l - max).exp();
        if self.config.top_p < 1.0 {
            let total: f64 = candidates.iter().map(|c| weight(c.1)).sum();
            let threshold = f64::from(self.config.top_p) * total;
            let keep = nucleus_len(candidates, threshold, weight);
            candidates.truncate(keep);
        }

        let total: f64 = candidates.iter().map(|c| weight(c.1)).sum();
        let target = unit_interval(&mut self.rng) * total;
        let mut cumulative = 0.0;
        for &(id, l) in candidates.iter() {
            cumulative += weight(l);
            if target < cumulative {
                return Ok(id);
            }
        }
        // Rounding left target at or above the last running sum: take the last candidate.
        candidates
            .last()
            .map(|c| c.0)
            .ok_or_else(|| LlmError::Sampling("no candidate left after filtering".into()))
    }
}

/// Uniform in [0, 1) with 53 random bits.
fn unit_interval(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Most likely first; equal logits in id order, so truncation is deterministic.
fn by_logit_desc(a: &(u32, f32), b: &(u32, f32)) -> Ordering {
    b.1.partial_cmp(&a.1)
        .unwrap_or(Ordering::Equal)
        .then(a.0.cmp(&b.0))
}

/// Sorts the most likely candidates to the front and returns how many form the top-p nucleus: the smallest
/// prefix whose weight reaches `threshold` (HF's rule: a token stays if the mass before it is below top_p).
/// Selects a growing prefix instead of sorting the whole vocabulary, since the nucleus is usually small.
fn nucleus_len(
    candidates: &mut [(u32, f32)],
    threshold: f64,
    weight: impl Fn(f32) -> f64,
) -> usize {
    let mut m = 64.min(candidates.len());
    loop {
        if m < candidates.len() {
            candidates.select_nth_unstable_by(m - 1, by_logit_desc);
        }
        candidates[..m].sort_unstable_by(by_logit_desc);
        let mut cumulative = 0.0;
        for (i, c) in candidates[..m].iter().enumerate() {
            cumulative += weight(c.1);
            if cumulative >= threshold {
                return i + 1;
            }
        }
        if m == candidates.len() {
            return m;
        }
        m = (m * 4).min(candidates.len());
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
