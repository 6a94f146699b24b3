//! Server counters, rendered in Prometheus' text exposition format for `GET /metrics`.
//!
//! Written by hand rather than with a metrics crate: the server exports a dozen fixed series (no labels
//! beyond endpoint and status), and the text format for counters, gauges and histograms is a few lines each,
//! whereas the registries of `prometheus` / `prometheus-client` bring their own global state and types.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A cumulative histogram with fixed upper bounds.
struct Histogram {
    bounds: &'static [f64],
    /// Observations ≤ bounds[i] (not cumulative; summed when rendered).
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|&b| v <= b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

const TTFT_BOUNDS_S: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const DECODE_RATE_BOUNDS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0,
];

/// Everything `/metrics` reports. Shared by the handlers and the slot threads.
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    pub prompt_tokens: AtomicU64,
    pub cached_prompt_tokens: AtomicU64,
    pub completion_tokens: AtomicU64,
    pub cancelled: AtomicU64,
    pub rejected_busy: AtomicU64,
    pub queue_depth: AtomicU64,
    pub slots_busy: AtomicU64,
    slots_total: u64,
    ttft: Mutex<Histogram>,
    decode_rate: Mutex<Histogram>,
}

impl Metrics {
    pub fn new(slots: usize) -> Self {
        Metrics {
            requests: Mutex::new(BTreeMap::new()),
            prompt_tokens: AtomicU64::new(0),
            cached_prompt_tokens: AtomicU64::new(0),
            completion_tokens: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            rejected_busy: AtomicU64::new(0),
            queue_depth: AtomicU64::new(0),
            slots_busy: AtomicU64::new(0),
            slots_total: slots as u64,
            ttft: Mutex::new(Histogram::new(TTFT_BOUNDS_S)),
            decode_rate: Mutex::new(Histogram::new(DECODE_RATE_BOUNDS)),
        }
    }

    /// Counts a finished HTTP request by route and status.
    pub fn request(&self, endpoint: &str, status: u16) {
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((endpoint.to_string(), status)).or_default() += 1;
    }

    /// Records one generation: time to first token and decode rate (tokens after the first per second).
    pub fn generation(&self, ttft_ms: f64, decode_tok_s: f64, generated: usize) {
        if generated > 0 {
            lock(&self.ttft).observe(ttft_ms / 1e3);
        }
        if generated > 1 && decode_tok_s.is_finite() {
            lock(&self.decode_rate).observe(decode_tok_s);
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP etmlx_requests_total HTTP requests by endpoint and status.\n");
        out.push_str("# TYPE etmlx_requests_total counter\n");
        for ((endpoint, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "etmlx_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}"
            );
        }
        let counters = [
            (
                "etmlx_prompt_tokens_total",
                "Prompt tokens of generations.",
                &self.prompt_tokens,
            ),
            (
                "etmlx_cached_prompt_tokens_total",
                "Prompt tokens reused from a slot's KV cache (not recomputed).",
                &self.cached_prompt_tokens,
            ),
            (
                "etmlx_generated_tokens_total",
                "Generated tokens.",
                &self.completion_tokens,
            ),
            (
                "etmlx_generations_cancelled_total",
                "Generations stopped early (client gone, timeout, shutdown).",
                &self.cancelled,
            ),
            (
                "etmlx_rejected_busy_total",
                "Requests refused because the queue was full.",
                &self.rejected_busy,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let gauges = [
            (
                "etmlx_queue_depth",
                "Requests waiting for a free slot.",
                self.queue_depth.load(Ordering::Relaxed),
            ),
            (
                "etmlx_slots_busy",
                "Slots generating now.",
                self.slots_busy.load(Ordering::Relaxed),
            ),
            (
                "etmlx_slots_total",
                "Slots (sessions sharing the model's weights).",
                self.slots_total,
            ),
        ];
        // MLX's allocator counters: weights (once, whatever the slot count) + every slot's cache + temporaries.
        let memory = [
            (
                "etmlx_mlx_active_memory_bytes",
                "Bytes held by live MLX arrays.",
                mlx::memory::active_memory(),
            ),
            (
                "etmlx_mlx_peak_memory_bytes",
                "Highest MLX active memory since start.",
                mlx::memory::peak_memory(),
            ),
        ];
        let gauges = gauges.into_iter().chain(
            memory
                .into_iter()
                .filter_map(|(name, help, v)| Some((name, help, v.ok()? as u64))),
        );
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        lock(&self.ttft).render(
            &mut out,
            "etmlx_time_to_first_token_seconds",
            "Time from a slot taking a request to its first generated token (prefill).",
        );
        lock(&self.decode_rate).render(
            &mut out,
            "etmlx_decode_tokens_per_second",
            "Decode rate of each generation (tokens after the first per second).",
        );
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let m = Metrics::new(2);
        m.generation(3.0, 50.0, 4); // 0.003 s
        m.generation(300.0, 8.0, 4); // 0.3 s
        m.request("/v1/chat/completions", 200);
        m.request("/v1/chat/completions", 200);
        let text = m.render();
        assert!(text.contains("etmlx_time_to_first_token_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("etmlx_time_to_first_token_seconds_bucket{le=\"0.25\"} 1\n"));
        assert!(text.contains("etmlx_time_to_first_token_seconds_bucket{le=\"0.5\"} 2\n"));
        assert!(text.contains("etmlx_time_to_first_token_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("etmlx_time_to_first_token_seconds_count 2\n"));
        assert!(text.contains(
            "etmlx_requests_total{endpoint=\"/v1/chat/completions\",status=\"200\"} 2\n"
        ));
        assert!(text.contains("etmlx_slots_total 2\n"));
    }
}
