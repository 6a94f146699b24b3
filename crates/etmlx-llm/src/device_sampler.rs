//! Token sampling as MLX operations, so the sampled token never leaves the device between decode steps.
//!
//! Same steps and order as the host [`crate::sampler::Sampler`]: penalties → temperature → top-k → min-p →
//! top-p → draw; temperature 0 (or top-k 1) is greedy argmax. What differs, and why:
//! - the draw is Gumbel-max (argmax of logits + Gumbel noise from MLX's counter-based RNG, keyed by the seed and
//!   the step), not the host's ChaCha8 inverse-CDF draw: a seed reproduces a run on this path, but the two paths
//!   draw different tokens for the same seed;
//! - penalties see the whole history (a token-count vector kept on the device and bumped with each sampled
//!   token); a bounded `repetition_context` window needs the host path;
//! - ties at the top-k / top-p cut keep every tied token (a threshold on values), where the host keeps the lower
//!   ids. Greedy decoding is identical on both paths (argmax, lowest id on ties).

use mlx::ops::{self, BinaryOp, ReduceOp, UnaryOp};
use mlx::{Array, Dtype, Stream};

use crate::error::{LlmError, Result};
use crate::sampler::SamplerConfig;

fn mlx_err(e: impl std::fmt::Display) -> LlmError {
    LlmError::Sampling(format!("device sampling: {e}"))
}

/// Builds the sampling graph of one step; holds the penalty counts between steps.
pub struct DeviceSampler {
    config: SamplerConfig,
    vocab: usize,
    stream: Stream,
    /// How often each id has been seen (prompt + generated), as f32 [vocab]; only with penalties.
    counts: Option<Array>,
    /// `0..vocab`, made once: the sampled token is counted by comparing it with every id.
    ids: Option<Array>,
    steps: u64,
}

impl DeviceSampler {
    /// Whether `config` can be sampled on the device (everything but a bounded penalty window).
    pub fn supports(config: &SamplerConfig) -> bool {
        config.repetition_context.is_none() || !has_penalties(config)
    }

    /// A sampler for rows of `vocab` logits; `history` (the prompt) seeds the penalty counts.
    pub fn new(
        config: &SamplerConfig,
        vocab: usize,
        history: &[u32],
        stream: Stream,
    ) -> Result<Self> {
        config.validate()?;
        if !Self::supports(config) {
            return Err(LlmError::Unsupported(
                "a bounded repetition_context is sampled on the host only".into(),
            ));
        }
        let (counts, ids) = if has_penalties(config) {
            let mut host = vec![0f32; vocab];
            for &id in history {
                if let Some(c) = host.get_mut(id as usize) {
                    *c += 1.0;
                }
            }
            let v = i32::try_from(vocab).map_err(mlx_err)?;
            let counts = Array::from_slice(&host, &[v]).map_err(mlx_err)?;
            let ids: Vec<i32> = (0..v).collect();
            (
                Some(counts),
                Some(Array::from_slice(&ids, &[v]).map_err(mlx_err)?),
            )
        } else {
            (None, None)
        };
        Ok(DeviceSampler {
            config: config.clone(),
            vocab,
            stream,
            counts,
            ids,
            steps: 0,
        })
    }

    /// The arrays a step leaves for the next one (schedule them with the token, so the graph stays short).
    pub fn state(&self) -> Option<&Array> {
        self.counts.as_ref()
    }

    /// The next token (a uint32 array of shape [1]) from one logits row (any float dtype; shape [V], [1, V]
    /// or [1, 1, V]). Call with the MLX graph lock held. Updates the penalty counts with the token.
    pub fn sample(&mut self, logits: &Array) -> Result<Array> {
        let s = self.stream;
        let v = i32::try_from(self.vocab).map_err(mlx_err)?;
        if logits.size() != self.vocab {
            return Err(LlmError::ModelOutput(format!(
                "device logits of shape {:?}; expected one row of {} values",
                logits.shape(),
                self.vocab
            )));
        }
        let mut l = ops::reshape(logits, &[v], s).map_err(mlx_err)?;
        l = ops::astype(&l, Dtype::Float32, s).map_err(mlx_err)?;
        let c = &self.config;
        if let Some(counts) = &self.counts {
            l = penalize(&l, counts, c, s).map_err(mlx_err)?;
        }
        let token = if c.is_greedy() {
            ops::argmax(&l, 0, true, s).map_err(mlx_err)?
        } else {
            let filtered = filter(&l, c, self.vocab, s).map_err(mlx_err)?;
            let key = mlx::random::key(step_seed(c.seed, self.steps)).map_err(mlx_err)?;
            let noise = gumbel(v, &key, s).map_err(mlx_err)?;
            let noisy = ops::binary(BinaryOp::Add, &filtered, &noise, s).map_err(mlx_err)?;
            ops::argmax(&noisy, 0, true, s).map_err(mlx_err)?
        };
        self.steps += 1;
        if let (Some(counts), Some(ids)) = (&self.counts, &self.ids) {
            let hit = ops::binary(BinaryOp::Equal, ids, &token, s).map_err(mlx_err)?;
            let hit = ops::astype(&hit, Dtype::Float32, s).map_err(mlx_err)?;
            self.counts = Some(ops::binary(BinaryOp::Add, counts, &hit, s).map_err(mlx_err)?);
        }
        Ok(token)
    }
}

fn has_penalties(c: &SamplerConfig) -> bool {
    c.repetition_penalty != 1.0 || c.presence_penalty != 0.0 || c.frequency_penalty != 0.0
}

/// SplitMix64 of (seed, step): a distinct, reproducible RNG key per step.
fn step_seed(seed: u64, step: u64) -> u64 {
    let mut z = seed ^ step.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn scalar(v: f32) -> mlx::Result<Array> {
    Array::scalar_f32(v)
}

/// HF's repetition rule and OpenAI's presence / frequency rules over the counts.
fn penalize(l: &Array, counts: &Array, c: &SamplerConfig, s: Stream) -> mlx::Result<Array> {
    let zero = scalar(0.0)?;
    let seen = ops::binary(BinaryOp::Greater, counts, &zero, s)?;
    let mut out = l.clone();
    if c.repetition_penalty != 1.0 {
        let p = scalar(c.repetition_penalty)?;
        let divided = ops::binary(BinaryOp::Divide, &out, &p, s)?;
        let multiplied = ops::binary(BinaryOp::Multiply, &out, &p, s)?;
        let positive = ops::binary(BinaryOp::Greater, &out, &zero, s)?;
        let penalized = ops::where_(&positive, &divided, &multiplied, s)?;
        out = ops::where_(&seen, &penalized, &out, s)?;
    }
    if c.presence_penalty != 0.0 {
        let seen_f = ops::astype(&seen, Dtype::Float32, s)?;
        let p = ops::binary(BinaryOp::Multiply, &seen_f, &scalar(c.presence_penalty)?, s)?;
        out = ops::binary(BinaryOp::Subtract, &out, &p, s)?;
    }
    if c.frequency_penalty != 0.0 {
        let f = ops::binary(BinaryOp::Multiply, counts, &scalar(c.frequency_penalty)?, s)?;
        out = ops::binary(BinaryOp::Subtract, &out, &f, s)?;
    }
    Ok(out)
}

/// Temperature, then top-k, min-p and top-p as −∞ masks over the row.
fn filter(l: &Array, c: &SamplerConfig, vocab: usize, s: Stream) -> mlx::Result<Array> {
    let neg_inf = scalar(f32::NEG_INFINITY)?;
    let mut l = ops::binary(BinaryOp::Multiply, l, &scalar(1.0 / c.temperature)?, s)?;
    if c.top_k > 0 && c.top_k < vocab {
        // The k-th largest value: position vocab - k of the ascending sort.
        let sorted = ops::sort(&l, 0, s)?;
        let kth = ops::take_index(&sorted, (vocab - c.top_k) as i32, 0, s)?;
        let below = ops::binary(BinaryOp::Less, &l, &kth, s)?;
        l = ops::where_(&below, &neg_inf, &l, s)?;
    }
    if c.min_p > 0.0 {
        // p / p_max ≥ min_p  ⇔  l ≥ l_max + ln(min_p).
        let max = ops::reduce(ReduceOp::Max, &l, None, false, s)?;
        let floor = ops::binary(BinaryOp::Add, &max, &scalar(c.min_p.ln())?, s)?;
        let below = ops::binary(BinaryOp::Less, &l, &floor, s)?;
        l = ops::where_(&below, &neg_inf, &l, s)?;
    }
    if c.top_p < 1.0 {
        // Keep a token when the mass of the tokens more likely than it is below top_p (HF's rule): over the
        // ascending sort, the mass above position j is 1 - cumsum_j; the cut is the smallest kept probability.
        let probs = ops::softmax(&l, &[0], true, s)?;
        let sorted = ops::sort(&probs, 0, s)?;
        let cumulative = ops::cumsum(&sorted, 0, false, true, s)?;
        let above = ops::binary(BinaryOp::Subtract, &scalar(1.0)?, &cumulative, s)?;
        let kept = ops::binary(BinaryOp::Less, &above, &scalar(c.top_p)?, s)?;
        let inf = scalar(f32::INFINITY)?;
        let kept_probs = ops::where_(&kept, &sorted, &inf, s)?;
        let cut = ops::reduce(ReduceOp::Min, &kept_probs, None, false, s)?;
        let below = ops::binary(BinaryOp::Less, &probs, &cut, s)?;
        l = ops::where_(&below, &neg_inf, &l, s)?;
    }
    Ok(l)
}

/// Gumbel(0, 1) noise of length `v`: −log(−log(u)), u uniform in (0, 1).
fn gumbel(v: i32, key: &Array, s: Stream) -> mlx::Result<Array> {
    // u = (top 24 random bits + 0.5) / 2^24: exact in float32 and strictly inside (0, 1), so the noise is
    // always finite (an infinite one would turn a masked −∞ logit into NaN).
    let bits = mlx::random::bits(&[v], 4, Some(key), s)?;
    let divisor = Array::scalar_i64_as(256, Dtype::Uint32)?;
    let top = ops::binary(BinaryOp::FloorDivide, &bits, &divisor, s)?;
    let u = ops::astype(&top, Dtype::Float32, s)?;
    let u = ops::binary(BinaryOp::Add, &u, &scalar(0.5)?, s)?;
    let u = ops::binary(BinaryOp::Multiply, &u, &scalar(1.0 / 16_777_216.0)?, s)?;
    let inner = ops::unary(UnaryOp::Log, &u, s)?;
    let inner = ops::unary(UnaryOp::Negative, &inner, s)?;
    let outer = ops::unary(UnaryOp::Log, &inner, s)?;
    ops::unary(UnaryOp::Negative, &outer, s)
}
