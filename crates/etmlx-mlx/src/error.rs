//! Errors of the MLX delegate at init and execute time (payload decoding has `PayloadError`).

/// A failure while initialising or executing a delegate. Messages name the slot, op or value.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Payload(#[from] crate::payload::PayloadError),
    #[error("MLX: {0}")]
    Mlx(#[from] mlx::MlxError),
    #[error("tensor slot {0} is read before it was written")]
    UninitializedTensor(u32),
    #[error("value slot {0} is read before it was written")]
    UninitializedValue(u32),
    #[error("value slot {vid} holds {found}, expected {expected}")]
    ValueKind {
        vid: u32,
        expected: &'static str,
        found: String,
    },
    #[error("constant tensor slot {0} can only be written by the init chain")]
    WriteToConstant(u32),
    #[error("ScalarType {0} has no MLX dtype")]
    UnsupportedDtype(i8),
    #[error("op {op} (chain {chain}, instruction {index}): {source}")]
    InOp {
        op: &'static str,
        chain: usize,
        index: usize,
        #[source]
        source: Box<ExecError>,
    },
    #[error("{op}: {message}")]
    Invalid { op: &'static str, message: String },
    #[error(
        "custom Metal kernel '{name}' cannot run on {device}: it is GPU code for Apple's Metal only; \
         re-export without the custom kernel (the exporter has fallbacks) or run on Apple Silicon"
    )]
    MetalKernelUnsupported { name: String, device: String },
    #[error(
        "the program contains a custom Metal kernel '{name}' (GPU source code embedded in the file); \
         refusing to run it without explicit permission: pass --allow-custom-kernels \
         (or ExecOptions::allow_custom_kernels in the API)"
    )]
    CustomKernelRefused { name: String },
    #[error("{0}")]
    Other(String),
}

impl ExecError {
    pub fn invalid(op: &'static str, message: impl Into<String>) -> Self {
        ExecError::Invalid {
            op,
            message: message.into(),
        }
    }
}
