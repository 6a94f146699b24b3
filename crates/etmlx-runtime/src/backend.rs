//! Delegates: the `Backend` trait, its registry, and what a backend sees at init and execute.

use std::collections::BTreeMap;
use std::sync::Arc;

use etmlx_pte::ScalarType;

use crate::error::{Result, RuntimeError};
use crate::evalue::EValue;
use crate::method::ValueStore;

/// Error a backend reports; the runtime adds which delegate and instruction failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

impl BackendError {
    pub fn new(message: impl Into<String>) -> Self {
        BackendError(message.into())
    }
}

/// Named blobs a delegate can load (the `.pte`'s named data merged with any `.ptd`).
pub trait NamedDataMap: Send + Sync {
    fn get(&self, key: &str) -> Option<&[u8]>;
    fn keys(&self) -> Vec<&str>;
}

/// One load-time option for a backend (ExecuTorch "runtime spec").
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    Int(i64),
    Bool(bool),
    Str(String),
}

/// Load-time options, per backend id.
#[derive(Debug, Clone, Default)]
pub struct BackendOptions {
    per_backend: BTreeMap<String, BTreeMap<String, OptionValue>>,
}

impl BackendOptions {
    pub fn set(&mut self, backend: &str, key: &str, value: OptionValue) -> &mut Self {
        self.per_backend
            .entry(backend.to_string())
            .or_default()
            .insert(key.to_string(), value);
        self
    }
    pub fn for_backend(&self, backend: &str) -> Option<&BTreeMap<String, OptionValue>> {
        self.per_backend.get(backend)
    }
}

/// Everything a backend receives when a method that calls it is loaded.
pub struct BackendInitContext<'a> {
    /// The delegate's processed blob.
    pub blob: &'a [u8],
    pub compile_specs: &'a [(String, Vec<u8>)],
    pub named_data: &'a dyn NamedDataMap,
    /// This backend's options (empty when none were given).
    pub options: &'a BTreeMap<String, OptionValue>,
    /// Method name and delegate index, for messages.
    pub method: &'a str,
    pub delegate_index: usize,
}

impl BackendInitContext<'_> {
    pub fn option(&self, key: &str) -> Option<&OptionValue> {
        self.options.get(key)
    }
}

/// A backend that can run delegated subgraphs.
pub trait Backend: Send + Sync {
    /// The delegate id written by the exporter (e.g. `"MLXBackend"`).
    fn id(&self) -> &str;
    fn is_available(&self) -> bool;
    fn init(&self, ctx: &BackendInitContext<'_>) -> Result<Box<dyn DelegateHandle>, BackendError>;
}

/// One initialised delegate of a loaded method. Dropping it releases its state.
pub trait DelegateHandle: Send {
    fn execute(&mut self, args: &mut DelegateArgs<'_>) -> Result<(), BackendError>;

    /// The concrete handle, for runners that drive a known backend through its own typed API (the LLM
    /// runner's device-resident decode). `None` (the default) keeps a handle opaque.
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        None
    }
}

/// Backends known to a program, by id.
#[derive(Clone, Default)]
pub struct BackendRegistry {
    backends: BTreeMap<String, Arc<dyn Backend>>,
}

impl BackendRegistry {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn register(&mut self, backend: Arc<dyn Backend>) -> &mut Self {
        self.backends.insert(backend.id().to_string(), backend);
        self
    }
    pub fn get(&self, id: &str) -> Option<&Arc<dyn Backend>> {
        self.backends.get(id)
    }
    pub fn ids(&self) -> Vec<&str> {
        self.backends.keys().map(String::as_str).collect()
    }
}

/// A tensor argument as a delegate reads it.
#[derive(Debug, Clone, Copy)]
pub struct TensorView<'a> {
    pub dtype: ScalarType,
    pub sizes: &'a [i64],
    pub dim_order: &'a [u8],
    /// Exactly `numel * element_size` bytes, laid out by `dim_order`.
    pub bytes: &'a [u8],
}

/// The arguments of one `DelegateCall`: the delegate's inputs then its outputs, as value indices.
pub struct DelegateArgs<'a> {
    pub(crate) store: &'a mut ValueStore,
    pub(crate) args: &'a [usize],
}

impl DelegateArgs<'_> {
    pub fn len(&self) -> usize {
        self.args.len()
    }
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }
    fn index(&self, i: usize) -> std::result::Result<usize, BackendError> {
        self.args.get(i).copied().ok_or_else(|| {
            BackendError::new(format!(
                "argument {i} requested but the call has {}",
                self.args.len()
            ))
        })
    }
    /// The boxed value of argument `i`.
    pub fn value(&self, i: usize) -> std::result::Result<&EValue, BackendError> {
        let idx = self.index(i)?;
        self.store
            .values
            .get(idx)
            .ok_or_else(|| BackendError::new(format!("value {idx} out of range")))
    }
    /// Argument `i` as a tensor with its bytes.
    pub fn tensor(&self, i: usize) -> std::result::Result<TensorView<'_>, BackendError> {
        let idx = self.index(i)?;
        self.store
            .tensor_view(idx)
            .map_err(|e| BackendError::new(format!("argument {i}: {e}")))
    }
    /// Replaces argument `i` (an Int output) with `value`.
    pub fn set_int(&mut self, i: usize, value: i64) -> std::result::Result<(), BackendError> {
        let idx = self.index(i)?;
        self.store.values[idx] = EValue::Int(value);
        Ok(())
    }
    /// Resizes output tensor `i` to `sizes` (within its bound) and returns its bytes to fill in
    /// place (exactly `numel * element_size` long), so a backend can write results without an
    /// intermediate buffer.
    pub fn output_bytes_mut(
        &mut self,
        i: usize,
        sizes: &[i64],
    ) -> std::result::Result<&mut [u8], BackendError> {
        let idx = self.index(i)?;
        let resized = self.store.tensor_mut(idx).and_then(|t| t.resize(sizes));
        resized.map_err(|e| BackendError::new(format!("output argument {i}: {e}")))?;
        self.store
            .bytes_mut(idx)
            .map_err(|e| BackendError::new(format!("output argument {i}: {e}")))
    }

    /// Resizes output tensor `i` to `sizes` (within its bound) and copies `bytes` into it.
    pub fn write_tensor(
        &mut self,
        i: usize,
        sizes: &[i64],
        bytes: &[u8],
    ) -> std::result::Result<(), BackendError> {
        let idx = self.index(i)?;
        self.store
            .write_tensor(idx, sizes, bytes)
            .map_err(|e| BackendError::new(format!("output argument {i}: {e}")))
    }
}

pub(crate) fn backend_error(backend: &str, e: BackendError) -> RuntimeError {
    RuntimeError::Backend {
        backend: backend.to_string(),
        message: e.0,
    }
}
