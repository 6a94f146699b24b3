//! `etmlx generate`: one prompt, the answer streamed to stdout, a stats line on stderr.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use etmlx_llm::{GenerateOptions, Generator, ModelOptions, SamplerConfig};
use etmlx_runtime::BackendOptions;

/// Sampling and length flags shared by `generate` and `chat`.
#[derive(clap::Args, Clone, Debug)]
pub struct SamplingArgs {
    /// Most new tokens per answer.
    #[arg(long, default_value_t = etmlx_llm::generate::DEFAULT_MAX_NEW_TOKENS)]
    pub max_new_tokens: usize,
    /// 0 = greedy (argmax).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Keep the k most likely tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Nucleus sampling threshold (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Drop tokens less likely than min_p × the most likely one (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f32,
    /// HF repetition penalty (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop when the text contains this string (repeatable).
    #[arg(long = "stop")]
    pub stop: Vec<String>,
    /// Do not stop at EOS / end-of-turn tokens.
    #[arg(long)]
    pub ignore_eos: bool,
}

impl SamplingArgs {
    pub fn options(&self) -> Result<GenerateOptions> {
        let sampler = SamplerConfig {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repetition_penalty: self.repetition_penalty,
            seed: self.seed,
            ..SamplerConfig::default()
        };
        sampler.validate()?;
        Ok(GenerateOptions {
            max_new_tokens: self.max_new_tokens,
            sampler,
            stop_strings: self.stop.clone(),
            ignore_eos: self.ignore_eos,
        })
    }
}

/// Model and tokenizer flags shared by `generate` and `chat`.
#[derive(clap::Args, Clone, Debug)]
pub struct ModelArgs {
    /// The LLM export (.pte).
    pub model: PathBuf,
    /// Tokenizer: a folder with tokenizer.json (+ tokenizer_config.json, chat template, ...) or a tokenizer.json.
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// Off-graph KV cache dtype (bf16, fp16, fp32); default: the model's logits dtype.
    #[arg(long, value_parser = ["bf16", "fp16", "fp32"])]
    pub kv_dtype: Option<String>,
    /// Decode with the host loop (logits to the host, sampled there, one step after another) even where the
    /// device-resident pipelined loop applies (for comparisons).
    #[arg(long)]
    pub host_decode: bool,
}

impl ModelArgs {
    /// Loads the generator; the tokenizer is checked first so a bad path fails before the model loads.
    pub fn load(&self, ptd: Option<&Path>, backend: BackendOptions) -> Result<Generator> {
        let tokenizer = etmlx_llm::Tokenizer::from_path(&self.tokenizer)
            .with_context(|| format!("tokenizer {}", self.tokenizer.display()))?;
        let options = ModelOptions {
            ptd: ptd.map(Path::to_path_buf),
            backend,
            kv_dtype: self.kv_dtype.as_deref().map(|d| match d {
                "fp32" => mlx::Dtype::Float32,
                "fp16" => mlx::Dtype::Float16,
                _ => mlx::Dtype::Bfloat16,
            }),
            all_position_logits: false,
        };
        let model = etmlx_llm::LlmModel::open(&self.model, options)
            .with_context(|| format!("model {}", self.model.display()))?;
        let mut generator = Generator::new(model, Some(tokenizer)).with_context(|| {
            format!(
                "model {} with tokenizer {}",
                self.model.display(),
                self.tokenizer.display()
            )
        })?;
        generator.set_host_decode(self.host_decode);
        Ok(generator)
    }
}

#[derive(clap::Args, Clone, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The prompt (a user message, chat-templated unless --raw).
    #[arg(long)]
    pub prompt: String,
    /// System message placed before the prompt.
    #[arg(long, conflicts_with = "raw")]
    pub system: Option<String>,
    /// Send the prompt as it is (no chat template).
    #[arg(long)]
    pub raw: bool,
    /// Print one JSON object {text, token_ids, stop_reason, stats} instead of streaming text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

pub fn run(args: &GenerateArgs, ptd: Option<&Path>, backend: BackendOptions) -> Result<()> {
    let options = args.sampling.options()?;
    let mut generator = args.model.load(ptd, backend)?;
    let stream = !args.json;
    let mut stdout = std::io::stdout().lock();
    let mut write_error = None;
    let out = generator.generate_text(
        &args.prompt,
        args.system.as_deref(),
        args.raw,
        &options,
        |ev| {
            if stream && !ev.text.is_empty() {
                if let Err(e) = stdout
                    .write_all(ev.text.as_bytes())
                    .and_then(|()| stdout.flush())
                {
                    // stdout closed (e.g. piped into `head`): stop generating.
                    write_error = Some(e);
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        },
    )?;
    if let Some(e) = write_error {
        return Err(e).context("writing to stdout");
    }
    if args.json {
        writeln!(stdout, "{}", serde_json::to_string(&out)?)?;
    } else {
        writeln!(stdout)?;
    }
    stdout.flush()?;
    eprintln!(
        "[{}] {} | decode loop: {}",
        out.stop_reason,
        out.stats.summary(),
        out.stats.decode_path.name()
    );
    Ok(())
}
