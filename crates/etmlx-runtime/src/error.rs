//! Errors of the runtime layer.

use etmlx_pte::ScalarType;

/// Everything that can go wrong while loading or executing a method.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Format(#[from] etmlx_pte::PteError),

    #[error("method '{0}' not found in the program (available: {1})")]
    MethodNotFound(String, String),

    #[error("method '{method}' needs operators this runtime does not implement: {missing}")]
    MissingKernels { method: String, missing: String },

    #[error("no backend registered for delegate id '{0}' (registered: {1})")]
    MissingBackend(String, String),

    #[error("backend '{backend}' failed: {message}")]
    Backend { backend: String, message: String },

    #[error("value {index}: {message}")]
    InvalidValue { index: usize, message: String },

    #[error("input {index}: {message}")]
    InvalidInput { index: usize, message: String },

    #[error("instruction {pc} ({what}): {message}")]
    Instruction {
        pc: usize,
        what: String,
        message: String,
    },

    #[error("tensor of {dtype:?} with sizes {sizes:?} does not fit its bound {bound:?}")]
    ResizeOutOfBounds {
        dtype: ScalarType,
        sizes: Vec<i64>,
        bound: Vec<i64>,
    },

    #[error("planned memory: {0}")]
    Memory(String),

    #[error("kernel {op}: {message}")]
    Kernel { op: String, message: String },

    #[error("execution exceeded {0} instructions (a loop in the program that never ends?)")]
    StepLimit(u64),
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

impl RuntimeError {
    pub(crate) fn kernel(op: &str, message: impl Into<String>) -> Self {
        RuntimeError::Kernel {
            op: op.to_string(),
            message: message.into(),
        }
    }
}
