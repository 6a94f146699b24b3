//! Shared plumbing of the etmlx binaries (no engine logic lives here).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use etmlx_runtime::{BackendOptions, Program};

/// Process set-up every etmlx binary does first, while it is still single-threaded.
///
/// float32 matmuls, convolutions and attention: MLX runs them at TF32 precision on CUDA (and on
/// Apple's neural accelerators) unless `MLX_ENABLE_TF32=0` is set before its first op; PyTorch and
/// ExecuTorch compute them in full float32, so etmlx defaults to full precision. Set
/// `MLX_ENABLE_TF32=1` to trade precision for speed. (bf16/fp16/quantized work is unaffected.)
pub fn init_process() {
    if std::env::var_os("MLX_ENABLE_TF32").is_none() {
        std::env::set_var("MLX_ENABLE_TF32", "0");
    }
}

/// Opens a `.pte` (and optional `.ptd`) with the MLX backend registered and `options` applied.
pub fn open_program(pte: &Path, ptd: Option<&Path>, options: BackendOptions) -> Result<Program> {
    let mut program =
        Program::open(pte, ptd).with_context(|| format!("cannot load {}", pte.display()))?;
    program.register_backend(Arc::new(etmlx_mlx::MlxBackend));
    program.set_backend_options(options);
    Ok(program)
}

/// The value of an `--mlx-option`: a switch (`true`/`false`) or a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum MlxOptionValue {
    Bool(bool),
    Int(i64),
}

impl MlxOptionValue {
    /// As a backend option value.
    pub fn to_option_value(self) -> etmlx_runtime::OptionValue {
        match self {
            MlxOptionValue::Bool(b) => etmlx_runtime::OptionValue::Bool(b),
            MlxOptionValue::Int(n) => etmlx_runtime::OptionValue::Int(n),
        }
    }
}

impl std::fmt::Display for MlxOptionValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MlxOptionValue::Bool(b) => write!(f, "{b}"),
            MlxOptionValue::Int(n) => write!(f, "{n}"),
        }
    }
}

/// `KEY=true|false` or `KEY=N` (N ≥ 0) of `--mlx-option` (unknown or mistyped keys are refused by the backend at
/// load, naming the key).
pub fn parse_mlx_option(text: &str) -> std::result::Result<(String, MlxOptionValue), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=true|false or KEY=N, got '{text}'"))?;
    let value = if let Ok(b) = value.parse::<bool>() {
        MlxOptionValue::Bool(b)
    } else if let Ok(n) = value.parse::<u32>() {
        MlxOptionValue::Int(i64::from(n))
    } else {
        return Err(format!(
            "'{value}' is not true, false or a non-negative integer (in '{text}')"
        ));
    };
    Ok((key.to_string(), value))
}

pub mod inspect;
pub mod run;

use etmlx_runtime::{HostTensor, HostValue, ScalarType};

/// Elements of a host tensor as f64/i64/bool JSON values (for printing small tensors).
pub fn tensor_elements_json(t: &HostTensor, limit: usize) -> Vec<serde_json::Value> {
    (0..t.numel().min(limit))
        .filter_map(|i| etmlx_runtime::elements::read(t.dtype, &t.bytes, i).ok())
        .map(|v| match v {
            etmlx_runtime::elements::Scalar::Int(i) => serde_json::json!(i),
            etmlx_runtime::elements::Scalar::Float(f) => serde_json::json!(f),
            etmlx_runtime::elements::Scalar::Bool(b) => serde_json::json!(b),
        })
        .collect()
}

/// A method value as JSON: scalars as themselves, tensors of up to 64 elements as flat lists,
/// larger tensors as `{dtype, sizes}`.
pub fn host_value_json(v: &HostValue) -> serde_json::Value {
    match v {
        HostValue::Int(i) => serde_json::json!(i),
        HostValue::Double(d) => serde_json::json!(d),
        HostValue::Bool(b) => serde_json::json!(b),
        HostValue::None => serde_json::Value::Null,
        HostValue::Tensor(t) if t.numel() <= 64 => {
            let items = tensor_elements_json(t, 64);
            if t.sizes.is_empty() {
                items.into_iter().next().unwrap_or(serde_json::Value::Null)
            } else {
                serde_json::Value::Array(items)
            }
        }
        HostValue::Tensor(t) => serde_json::json!({"dtype": t.dtype.name(), "sizes": t.sizes}),
    }
}

/// Converts a host tensor to another dtype element by element (e.g. float32 `.npy` data for a
/// bfloat16 input, which NumPy cannot store).
pub fn convert_tensor(t: &HostTensor, to: ScalarType) -> Result<HostTensor> {
    let mut bytes = vec![0u8; t.numel() * to.element_size()];
    for i in 0..t.numel() {
        let v = etmlx_runtime::elements::read(t.dtype, &t.bytes, i)?;
        etmlx_runtime::elements::write(to, &mut bytes, i, v)?;
    }
    Ok(HostTensor::new(to, t.sizes.clone(), bytes)?)
}
