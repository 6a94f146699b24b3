//! Drop-in replacement for ExecuTorch's MLX `op_test_runner`:
//! `op_test_runner --pte P --input I --output O [--kv-cache capacity,n_layers,n_kv_heads,head_dim[,dtype]] [--verbose]`.
//! Loads `forward`, runs it once on the `.bin` inputs, writes the outputs as `.bin`, prints `OK`.
//! Any error: a message on stderr and exit status 1 (also for unknown flags); `-h` exits 0.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;
use etmlx_runtime::{io::bin, HostValue};

#[derive(Parser, Debug)]
#[command(
    name = "op_test_runner",
    about = "Run one MLX-delegated .pte op test (ExecuTorch op_test_runner contract)"
)]
struct Args {
    /// The .pte program.
    #[arg(long)]
    pte: PathBuf,
    /// Input tensors in the op-test .bin format.
    #[arg(long)]
    input: PathBuf,
    /// Where to write the output tensors (.bin format).
    #[arg(long)]
    output: PathBuf,
    /// Off-graph KV cache: capacity,n_layers,n_kv_heads,head_dim[,kv_dtype].
    #[arg(long = "kv-cache")]
    kv_cache: Option<String>,
    /// Print progress to stderr.
    #[arg(long)]
    verbose: bool,
    /// etmlx extension: allow custom Metal kernels embedded in the program (Metal only).
    #[arg(long)]
    allow_custom_kernels: bool,
    /// etmlx extension: MLX device, gpu or cpu (default: the GPU when this libmlx has one).
    #[arg(long, value_parser = ["gpu", "cpu"])]
    device: Option<String>,
}

fn main() -> ExitCode {
    etmlx_cli::init_process();
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            use clap::error::ErrorKind;
            let is_help = matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
            let _ = e.print();
            return if is_help {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            };
        }
    };
    match run(&args) {
        Ok(()) => {
            println!("OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("op_test_runner: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &Args) -> Result<()> {
    let mut options = etmlx_runtime::BackendOptions::default();
    if args.allow_custom_kernels {
        let key = etmlx_mlx::backend::option_keys::ALLOW_CUSTOM_KERNELS;
        options.set(
            etmlx_mlx::BACKEND_ID,
            key,
            etmlx_runtime::OptionValue::Bool(true),
        );
    }
    if let Some(device) = &args.device {
        let key = etmlx_mlx::backend::option_keys::DEVICE;
        options.set(
            etmlx_mlx::BACKEND_ID,
            key,
            etmlx_runtime::OptionValue::Str(device.clone()),
        );
    }
    if let Some(spec) = &args.kv_cache {
        let spec: etmlx_mlx::KvCacheSpec = spec.parse().context("--kv-cache")?;
        etmlx_mlx::install_sequence_cache(&mut options, &spec)?;
    }
    let program = etmlx_cli::open_program(&args.pte, None, options)?;
    let mut method = program.load_method("forward")?;
    let inputs =
        bin::read_file(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    if inputs.len() != method.num_inputs() {
        bail!(
            "{} has {} tensors but `forward` takes {} inputs",
            args.input.display(),
            inputs.len(),
            method.num_inputs()
        );
    }
    for (i, t) in inputs.into_iter().enumerate() {
        method.set_input(i, &HostValue::Tensor(t))?;
    }
    if args.verbose {
        eprintln!("executing forward");
    }
    method.execute()?;
    let mut outputs = Vec::new();
    for (i, v) in method.outputs()?.into_iter().enumerate() {
        match v {
            HostValue::Tensor(t) => outputs.push(t),
            other => bail!("output {i} is not a tensor ({other:?})"),
        }
    }
    bin::write_file(&args.output, &outputs)
        .with_context(|| format!("writing {}", args.output.display()))?;
    Ok(())
}
