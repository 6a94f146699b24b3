//! Generation statistics, in the JSON shape users and scripts read, and a one-line human summary.
//!
//! Definitions (the ExecuTorch runner's, minus its decode overstatement):
//! - TTFT: from just before prefill (prompt ids ready; tokenisation excluded) to the first sampled token,
//!   which prefill produces;
//! - prefill tok/s = prompt tokens / TTFT;
//! - decode tok/s = (generated tokens − 1) / (end − first token): the first token is prefill's, so the decode
//!   span covers the other N − 1.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::stop::StopReason;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerationStats {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub ttft_ms: f64,
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
    /// Peak device memory, when the engine can tell (`null` otherwise).
    pub peak_memory_bytes: Option<u64>,
    /// Which decode loop ran (older records without the field read as the host path).
    #[serde(default)]
    pub decode_path: DecodePath,
}

/// The two decode loops of [`crate::Generator`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecodePath {
    /// `forward` on host inputs, logits copied to the host, sampled there; one step after another.
    #[default]
    Host,
    /// Logits and the sampled token stay on the device; step t+1 is submitted before step t's token is read.
    DevicePipelined,
}

impl DecodePath {
    pub fn name(self) -> &'static str {
        match self {
            DecodePath::Host => "host",
            DecodePath::DevicePipelined => "device-pipelined",
        }
    }
}

impl GenerationStats {
    /// Stats from the two measured spans: prefill (= TTFT) and decode (first token → last token).
    pub fn from_spans(
        prompt_tokens: usize,
        generated_tokens: usize,
        prefill: Duration,
        decode: Duration,
        peak_memory_bytes: Option<u64>,
    ) -> Self {
        let decoded = generated_tokens.saturating_sub(1);
        GenerationStats {
            prompt_tokens,
            generated_tokens,
            ttft_ms: prefill.as_secs_f64() * 1e3,
            prefill_tok_s: rate(prompt_tokens, prefill),
            decode_tok_s: rate(decoded, decode),
            peak_memory_bytes,
            decode_path: DecodePath::Host,
        }
    }

    /// One line for people, e.g.
    /// `prompt: 37 tokens, 1850.0 tok/s | TTFT: 20.0 ms | generated: 8 tokens, 70.0 tok/s | peak memory: 268.4 MB`.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "prompt: {} tokens, {:.1} tok/s | TTFT: {:.1} ms | generated: {} tokens, {:.1} tok/s",
            self.prompt_tokens,
            self.prefill_tok_s,
            self.ttft_ms,
            self.generated_tokens,
            self.decode_tok_s
        );
        if let Some(bytes) = self.peak_memory_bytes {
            line.push_str(&format!(" | peak memory: {}", format_bytes(bytes)));
        }
        line
    }
}

impl fmt::Display for GenerationStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())
    }
}

/// The result of one generation, as printed by `--json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationOutput {
    pub text: String,
    pub token_ids: Vec<u32>,
    pub stop_reason: StopReason,
    pub stats: GenerationStats,
}

fn rate(tokens: usize, span: Duration) -> f64 {
    let secs = span.as_secs_f64();
    if tokens == 0 || secs <= 0.0 {
        0.0
    } else {
        tokens as f64 / secs
    }
}

/// Decimal units, as mlx-lm prints them (`0.27 GB`).
pub fn format_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

/// Clock for one generation: `start()` just before prefill, `first_token()` when prefill's token is sampled,
/// `finish()` after the last token.
#[derive(Debug, Clone)]
pub struct GenerationTimer {
    start: Instant,
    first_token: Option<Instant>,
}

impl GenerationTimer {
    pub fn start() -> Self {
        GenerationTimer {
            start: Instant::now(),
            first_token: None,
        }
    }

    /// Records the first token's time (later calls are ignored).
    pub fn first_token(&mut self) {
        self.first_token.get_or_insert_with(Instant::now);
    }

    pub fn ttft(&self) -> Option<Duration> {
        self.first_token.map(|t| t - self.start)
    }

    pub fn finish(
        &self,
        prompt_tokens: usize,
        generated_tokens: usize,
        peak_memory_bytes: Option<u64>,
    ) -> GenerationStats {
        let now = Instant::now();
        let first = self.first_token.unwrap_or(now);
        GenerationStats::from_spans(
            prompt_tokens,
            generated_tokens,
            first - self.start,
            now - first,
            peak_memory_bytes,
        )
    }
}
