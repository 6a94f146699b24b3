//! `etmlx bench`: prefill and decode throughput of an LLM export, with llama-bench semantics.
//!
//! - Prompt processing (`ppN`): N random token ids (fixed seed) from position 0, in calls of at most the export's
//!   prefill chunk size; tok/s = N / wall time of the calls. Where `generate` uses the device-resident pipelined
//!   loop (every official LLM export), the prompt runs through it: the logits stay on the device, the first token
//!   is sampled there (argmax), and the clock stops when that token reaches the host. Otherwise (the host loop)
//!   each call returns once its last logits are on the host.
//! - Generation (`tgN`): after a 1-token prompt (untimed), N single-token steps, each feeding back the greedy
//!   token of the previous step, through the same loop; tok/s = N / wall time of the N steps.
//! - One warm-up (or `--warmup`) before the measured runs covers every prefill chunk shape and the decode shape
//!   (MLX compiles kernels on first use); `-r` repetitions per test, reported as median/min/max.
//! - Peak memory is MLX's allocator peak, reset before each test. Load time is reported, never included.
//! - Between repetitions the cache is rewound to position 0 (in-graph caches are position-addressed; an
//!   off-graph cache is cleared).
//!
//! No tokenizer is needed. `--synthetic-weights` runs weight-stripped exports (see `python/strip_weights.py`),
//! labelled as such in every output format.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use etmlx_llm::model::{DeviceSampling, OutputKind, StepOutput};
use etmlx_llm::{DecodePath, GenerateOptions, Generator, LlmModel, ModelOptions, SamplerConfig};
use etmlx_runtime::{BackendOptions, OptionValue};
use serde::Serialize;

/// How synthetic-weight results are labelled in every output format.
pub const SYNTHETIC_LABEL: &str = "SYNTHETIC WEIGHTS";
/// Decode steps of the warm-up (enough to run every decode kernel a few times).
const WARMUP_DECODE_STEPS: usize = 8;
/// More repetitions than this is a typo, not a benchmark.
const MAX_REPETITIONS: usize = 10_000;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// The LLM export (.pte) to benchmark.
    pub model: PathBuf,
    /// Prompt lengths to test (prefill from position 0), comma-separated; 0 skips prefill tests. Default 512
    /// (skipped with a note when the export's context is shorter).
    #[arg(short = 'p', long = "prompt", value_delimiter = ',')]
    pub prompt: Vec<usize>,
    /// Generation lengths to test (single-token decode steps after a 1-token prompt); 0 skips decode tests.
    /// Default 128 (skipped with a note when the export's context is shorter).
    #[arg(short = 'n', long = "gen", value_delimiter = ',')]
    pub gen: Vec<usize>,
    /// Context depth of the decode tests (llama-bench's `-d`): each tgN runs after an untimed prompt of
    /// DEPTH + 1 tokens instead of 1, and is reported as `tgN@dDEPTH`. Attention cost grows with depth (on
    /// CUDA, MLX switches one-query attention from its vector kernel to cuDNN at 256 cached keys).
    #[arg(short = 'd', long = "depth", default_value_t = 0)]
    pub depth: usize,
    /// Measured repetitions of each test.
    #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
    pub repetitions: usize,
    /// Untimed warm-up rounds (each: every prefill length once, plus a few decode steps).
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Print one JSON object as the last stdout line instead of the table.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV rows instead of the table.
    #[arg(long)]
    pub csv: bool,
    /// Fill constants missing from the file (a weight-stripped export) with pseudo-random values.
    #[arg(long)]
    pub synthetic_weights: bool,
    /// Split decode step time into graph building, submission, waiting for results and the rest.
    #[arg(long)]
    pub profile: bool,
    /// Rebuild views of constants (transposed weights, ...) on every call instead of once at load: only to
    /// measure what that load-time folding saves.
    #[arg(long)]
    pub no_constant_folding: bool,
    /// The engine's `--mlx-option` values (set by the caller from the shared engine arguments), recorded in the
    /// report: a graph pass or fusion measured A/B.
    #[arg(skip)]
    pub mlx_options: Vec<(String, etmlx_cli::MlxOptionValue)>,
    /// Seed of the random token ids.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Decode with the host loop (logits copied to the host, host argmax, one step after another) even where
    /// the device-resident pipelined loop applies: only to measure what the pipelined loop saves.
    #[arg(long)]
    pub host_decode: bool,
}

/// llama-bench's default tests, used when `-p` / `-n` are not given.
pub const DEFAULT_PROMPT: usize = 512;
pub const DEFAULT_GEN: usize = 128;

/// The tests to run: the lengths asked for, or the defaults that fit the export (with a note for the others).
#[derive(Debug, Clone, PartialEq)]
pub struct TestPlan {
    pub prompts: Vec<usize>,
    pub gens: Vec<usize>,
    pub skipped: Vec<String>,
}

/// Median, minimum and maximum of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    /// `None` for an empty sample; the median of an even count is the mean of the two middle values.
    pub fn of(values: &[f64]) -> Option<Summary> {
        let mut v: Vec<f64> = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let (first, last) = (*v.first()?, *v.last()?);
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Summary {
            median,
            min: first,
            max: last,
        })
    }
}

/// Where a `forward` call's time goes (milliseconds, means over the measured calls: decode steps, or the
/// prefill chunks of a prompt).
#[derive(Debug, Clone, Serialize)]
pub struct CallProfile {
    /// Wall time per call.
    pub step_ms: f64,
    /// Lock wait, input copies and interpreting the payload (building MLX's lazy graph).
    pub graph_build_ms: f64,
    /// `async_eval`: MLX schedules the graph and encodes/launches kernels.
    pub submit_ms: f64,
    /// Waiting for the results plus copying the logits to the host.
    pub wait_ms: f64,
    /// Host argmax over the vocabulary (decode only).
    pub argmax_ms: f64,
    /// The profile's own cost: walking each call's graph to count its primitives (not there without `--profile`).
    pub count_ms: f64,
    /// Everything else in the step: the runtime's instruction loop and portable kernels, output handling.
    pub other_ms: f64,
    /// MLX graph nodes submitted per call (each one an encoded kernel or a no-op view on the GPU).
    pub primitives_per_step: f64,
    /// Staged submissions per call (`stage_mflop`, `submit_every`; their time is in `submit_ms`).
    pub stages_per_call: f64,
    /// `submit_ms` spread over those nodes: MLX's host cost per primitive.
    pub submit_us_per_primitive: f64,
    /// The most frequent primitive kinds, nodes per call, most frequent first.
    pub top_primitives: Vec<PrimitiveCount>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PrimitiveCount {
    pub name: String,
    pub per_step: f64,
}

/// How many primitive kinds the profile lists.
const TOP_PRIMITIVES: usize = 12;

#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    /// `pp512` / `tg128`, as llama-bench names them.
    pub test: String,
    pub tokens: usize,
    /// `forward` calls per repetition (prefill: ceil(tokens / chunk); decode: tokens).
    pub calls: usize,
    pub tok_s_median: f64,
    pub tok_s_min: f64,
    pub tok_s_max: f64,
    pub ms_median: f64,
    pub ms_min: f64,
    pub ms_max: f64,
    pub peak_memory_bytes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<CallProfile>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Versions {
    pub etmlx: String,
    pub mlx: String,
    pub mlx_library: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub device: String,
    pub synthetic_weights: bool,
    /// "SYNTHETIC WEIGHTS" when missing constants were generated, else "file".
    pub weights: &'static str,
    pub load_ms: f64,
    pub max_ctx_len: usize,
    pub prefill_chunk_size: usize,
    /// Bytes of the constants the MLX payloads declare (shape × dtype): the weights a decode step reads.
    pub weight_bytes: u64,
    pub repetitions: usize,
    pub warmup: usize,
    pub seed: u64,
    pub sampling: &'static str,
    /// The loop the ppN and tgN tests ran: "device-pipelined" or "host" (see `etmlx_llm::DecodePath`).
    pub decode_path: &'static str,
    /// Default tests left out because they do not fit the export, with the reason.
    pub skipped: Vec<String>,
    /// Whether views of constants were folded at load (`--no-constant-folding` turns it off).
    pub constant_folding: bool,
    /// MLXBackend options set with `--mlx-option`.
    pub mlx_options: Vec<(String, etmlx_cli::MlxOptionValue)>,
    pub prefill: Vec<TestResult>,
    pub decode: Vec<TestResult>,
    /// Highest MLX peak over all tests (after load).
    pub peak_memory_bytes: usize,
    pub versions: Versions,
    pub timestamp_unix: u64,
}

/// SplitMix64: the token ids only need to be reproducible and spread over the vocabulary.
struct TokenRng(u64);

impl TokenRng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn tokens(&mut self, n: usize, vocab: usize) -> Vec<u32> {
        let vocab = vocab.clamp(1, u32::MAX as usize) as u64;
        (0..n).map(|_| (self.next() % vocab) as u32).collect()
    }
}

/// Checks the requested tests against the export before anything runs. A length given with `-p` / `-n` that
/// does not fit is an error; a default that does not fit is skipped with a note.
pub fn plan(args: &BenchArgs, max_ctx_len: usize, static_tokens: bool) -> Result<TestPlan> {
    if args.repetitions == 0 || args.repetitions > MAX_REPETITIONS {
        bail!("-r must be between 1 and {MAX_REPETITIONS}");
    }
    if static_tokens {
        bail!("this export takes a fixed number of tokens per call; bench needs a dynamic sequence length");
    }
    let mut skipped = Vec::new();
    let prompts = if args.prompt.is_empty() {
        if DEFAULT_PROMPT <= max_ctx_len {
            vec![DEFAULT_PROMPT]
        } else {
            skipped.push(format!(
                "pp{DEFAULT_PROMPT} skipped: the export's context is {max_ctx_len} tokens (choose lengths with -p)"
            ));
            Vec::new()
        }
    } else {
        if let Some(&p) = args.prompt.iter().find(|&&p| p > max_ctx_len) {
            bail!("prompt length {p} exceeds the export's context of {max_ctx_len} tokens");
        }
        args.prompt.iter().copied().filter(|&p| p > 0).collect()
    };
    // Decode uses positions 0..=depth (the prompt) through depth + n.
    let depth = args.depth;
    let gens = if args.gen.is_empty() {
        if depth + DEFAULT_GEN < max_ctx_len {
            vec![DEFAULT_GEN]
        } else {
            skipped.push(format!(
                "tg{DEFAULT_GEN} skipped: it needs {} positions and the export's context is {max_ctx_len} (choose lengths with -n)",
                depth + DEFAULT_GEN + 1
            ));
            Vec::new()
        }
    } else {
        if let Some(&n) = args.gen.iter().find(|&&n| depth + n >= max_ctx_len) {
            bail!(
                "generating {n} tokens after a {}-token prompt needs {} positions; the export's context is {max_ctx_len}",
                depth + 1,
                depth + n + 1
            );
        }
        args.gen.iter().copied().filter(|&n| n > 0).collect()
    };
    if prompts.is_empty() && gens.is_empty() {
        if skipped.is_empty() {
            bail!("nothing to run: every -p and -n value is 0");
        }
        bail!("nothing to run: {}", skipped.join("; "));
    }
    Ok(TestPlan {
        prompts,
        gens,
        skipped,
    })
}

/// Backend options for the bench: the engine's, plus synthetic weights and profiling when asked.
pub fn backend_options(mut o: BackendOptions, args: &BenchArgs) -> BackendOptions {
    use etmlx_mlx::backend::option_keys;
    let id = etmlx_mlx::BACKEND_ID;
    if args.synthetic_weights {
        o.set(id, option_keys::SYNTHETIC_WEIGHTS, OptionValue::Bool(true));
    }
    if args.profile {
        o.set(id, option_keys::PROFILE, OptionValue::Bool(true));
    }
    if args.no_constant_folding {
        o.set(
            id,
            option_keys::FOLD_CONSTANT_VIEWS,
            OptionValue::Bool(false),
        );
    }
    o
}

struct Runner {
    generator: Generator,
    vocab: usize,
    chunk: usize,
    rng: TokenRng,
    sampling: Option<DeviceSampling>,
    decode_path: DecodePath,
}

impl Runner {
    fn model(&mut self) -> &mut LlmModel {
        self.generator.model_mut()
    }

    fn step(&mut self, tokens: &[u32], start: usize) -> Result<StepOutput<'_>> {
        let sampling = self.sampling;
        Ok(self.model().forward(tokens, start, sampling.as_ref())?)
    }

    /// Prefill of `prompt` from position 0 in chunks; returns the wall time in seconds.
    fn prefill(&mut self, prompt: &[u32]) -> Result<f64> {
        self.generator.reset()?;
        match self.decode_path {
            DecodePath::DevicePipelined => self.prefill_pipelined(prompt),
            DecodePath::Host => {
                let started = Instant::now();
                self.feed(prompt)?;
                Ok(started.elapsed().as_secs_f64())
            }
        }
    }

    /// The prompt as `generate` prefills it on the pipelined path (the logits stay on the device, the first
    /// token is sampled there): the clock stops when that token reaches the host (time to first token).
    fn prefill_pipelined(&mut self, prompt: &[u32]) -> Result<f64> {
        let started = Instant::now();
        let mut first = None;
        self.generate_pipelined(prompt, 1, |_| {
            first.get_or_insert_with(Instant::now);
        })?;
        let first = first.context("the prefill produced no token")?;
        Ok((first - started).as_secs_f64())
    }

    /// `generate`'s pipelined loop, greedy, stop ids ignored, for `tokens` tokens; `on_token` gets each one's
    /// index. Refuses a run that took another loop or stopped early.
    fn generate_pipelined(
        &mut self,
        prompt: &[u32],
        tokens: usize,
        mut on_token: impl FnMut(usize),
    ) -> Result<()> {
        let options = GenerateOptions {
            max_new_tokens: tokens,
            ignore_eos: true,
            ..GenerateOptions::default()
        };
        let out = self.generator.generate(prompt, &options, |event| {
            on_token(event.index);
            std::ops::ControlFlow::Continue(())
        })?;
        if out.stats.decode_path != DecodePath::DevicePipelined || out.token_ids.len() != tokens {
            bail!(
                "the pipelined loop ran {} ({} tokens of {})",
                out.stats.decode_path.name(),
                out.token_ids.len(),
                tokens
            );
        }
        Ok(())
    }

    /// `prompt` from position 0 in `forward` calls of at most the export's chunk; the last call's output.
    fn feed(&mut self, prompt: &[u32]) -> Result<StepOutput<'_>> {
        let last =
            prompt.len().checked_sub(1).context("an empty prompt")? / self.chunk * self.chunk;
        for start in (0..last).step_by(self.chunk) {
            self.step(&prompt[start..start + self.chunk], start)?;
        }
        self.step(&prompt[last..], last)
    }

    /// `steps` decode steps after an untimed prompt of `depth + 1` tokens; returns (seconds, host argmax seconds).
    fn decode(&mut self, steps: usize, depth: usize) -> Result<(f64, f64)> {
        let first = self.rng.tokens(depth + 1, self.vocab);
        match self.decode_path {
            DecodePath::DevicePipelined => self.decode_pipelined(&first, steps),
            DecodePath::Host => self.decode_host(&first, steps),
        }
    }

    fn decode_host(&mut self, first: &[u32], steps: usize) -> Result<(f64, f64)> {
        self.generator.reset()?;
        let mut out = self.feed(first)?;
        // The profile covers the timed steps only: drop the prompt's.
        let _ = etmlx_mlx::backend::take_exec_timings();
        let mut argmax_s = 0.0;
        let started = Instant::now();
        for position in first.len()..first.len() + steps {
            let picked = Instant::now();
            let next = match &out {
                StepOutput::Logits(logits) => etmlx_llm::sampler::argmax(logits).unwrap_or(0),
                StepOutput::Token(id) => *id,
            };
            argmax_s += picked.elapsed().as_secs_f64();
            out = self.step(&[next], position)?;
        }
        Ok((started.elapsed().as_secs_f64(), argmax_s))
    }

    /// The generator's pipelined loop, greedy, stop ids ignored: the clock runs from the first token read
    /// (the prompt's) to the last, so it covers `steps` decode steps, as the host loop's does.
    fn decode_pipelined(&mut self, first: &[u32], steps: usize) -> Result<(f64, f64)> {
        self.generator.reset()?;
        let mut started = None;
        let mut finished = None;
        self.generate_pipelined(first, steps + 1, |index| {
            if index == 0 {
                started = Some(Instant::now());
                // The profile covers the timed steps only: drop the prompt's (recorded when its token was read).
                let _ = etmlx_mlx::backend::take_exec_timings();
            }
            finished = Some(Instant::now());
        })?;
        let secs = match (started, finished) {
            (Some(a), Some(b)) => (b - a).as_secs_f64(),
            _ => 0.0,
        };
        Ok((secs, 0.0))
    }
}

/// `tg128`, or `tg128@d1024` at a context depth (as llama-bench writes `tg128 @ d1024`).
fn decode_name(n: usize, depth: usize) -> String {
    if depth == 0 {
        format!("tg{n}")
    } else {
        format!("tg{n}@d{depth}")
    }
}

/// Runs the benchmark described by `args` with the given backend options.
pub fn run(
    args: &BenchArgs,
    ptd: Option<&Path>,
    backend: BackendOptions,
    device: &str,
) -> Result<BenchReport> {
    let options = ModelOptions {
        ptd: ptd.map(Path::to_path_buf),
        backend: backend_options(backend, args),
        kv_dtype: None,
        all_position_logits: false,
    };
    let load_started = Instant::now();
    let model = LlmModel::open(&args.model, options)
        .with_context(|| format!("model {}", args.model.display()))?;
    let load_ms = load_started.elapsed().as_secs_f64() * 1e3;
    let meta = model.metadata().clone();
    let TestPlan {
        prompts,
        gens,
        skipped,
    } = plan(args, meta.max_ctx_len, meta.static_tokens)?;
    let weight_bytes = declared_weight_bytes(&model)?;
    let mut generator = Generator::new(model, None)?;
    generator.set_host_decode(args.host_decode);
    let decode_path = if generator.uses_pipelined_decode(&SamplerConfig::greedy()) {
        DecodePath::DevicePipelined
    } else {
        DecodePath::Host
    };
    let sampling = (meta.output == OutputKind::SampledToken).then_some(DeviceSampling {
        temperature: 0.0,
        top_k: 1,
        top_p: 1.0,
        seed: args.seed,
    });
    let mut r = Runner {
        vocab: meta.vocab_size.unwrap_or(1),
        chunk: meta.prefill_chunk_size.max(1),
        rng: TokenRng(args.seed),
        sampling,
        generator,
        decode_path,
    };

    for _ in 0..args.warmup {
        for &p in &prompts {
            let tokens = r.rng.tokens(p, r.vocab);
            r.prefill(&tokens).context("warm-up prefill")?;
        }
        if let Some(&n) = gens.iter().max() {
            r.decode(n.min(WARMUP_DECODE_STEPS), args.depth)
                .context("warm-up decode")?;
        }
    }
    let _ = etmlx_mlx::backend::take_exec_timings();

    let mut prefill = Vec::new();
    for &p in &prompts {
        mlx::memory::reset_peak_memory()?;
        let tokens = r.rng.tokens(p, r.vocab);
        let mut secs = Vec::with_capacity(args.repetitions);
        for rep in 0..args.repetitions {
            secs.push(
                r.prefill(&tokens)
                    .with_context(|| format!("pp{p}, repetition {}", rep + 1))?,
            );
        }
        let calls = p.div_ceil(r.chunk);
        let timings = etmlx_mlx::backend::take_exec_timings();
        let profile = args
            .profile
            .then(|| call_profile(&timings, &secs, calls * args.repetitions, 0.0));
        prefill.push(result(format!("pp{p}"), p, calls, &secs, profile)?);
    }
    let mut decode = Vec::new();
    for &n in &gens {
        mlx::memory::reset_peak_memory()?;
        let mut timings = etmlx_mlx::backend::ExecTimings::default();
        let mut secs = Vec::with_capacity(args.repetitions);
        let mut argmax_s = 0.0;
        for rep in 0..args.repetitions {
            let (s, a) = r.decode(n, args.depth).with_context(|| {
                format!("{}, repetition {}", decode_name(n, args.depth), rep + 1)
            })?;
            secs.push(s);
            argmax_s += a;
            // The timed steps of this repetition (`decode` dropped its prompt's).
            timings.merge(etmlx_mlx::backend::take_exec_timings());
        }
        let profile = args
            .profile
            .then(|| call_profile(&timings, &secs, n * args.repetitions, argmax_s));
        decode.push(result(decode_name(n, args.depth), n, n, &secs, profile)?);
    }
    let peak_memory_bytes = prefill
        .iter()
        .chain(&decode)
        .map(|t| t.peak_memory_bytes)
        .max()
        .unwrap_or(0);
    let info = mlx::runtime_info().ok();
    Ok(BenchReport {
        model: args.model.display().to_string(),
        device: device.to_string(),
        synthetic_weights: args.synthetic_weights,
        weights: if args.synthetic_weights {
            SYNTHETIC_LABEL
        } else {
            "file"
        },
        load_ms,
        max_ctx_len: meta.max_ctx_len,
        prefill_chunk_size: r.chunk,
        weight_bytes,
        repetitions: args.repetitions,
        warmup: args.warmup,
        seed: args.seed,
        sampling: match (sampling.is_some(), decode_path) {
            (true, _) => "device (export's sampling head)",
            (false, DecodePath::DevicePipelined) => "device argmax",
            (false, DecodePath::Host) => "host argmax",
        },
        decode_path: decode_path.name(),
        skipped,
        constant_folding: !args.no_constant_folding,
        mlx_options: args.mlx_options.clone(),
        prefill,
        decode,
        peak_memory_bytes,
        versions: Versions {
            etmlx: env!("CARGO_PKG_VERSION").to_string(),
            mlx: info.as_ref().map(|i| i.version.clone()).unwrap_or_default(),
            mlx_library: info
                .and_then(|i| i.library_path)
                .map(|p| p.display().to_string()),
        },
        timestamp_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    })
}

/// The profile of `timed_calls` calls that took `secs` in all (per repetition) and `argmax_s` of host
/// argmax. The backend's timings may include untimed calls (decode's 1-token prompt): per-execute parts are
/// means over the executes it saw.
fn call_profile(
    timings: &etmlx_mlx::backend::ExecTimings,
    secs: &[f64],
    timed_calls: usize,
    argmax_s: f64,
) -> CallProfile {
    let calls = timed_calls.max(1) as f64;
    let executes = timings.executes.max(1) as f64;
    let per_exec_ms = |ns: u64| ns as f64 / executes / 1e6;
    let step_ms = secs.iter().sum::<f64>() / calls * 1e3;
    let graph_build_ms = per_exec_ms(timings.build_ns);
    let submit_ms = per_exec_ms(timings.submit_ns);
    let wait_ms = per_exec_ms(timings.wait_ns);
    // The profile's own primitive count is in the wall time: left out of every part.
    let count_ms = per_exec_ms(timings.count_ns);
    let argmax_ms = argmax_s / calls * 1e3;
    let primitives_per_step = timings.primitives.values().sum::<u64>() as f64 / executes;
    let mut top_primitives: Vec<PrimitiveCount> = timings
        .primitives
        .iter()
        .map(|(name, &n)| PrimitiveCount {
            name: name.clone(),
            per_step: n as f64 / executes,
        })
        .collect();
    top_primitives.sort_by(|a, b| b.per_step.total_cmp(&a.per_step));
    top_primitives.truncate(TOP_PRIMITIVES);
    CallProfile {
        step_ms,
        graph_build_ms,
        submit_ms,
        wait_ms,
        argmax_ms,
        count_ms,
        other_ms: step_ms - graph_build_ms - submit_ms - wait_ms - argmax_ms - count_ms,
        primitives_per_step,
        stages_per_call: timings.stages as f64 / executes,
        submit_us_per_primitive: if primitives_per_step > 0.0 {
            submit_ms * 1e3 / primitives_per_step
        } else {
            0.0
        },
        top_primitives,
    }
}

fn result(
    test: String,
    tokens: usize,
    calls: usize,
    secs: &[f64],
    profile: Option<CallProfile>,
) -> Result<TestResult> {
    let tok_s: Vec<f64> = secs
        .iter()
        .map(|&s| tokens as f64 / s.max(f64::MIN_POSITIVE))
        .collect();
    let rate = Summary::of(&tok_s).context("no repetitions")?;
    let ms: Vec<f64> = secs.iter().map(|s| s * 1e3).collect();
    let time = Summary::of(&ms).context("no repetitions")?;
    Ok(TestResult {
        test,
        tokens,
        calls,
        tok_s_median: rate.median,
        tok_s_min: rate.min,
        tok_s_max: rate.max,
        ms_median: time.median,
        ms_min: time.min,
        ms_max: time.max,
        peak_memory_bytes: mlx::memory::peak_memory()?,
        profile,
    })
}

/// Sum over the program's MLX payloads of their constants' declared sizes (works on stripped files too).
fn declared_weight_bytes(model: &LlmModel) -> Result<u64> {
    let pte = model.program().pte();
    let mut total = 0u64;
    for plan in &pte.program().plans {
        for d in plan
            .delegates
            .iter()
            .filter(|d| d.id == etmlx_mlx::BACKEND_ID)
        {
            let graph = etmlx_mlx::payload::parse(pte.delegate_blob(d)?)?;
            for t in 0..graph.num_constants {
                let Some(meta) = graph.meta(etmlx_mlx::ir::Tid(t)) else {
                    continue;
                };
                let (Some(shape), Ok(dt)) = (
                    meta.static_shape(),
                    etmlx_mlx::dtype::mlx_dtype(meta.scalar_type),
                ) else {
                    continue;
                };
                let numel: u64 = shape
                    .iter()
                    .map(|&d| u64::try_from(d).unwrap_or(0))
                    .product();
                total = total.saturating_add(numel.saturating_mul(dt.size() as u64));
            }
        }
    }
    Ok(total)
}

const MIB: f64 = 1024.0 * 1024.0;

/// The human-readable table (stdout).
pub fn print_table(r: &BenchReport) {
    if r.synthetic_weights {
        println!("** {SYNTHETIC_LABEL}: constants missing from the file were generated; throughput only **");
    }
    println!("model: {}", r.model);
    println!(
        "device: {}  mlx {}  etmlx {}  load {:.1} ms  context {}  prefill chunk {}  weights {:.1} MiB  sampling: {}",
        r.device,
        r.versions.mlx,
        r.versions.etmlx,
        r.load_ms,
        r.max_ctx_len,
        r.prefill_chunk_size,
        r.weight_bytes as f64 / MIB,
        r.sampling
    );
    println!("loop (prefill and decode): {}", r.decode_path);
    if !r.constant_folding {
        println!("constant folding off (--no-constant-folding)");
    }
    for note in &r.skipped {
        println!("note: {note}");
    }
    for (key, value) in &r.mlx_options {
        println!("MLXBackend option {key}={value}");
    }
    println!(
        "repetitions {} (median [min, max]), warm-up {}, seed {}",
        r.repetitions, r.warmup, r.seed
    );
    println!();
    println!(
        "| {:<8} | {:>6} | {:>5} | {:>10} | {:>21} | {:>10} | {:>12} | {:>9} |",
        "test", "tokens", "calls", "tok/s", "tok/s [min, max]", "ms", "weights GB/s", "peak MiB"
    );
    println!(
        "|{:-<10}|{:->8}|{:->7}|{:->12}|{:->23}|{:->12}|{:->14}|{:->11}|",
        "", "", "", "", "", "", "", ""
    );
    for (t, decode) in r
        .prefill
        .iter()
        .map(|t| (t, false))
        .chain(r.decode.iter().map(|t| (t, true)))
    {
        let bandwidth = if decode {
            format!("{:.1}", r.weight_bytes as f64 * t.tok_s_median / 1e9)
        } else {
            "-".into()
        };
        println!(
            "| {:<8} | {:>6} | {:>5} | {:>10.2} | {:>21} | {:>10.1} | {:>12} | {:>9.1} |",
            t.test,
            t.tokens,
            t.calls,
            t.tok_s_median,
            format!("[{:.2}, {:.2}]", t.tok_s_min, t.tok_s_max),
            t.ms_median,
            bandwidth,
            t.peak_memory_bytes as f64 / MIB
        );
    }
    for t in r.prefill.iter().chain(&r.decode) {
        if let Some(p) = &t.profile {
            println!(
                "{} per call: {:.3} ms = graph build {:.3} + submit {:.3} + wait/copy {:.3} + argmax {:.3} + other {:.3} (+ profile's node count {:.3})",
                t.test, p.step_ms, p.graph_build_ms, p.submit_ms, p.wait_ms, p.argmax_ms, p.other_ms, p.count_ms
            );
            let top: Vec<String> = p
                .top_primitives
                .iter()
                .map(|c| format!("{} {:.0}", c.name, c.per_step))
                .collect();
            println!(
                "{} per call: {:.0} MLX primitives submitted ({:.2} µs of submit each); most frequent: {}",
                t.test,
                p.primitives_per_step,
                p.submit_us_per_primitive,
                top.join(", ")
            );
        }
    }
    if r.prefill.iter().any(|t| t.calls > 1) {
        println!(
            "prompts longer than the prefill chunk ({}) run in several forward calls",
            r.prefill_chunk_size
        );
    }
}

/// CSV: a header and one row per test.
pub fn print_csv(r: &BenchReport) {
    println!(
        "model,device,weights,test,tokens,calls,tok_s_median,tok_s_min,tok_s_max,ms_median,peak_memory_bytes,\
         load_ms,weight_bytes,graph_build_ms,submit_ms,wait_ms,argmax_ms,other_ms,count_ms"
    );
    for t in r.prefill.iter().chain(&r.decode) {
        let p = t.profile.as_ref().map_or_else(
            || ",,,,,".to_string(),
            |p| {
                format!(
                    "{:.4},{:.4},{:.4},{:.4},{:.4},{:.4}",
                    p.graph_build_ms, p.submit_ms, p.wait_ms, p.argmax_ms, p.other_ms, p.count_ms
                )
            },
        );
        println!(
            "{},{},{},{},{},{},{:.3},{:.3},{:.3},{:.3},{},{:.1},{},{p}",
            csv_field(&r.model),
            r.device,
            r.weights,
            t.test,
            t.tokens,
            t.calls,
            t.tok_s_median,
            t.tok_s_min,
            t.tok_s_max,
            t.ms_median,
            t.peak_memory_bytes,
            r.load_ms,
            r.weight_bytes
        );
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> BenchArgs {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
            .expect("valid arguments")
            .bench
    }

    #[test]
    fn summary_of_odd_and_even_samples() {
        // Hand-computed: sorted [1, 2, 5] -> median 2; sorted [1, 2, 4, 10] -> median (2 + 4) / 2 = 3.
        assert_eq!(
            Summary::of(&[5.0, 1.0, 2.0]),
            Some(Summary {
                median: 2.0,
                min: 1.0,
                max: 5.0
            })
        );
        assert_eq!(
            Summary::of(&[10.0, 2.0, 4.0, 1.0]),
            Some(Summary {
                median: 3.0,
                min: 1.0,
                max: 10.0
            })
        );
        assert_eq!(
            Summary::of(&[7.5]),
            Some(Summary {
                median: 7.5,
                min: 7.5,
                max: 7.5
            })
        );
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn defaults_follow_llama_bench() {
        let a = parse(&["m.pte"]);
        assert_eq!(a.model, PathBuf::from("m.pte"));
        let p = plan(&a, 4096, false).expect("defaults fit");
        assert_eq!((p.prompts, p.gens), (vec![512], vec![128]));
        assert!(p.skipped.is_empty());
        assert!(!a.host_decode);
        assert_eq!(a.repetitions, 5);
        assert_eq!(a.warmup, 1);
        assert!(!a.json && !a.csv && !a.synthetic_weights && !a.profile);
    }

    #[test]
    fn comma_lists_and_flags_parse() {
        let a = parse(&[
            "m.pte",
            "-p",
            "128,512,2048",
            "-n",
            "128,512",
            "-r",
            "3",
            "--warmup",
            "2",
            "--json",
            "--synthetic-weights",
            "--profile",
        ]);
        assert_eq!(a.prompt, vec![128, 512, 2048]);
        assert_eq!(a.gen, vec![128, 512]);
        assert_eq!((a.repetitions, a.warmup), (3, 2));
        assert!(a.json && a.synthetic_weights && a.profile);
        assert!(
            Cli::try_parse_from(["bench", "m.pte", "--json", "--csv"]).is_err(),
            "--json and --csv conflict"
        );
        assert!(Cli::try_parse_from(["bench", "m.pte", "-p", "12x"]).is_err());
    }

    #[test]
    fn validation_names_the_context_limit() {
        let ok = parse(&["m.pte", "-p", "64", "-n", "63"]);
        assert!(plan(&ok, 64, false).is_ok());
        let long_prompt = parse(&["m.pte", "-p", "65", "-n", "1"]);
        let e = plan(&long_prompt, 64, false).unwrap_err().to_string();
        assert!(e.contains("65") && e.contains("64"), "{e}");
        // 64 generated tokens after a 1-token prompt need 65 positions.
        let long_gen = parse(&["m.pte", "-p", "1", "-n", "64"]);
        let e = plan(&long_gen, 64, false).unwrap_err().to_string();
        assert!(e.contains("65 positions"), "{e}");
        assert!(plan(&parse(&["m.pte", "-p", "0", "-n", "0"]), 64, false).is_err());
        assert!(plan(&parse(&["m.pte", "-r", "0"]), 4096, false).is_err());
        assert!(plan(&ok, 64, true).is_err());
    }

    #[test]
    fn decode_depth_counts_the_longer_prompt_against_the_context() {
        // 128 steps after a 101-token prompt use positions 0..=228 of 256.
        let p = plan(
            &parse(&["m.pte", "-p", "0", "-n", "128", "-d", "100"]),
            256,
            false,
        );
        assert_eq!(p.expect("fits").gens, vec![128]);
        // After a 129-token prompt they need 257 positions.
        let e = plan(&parse(&["m.pte", "-n", "128", "-d", "128"]), 256, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("129-token prompt") && e.contains("257 positions"),
            "{e}"
        );
        // The default tg128 is skipped with a note when the depth leaves no room for it.
        let p = plan(&parse(&["m.pte", "-p", "64", "-d", "200"]), 256, false).expect("pp64 runs");
        assert!(
            p.gens.is_empty() && p.skipped[0].contains("329 positions"),
            "{:?}",
            p.skipped
        );
        assert_eq!(
            (decode_name(128, 0), decode_name(128, 1024)),
            ("tg128".into(), "tg128@d1024".into())
        );
    }

    #[test]
    fn defaults_that_do_not_fit_are_skipped_with_a_note() {
        // A 256-token context: pp512 does not fit, tg128 (129 positions) does.
        let p = plan(&parse(&["m.pte"]), 256, false).expect("tg128 still runs");
        assert_eq!(
            (p.prompts.as_slice(), p.gens.as_slice()),
            (&[][..], &[128][..])
        );
        assert_eq!(p.skipped.len(), 1);
        assert!(
            p.skipped[0].contains("pp512") && p.skipped[0].contains("256"),
            "{:?}",
            p.skipped
        );
        // Lengths given explicitly are never skipped silently: they fail.
        assert!(plan(&parse(&["m.pte", "-p", "512"]), 256, false).is_err());
        // -p given, -n default: the default still applies.
        let p = plan(&parse(&["m.pte", "-p", "64"]), 256, false).expect("fits");
        assert_eq!((p.prompts, p.gens), (vec![64], vec![128]));
        // Neither default fits: an error naming both.
        let e = plan(&parse(&["m.pte"]), 100, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("pp512") && e.contains("tg128"), "{e}");
    }

    #[test]
    fn options_carry_synthetic_weights_and_profile() {
        let a = parse(&["m.pte", "--synthetic-weights", "--profile"]);
        let o = backend_options(BackendOptions::default(), &a);
        let mlx_options = o
            .for_backend(etmlx_mlx::BACKEND_ID)
            .expect("MLX options set");
        assert_eq!(
            mlx_options.get("synthetic_weights"),
            Some(&OptionValue::Bool(true))
        );
        assert_eq!(mlx_options.get("profile"), Some(&OptionValue::Bool(true)));
        let plain = backend_options(BackendOptions::default(), &parse(&["m.pte"]));
        assert!(plain.for_backend(etmlx_mlx::BACKEND_ID).is_none());
    }

    #[test]
    fn token_ids_are_reproducible_and_in_range() {
        let a = TokenRng(7).tokens(1000, 50);
        assert_eq!(a, TokenRng(7).tokens(1000, 50));
        assert!(a.iter().all(|&t| t < 50));
        assert!(
            a.iter().collect::<std::collections::HashSet<_>>().len() > 40,
            "ids spread over the vocabulary"
        );
    }
}
