//! `etmlx serve`: flags → [`etmlx_serve::ServeConfig`]; the server itself lives in `etmlx-serve`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use etmlx_runtime::BackendOptions;

#[derive(clap::Args, Clone, Debug)]
pub struct ServeArgs {
    /// The LLM export (.pte).
    pub model: PathBuf,
    /// Tokenizer: a folder with tokenizer.json (+ tokenizer_config.json, chat template, ...) or a tokenizer.json.
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// Address to listen on (127.0.0.1: this machine only).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port (0: any free port; the URL printed once ready says which).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Sessions generating at once; they share one copy of the weights, each has its own KV cache.
    #[arg(long, default_value_t = 1)]
    pub slots: usize,
    /// Requests that may wait for a free slot; more get 429 with Retry-After.
    #[arg(long, default_value_t = 64)]
    pub max_queue: usize,
    /// Require `Authorization: Bearer KEY` on /v1/* (also read from ETMLX_API_KEY).
    #[arg(long, env = "ETMLX_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// The model name clients pass (and /v1/models lists); default: the file name without .pte.
    #[arg(long)]
    pub model_name: Option<String>,
    /// Largest request body accepted (bytes); larger ones get 413.
    #[arg(long, default_value_t = 4 << 20)]
    pub max_body_bytes: usize,
    /// Total seconds per request, waiting for a slot included; generation stops when it runs out (504).
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Longest pause (seconds) while receiving a request body.
    #[arg(long, default_value_t = 30)]
    pub idle_timeout: u64,
    /// Off-graph KV cache dtype (bf16, fp16, fp32); default: the model's logits dtype.
    #[arg(long, value_parser = ["bf16", "fp16", "fp32"])]
    pub kv_dtype: Option<String>,
    /// Fill constants missing from a weight-stripped export with pseudo-random values: for load tests of large
    /// model shapes only (the answers are meaningless, and the server says so when it starts).
    #[arg(long)]
    pub synthetic_weights: bool,
}

pub fn run(args: &ServeArgs, ptd: Option<PathBuf>, mut backend: BackendOptions) -> Result<()> {
    if args.synthetic_weights {
        backend.set(
            etmlx_mlx::BACKEND_ID,
            etmlx_mlx::backend::option_keys::SYNTHETIC_WEIGHTS,
            etmlx_runtime::OptionValue::Bool(true),
        );
        eprintln!("etmlx serve: SYNTHETIC WEIGHTS: missing constants are random; answers are meaningless (load tests only)");
    }
    let config = etmlx_serve::ServeConfig {
        model: args.model.clone(),
        tokenizer: args.tokenizer.clone(),
        ptd,
        backend,
        kv_dtype: args.kv_dtype.as_deref().map(|d| match d {
            "fp32" => mlx::Dtype::Float32,
            "fp16" => mlx::Dtype::Float16,
            _ => mlx::Dtype::Bfloat16,
        }),
        host: args.host.clone(),
        port: args.port,
        slots: args.slots,
        max_queue: args.max_queue,
        api_key: args.api_key.clone(),
        model_name: args.model_name.clone(),
        max_body_bytes: args.max_body_bytes,
        request_timeout: Duration::from_secs(args.timeout),
        idle_timeout: Duration::from_secs(args.idle_timeout),
    };
    let slots = config.slots;
    etmlx_serve::serve(config, |addr| {
        println!("etmlx serve: listening on http://{addr}/v1 ({slots} slots)");
        let _ = std::io::stdout().flush();
    })
    .with_context(|| format!("serving {}", args.model.display()))
}
