//! `etmlx`: run ExecuTorch programs exported with the MLX delegate.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use etmlx_cli::{inspect, run};
use etmlx_runtime::{BackendOptions, OptionValue};

mod bench;
mod chat;
mod generate;
mod serve;
mod transcribe;

#[derive(Parser)]
#[command(
    name = "etmlx",
    version,
    about = "Run ExecuTorch .pte programs with the MLX delegate (Metal, CUDA or CPU)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options shared by commands that execute a program.
#[derive(clap::Args, Clone)]
struct EngineArgs {
    /// External data file (.ptd) whose named data is merged with the program's.
    #[arg(long)]
    ptd: Option<PathBuf>,
    /// MLX device: gpu (Metal or CUDA) or cpu. Default: the GPU if this libmlx has one.
    #[arg(long, value_parser = ["gpu", "cpu"])]
    device: Option<String>,
    /// Allow custom Metal kernels embedded in the program (GPU source code from the file).
    #[arg(long)]
    allow_custom_kernels: bool,
    /// Set an MLXBackend option (repeatable), e.g. `fuse_decode_attention=false` to run the unfused attention
    /// ops, or `stage_mflop=0` to submit each prefill call at once (docs/architecture.md lists the options).
    #[arg(long = "mlx-option", value_name = "KEY=true|false|N", value_parser = etmlx_cli::parse_mlx_option)]
    mlx_options: Vec<(String, etmlx_cli::MlxOptionValue)>,
}

impl EngineArgs {
    fn backend_options(&self) -> BackendOptions {
        let mut o = BackendOptions::default();
        let id = etmlx_mlx::BACKEND_ID;
        if let Some(d) = &self.device {
            o.set(
                id,
                etmlx_mlx::backend::option_keys::DEVICE,
                OptionValue::Str(d.clone()),
            );
        }
        if self.allow_custom_kernels {
            o.set(
                id,
                etmlx_mlx::backend::option_keys::ALLOW_CUSTOM_KERNELS,
                OptionValue::Bool(true),
            );
        }
        for (key, value) in &self.mlx_options {
            o.set(id, key, value.to_option_value());
        }
        o
    }
}

#[derive(Subcommand)]
enum Command {
    /// Show a program's methods, I/O, delegates (MLX op histogram, slots), metadata and kernels.
    Inspect {
        file: PathBuf,
        #[arg(long)]
        ptd: Option<PathBuf>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run one method on input tensors (.npy or op-test .bin files) and write its outputs.
    Run {
        file: PathBuf,
        /// Method to run.
        #[arg(long, default_value = "forward")]
        method: String,
        /// Input files, in order (.npy: one tensor each; .bin: a list).
        #[arg(long = "input", num_args = 1..)]
        inputs: Vec<PathBuf>,
        /// Output file: .bin (all outputs) or .npy (a single output).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Print outputs and timing as one JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Generate text from an LLM export: the answer streams to stdout, stats go to stderr.
    Generate {
        #[command(flatten)]
        args: generate::GenerateArgs,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Chat with an LLM export interactively (/reset, /system, /stats, /quit).
    Chat {
        #[command(flatten)]
        args: chat::ChatArgs,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Transcribe speech with a Whisper export (encoder.pte, cross_kv.pte, decoder.pte): text streams to
    /// stdout, stats go to stderr.
    Transcribe {
        #[command(flatten)]
        args: transcribe::TranscribeArgs,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Benchmark prefill and decode throughput (llama-bench semantics; no tokenizer needed).
    Bench {
        #[command(flatten)]
        args: bench::BenchArgs,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// OpenAI-compatible HTTP server (chat/completions, completions, models, health, metrics) with N slots
    /// sharing one copy of the weights.
    Serve {
        #[command(flatten)]
        args: serve::ServeArgs,
        #[command(flatten)]
        engine: EngineArgs,
    },
}

fn main() -> ExitCode {
    etmlx_cli::init_process();
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("etmlx: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Inspect { file, ptd, json } => {
            let report = inspect::inspect(&file, ptd.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                inspect::print_human(&report);
            }
            Ok(if report.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Run {
            file,
            method,
            inputs,
            output,
            json,
            engine,
        } => {
            let load_start = Instant::now();
            let program =
                etmlx_cli::open_program(&file, engine.ptd.as_deref(), engine.backend_options())?;
            let mut m = program.load_method(&method)?;
            let load_ms = load_start.elapsed().as_secs_f64() * 1e3;
            run::bind_inputs(&mut m, run::read_inputs(&inputs)?)?;
            let exec_start = Instant::now();
            m.execute()
                .with_context(|| format!("executing '{method}'"))?;
            let exec_ms = exec_start.elapsed().as_secs_f64() * 1e3;
            let outputs = m.outputs()?;
            if let Some(path) = &output {
                run::write_outputs(path, &outputs)?;
            }
            if json {
                let outs: Vec<serde_json::Value> = outputs
                    .iter()
                    .map(|v| match v {
                        etmlx_runtime::HostValue::Tensor(t) => serde_json::json!({
                            "dtype": t.dtype.name(), "sizes": t.sizes,
                            "values": etmlx_cli::tensor_elements_json(t, 16),
                        }),
                        other => etmlx_cli::host_value_json(other),
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"method": method, "outputs": outs, "load_ms": load_ms, "execute_ms": exec_ms})
                );
            } else {
                for (i, v) in outputs.iter().enumerate() {
                    match v {
                        etmlx_runtime::HostValue::Tensor(t) => println!(
                            "output {i}: {} {:?} first values {}",
                            t.dtype,
                            t.sizes,
                            serde_json::Value::Array(etmlx_cli::tensor_elements_json(t, 8))
                        ),
                        other => println!("output {i}: {other:?}"),
                    }
                }
                eprintln!("load {load_ms:.1} ms, execute {exec_ms:.1} ms");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Generate { args, engine } => {
            generate::run(&args, engine.ptd.as_deref(), engine.backend_options())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Chat { args, engine } => {
            chat::run(&args, engine.ptd.as_deref(), engine.backend_options())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { args, engine } => {
            serve::run(&args, engine.ptd.clone(), engine.backend_options())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Transcribe { args, engine } => {
            transcribe::run(&args, engine.backend_options())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { mut args, engine } => {
            args.mlx_options = engine.mlx_options.clone();
            let device = engine.device.clone().unwrap_or_else(|| {
                let gpu = mlx::is_available(mlx::DeviceType::Gpu);
                if gpu { "gpu" } else { "cpu" }.to_string()
            });
            let report = bench::run(
                &args,
                engine.ptd.as_deref(),
                engine.backend_options(),
                &device,
            )?;
            if args.json {
                println!("{}", serde_json::to_string(&report)?);
            } else if args.csv {
                bench::print_csv(&report);
            } else {
                bench::print_table(&report);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
